// Real-world inventories written by others, read by kvmforge and by Ansible itself: the inventories that
// Debian's `ansible` package (7.7.0, bookworm) ships in its collections — network vendors' examples and role
// tests (Cisco, Dell, Fortinet, oVirt, Infinidat, CyberArk, Sensu …), in INI and YAML, some with group_vars/
// and host_vars/ trees. They are read where the package installs them (nothing is copied into this
// repository); CI installs the package. The oracle is the real ansible-inventory, run in the test.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { hostVars, inventoryGraph, inventoryList } from '../../src/inventory/list.ts';
import { loadInventory } from '../../src/inventory/load.ts';
import { selectHosts } from '../../src/inventory/patterns.ts';
import { catalog } from '../../steps/index.ts';

const ROOT = '/usr/lib/python3/dist-packages/ansible_collections';
const ENV = { ...process.env, ANSIBLE_LOCALHOST_WARNING: 'false', ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false' };

/** Read the same as ansible-inventory (--list, --host for each host, --graph). */
const SAME = [
  'cisco/dnac/playbooks/hosts', // INI, one group
  'cisco/ise/hosts', // INI with commented sections
  'cisco/ucs/playbooks/inventory', // INI, [g:vars]
  'cyberark/pas/rulebooks/inventory.yml', // YAML, top-level ungrouped
  'dellemc/enterprise_sonic/playbooks/bgp_l3_fabric/inventory.yaml', // group_vars/*.yaml
  'dellemc/enterprise_sonic/playbooks/common_examples/hosts', // INI with [g:vars] and quoted values
  'dellemc/os10/playbooks/clos_fabric_ebgp/inventory.yaml', // INI named .yaml, host_vars/, [g:children]
  'dellemc/os10/playbooks/vxlan_evpn/inventory.yaml', // INI named .yaml, host_vars/ for six hosts
  'dellemc/os6/playbooks/ibgp/inventory.yaml', // group_vars/all (file without extension), host_vars/
  'dellemc/os9/playbooks/clos_fabric_ebgp/inventory.yaml', // group_vars/all and spine.yaml, host_vars/
  'fortinet/fortios/examples/httpapi/inventory/hosts', // INI, quoted inline values
  'infinidat/infinibox/playbooks/inventory',
  'ovirt/ovirt/roles/engine_setup/tests/inventory', // localhost with ansible_connection=local
  'sensu/sensu_go/vagrant/windows/inventory.yaml', // YAML, a winrm host
];

/**
 * Ansible can't read these either: it warns "Unable to parse … as an inventory source" and goes on with no
 * hosts from them. kvmforge refuses them with the line that fails.
 */
const REFUSED: [string, RegExp][] = [
  ['dellemc/os10/roles/os10_template/tests/inventory.yaml', /:1:1: .*'---' is not a host name/],
  ['dellemc/os10/roles/os10_aaa/tests/inventory.yaml', /:1:1: .*'---' is not a host name/],
  ['dellemc/os10/roles/os10_copy_config/tests/inventory', /:1:1: not an inventory: .*as INI line 1: '---'/],
];

const path = (f: string) => join(ROOT, f);
/** The oracle, awaited: a test's few ansible-inventory runs take seconds each on a loaded machine, and a vitest worker
 * held 60 s loses the run. */
const ansible = async (...args: string[]) =>
  (await promisify(execFile)('ansible-inventory', args, { env: ENV })).stdout;
const plain = (x: unknown) => JSON.parse(JSON.stringify(x));

describe('real-world inventories (Debian ansible 7.7.0 collections) read as ansible-inventory reads them', () => {
  it('the corpus is installed', () => {
    expect(SAME.filter((f) => !existsSync(path(f)))).toEqual([]);
  });

  it.each(SAME)('%s', async (f) => {
    const inv = loadInventory(path(f), catalog);
    expect(plain(inventoryList(inv))).toEqual(JSON.parse(await ansible('-i', path(f), '--list')));
    expect(inventoryGraph(inv)).toBe((await ansible('-i', path(f), '--graph')).trim());
    for (const h of inv.hosts.slice(0, 3))
      expect(plain(hostVars(inv, h.name))).toEqual(JSON.parse(await ansible('-i', path(f), '--host', h.name)));
  });

  it.each(REFUSED)('%s: refused with file:line where Ansible reads nothing', async (f, why) => {
    expect(JSON.parse(await ansible('-i', path(f), '--list'))._meta.hostvars).toEqual({});
    let err: unknown;
    try {
      loadInventory(path(f), catalog);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(why);
  });

  it('several of them at once (-i … -i …), as one inventory', async () => {
    const src = SAME.slice(4, 8).map(path);
    const theirs = JSON.parse(await ansible(...src.flatMap((s) => ['-i', s]), '--list'));
    expect(plain(inventoryList(loadInventory(src, catalog)))).toEqual(theirs);
  });

  it('a host whose connection kvmforge cannot make (winrm) stops only a run that selects it', () => {
    const inv = loadInventory(path('sensu/sensu_go/vagrant/windows/inventory.yaml'), catalog);
    const why = inv.hostProblems.get('windows')!.map((p) => p.message);
    expect(why).toContain("'winrm': kvmforge connects with ssh or local only");
    expect(why).toContain('password logins are refused: use an SSH key (ansible_ssh_private_key_file or ssh-agent)');
    expect(selectHosts(inv, 'windows', () => {}).map((h) => h.name)).toEqual(['windows']);
  });
});
