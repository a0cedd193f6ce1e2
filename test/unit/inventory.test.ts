import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { hostVars, inventoryGraph, inventoryList } from '../../src/inventory/list.ts';
import { loadInventory, parseInventory, type LoadOptions } from '../../src/inventory/load.ts';
import { selectHosts } from '../../src/inventory/patterns.ts';
import { pythonValue, shlexSplit } from '../../src/inventory/pyvalue.ts';
import { buildSchema } from '../../src/inventory/schema.ts';
import { parseAnsibleYaml } from '../../src/inventory/yaml11.ts';
import { catalog } from '../../steps/index.ts';

// the oracle (ansible-inventory, python3) starts a Python each time: slow on a busy machine
vi.setConfig({ testTimeout: 60_000 });

const NESTED = 'test/fixtures/inventories/nested.yaml';
const ENV = { ...process.env, ANSIBLE_LOCALHOST_WARNING: 'false', ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false' };

function problems(text: string, file = 'inv.yaml', opts: LoadOptions = {}) {
  try {
    parseInventory(text, file, catalog, opts);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

/** A directory of files (path → text), for inventories with group_vars/host_vars. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvf-inv-'));
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

/** ansible-inventory --list, the oracle. */
function ansibleList(sources: string[], extra: string[] = []): unknown {
  const args = sources.flatMap((s) => ['-i', s]);
  return JSON.parse(execFileSync('ansible-inventory', [...args, ...extra, '--list'], { env: ENV }).toString());
}

const ours = (sources: string[], opts: LoadOptions = {}) =>
  JSON.parse(JSON.stringify(inventoryList(loadInventory(sources, catalog, opts))));

describe('inventory merge', () => {
  const inv = loadInventory(NESTED);
  const host = (n: string) => inv.hosts.find((h) => h.name === n)!;

  it('finds every host once, in every group it belongs to', () => {
    expect(inv.hosts.map((h) => h.name).sort()).toEqual(['node1', 'node2', 'node3', 'solo']);
    expect(host('node1').groups).toEqual(['dc', 'gpu', 'rack1']);
    expect(host('solo').groups).toEqual(['ungrouped']);
  });

  it('applies defaults < all < parent < child < host', () => {
    expect(host('node2').vars.level).toBe('host');
    expect(host('node1').vars.level).toBe('rack1'); // depth 2 beats gpu at depth 1
    expect(host('node3').vars.zone).toBe('b');
    expect(host('solo').vars.level).toBe('all');
    expect(host('node1').vars.only_dc).toBe(true);
    expect(host('node1').vars.only_all).toBe(1);
  });

  it('reads Ansible connection vars', () => {
    expect(host('node1').conn).toMatchObject({ address: '192.0.2.11', port: 2222, user: 'root', local: false });
    expect(host('node1').conn.sshOptions).toEqual(['Port=2222', 'User=root']);
    expect(host('node3').conn).toMatchObject({ address: 'node3.example.test', port: 22, user: 'ops', become: true });
    expect(host('node2').conn.address).toBe('node2');
  });

  it('remembers where each var was set', () => {
    expect(host('node2').varPos.level).toMatchObject({ line: 24, col: 22 });
    expect(host('node1').varPos.level).toMatchObject({ line: 18 });
  });

  it('gives the same --list, --host and --graph as ansible-inventory', () => {
    expect(ours([NESTED])).toEqual(ansibleList([NESTED]));
    const theirs = JSON.parse(
      execFileSync('ansible-inventory', ['-i', NESTED, '--host', 'node3'], { env: ENV }).toString(),
    );
    expect(hostVars(inv, 'node3')).toEqual(theirs);
    const graph = execFileSync('ansible-inventory', ['-i', NESTED, '--graph'], { env: ENV }).toString().trim();
    expect(inventoryGraph(inv)).toBe(graph);
  });

  it('selects hosts by name, group, glob and exclusion', () => {
    const names = (l: string) =>
      selectHosts(inv, l, () => {})
        .map((h) => h.name)
        .sort();
    expect(names('gpu')).toEqual(['node1', 'node3']);
    expect(names('node*')).toEqual(['node1', 'node2', 'node3']);
    expect(names('dc,!rack2')).toEqual(['node1', 'node2']);
    expect(names('all')).toHaveLength(4);
    expect(() => selectHosts(inv, 'nope', () => {})).toThrow(/selects no host/);
  });
});

describe('inventories as Ansible reads them', () => {
  it('INI: sections, :vars, :children declared later, inline vars as Python literals, ungrouped hosts', () => {
    const dir = tree({
      hosts: [
        'mail.example.com',
        '[web]',
        'web[01:03].example.com http_port=80 enabled=True mode=0644 ratio=1.5 tags="[1, 2]" note=\'a b\'',
        'db-[a:c] ansible_port=2222',
        'badwolf.example.com:5309 secret="\'03#pa33w0rd\'" # trailing comment',
        '[web:vars]',
        'ntp_server = ntp.example.com',
        'max = 23',
        'flag=False',
        '[prod:children]',
        'web',
        'late',
        '[late]',
        'ünïcode-hôst',
        '[all:vars]',
        'ansible_user=ops',
      ].join('\n'),
    });
    const src = [join(dir, 'hosts')];
    expect(ours(src)).toEqual(ansibleList(src));
    const inv = loadInventory(src);
    expect(inv.hosts.find((h) => h.name === 'db-b')!.conn.port).toBe(2222);
    expect(inv.hosts.find((h) => h.name === 'badwolf.example.com')!.conn.port).toBe(5309);
  });

  it('an INI file is never reported as a YAML error, whatever its name', () => {
    const dir = tree({ 'inventory.yaml': 'sw1 ansible_host=192.0.2.1\n\n[switches]\nsw1\n', plain: 'a\nb\n' });
    for (const f of ['inventory.yaml', 'plain']) expect(ours([join(dir, f)])).toEqual(ansibleList([join(dir, f)]));
    const p = problems('[web]\nh1 x\n', 'hosts');
    expect(p[0]).toMatchObject({ file: 'hosts', line: 2 });
    expect(p[0].message).toMatch(/key=value/);
    expect(p[0].message).not.toMatch(/YAML/);
  });

  it('YAML as Ansible reads it: YAML 1.1 scalars, anchors and merge keys, hosts as a string, ranges, IPv6', () => {
    const dir = tree({
      'inv.yml': [
        'all:',
        '  vars:',
        '    defaults: &d { retries: 3, mode: 0644, enabled: yes, off_flag: off, plain_y: y, when: 2024-01-02 }',
        '    merged: { <<: *d, retries: 5 }',
        '    base60: 1:30',
        '    version: 09',
        '  children:',
        '    web:',
        '      hosts: single.example.com',
        '    db:',
        '      hosts:',
        '        db[01:05:2]:',
        '        "[2001:db8::10]:2200":',
        '        2001:db8::11:',
        '      vars:',
        '        ansible_group_priority: 10',
        '        ansible_port: "5555"',
        '        ansible_become: yes',
      ].join('\n'),
    });
    const src = [join(dir, 'inv.yml')];
    expect(ours(src)).toEqual(ansibleList(src));
    const inv = loadInventory(src);
    const db3 = inv.hosts.find((h) => h.name === 'db03')!;
    expect(db3.conn).toMatchObject({ port: 5555, become: true });
    expect(inv.hosts.find((h) => h.name === '2001:db8::10')!.vars.ansible_port).toBe(2200);
    expect(db3.vars.ansible_group_priority).toBeUndefined(); // consumed by the group, as in Ansible
    expect(inv.groups.get('db')!.priority).toBe(10);
  });

  it('ansible_group_priority orders groups of the same depth', () => {
    const text =
      'all:\n  children:\n    a_first:\n      hosts: { h1: }\n      vars: { v: a, ansible_group_priority: 5 }\n' +
      '    b_second:\n      hosts: { h1: }\n      vars: { v: b }\n';
    const dir = tree({ 'inv.yml': text });
    expect(ours([join(dir, 'inv.yml')])).toEqual(ansibleList([join(dir, 'inv.yml')]));
    expect(loadInventory(join(dir, 'inv.yml')).hosts[0].vars.v).toBe('a');
  });

  it('group_vars/ and host_vars/ beside the inventory, files and directories, in Ansible’s precedence', () => {
    const dir = tree({
      'hosts.ini': '[web]\nw1 inline=host\nw2\n[app:children]\nweb\n[web:vars]\nfrom_ini=web\nboth=ini\n',
      'group_vars/all.yml': 'level: all\nboth: all_file\nfrom_ini: all_file\n',
      'group_vars/app.yaml': 'level: app\n',
      'group_vars/web/10-main.yml': 'level: web\nboth: web_file\n',
      'group_vars/web/20-more.json': '{"json_var": [1, 2]}',
      'group_vars/web/ignored.txt': 'level: never\n',
      'host_vars/w1.yml': 'inline: host_file\nonly_w1: true\n',
      'host_vars/w2/vars': 'only_w2: yes\n',
    });
    const src = [join(dir, 'hosts.ini')];
    expect(ours(src)).toEqual(ansibleList(src));
    const w1 = loadInventory(src).hosts.find((h) => h.name === 'w1')!;
    expect(w1.vars).toMatchObject({ level: 'web', both: 'web_file', inline: 'host_file', json_var: [1, 2] });
    expect(w1.vars.from_ini).toBe('all_file'); // group_vars/all.yml beats a group's vars written in the inventory
    expect(w1.varPos.level).toMatchObject({ file: join(dir, 'group_vars/web/10-main.yml'), line: 1 });
  });

  it('several -i sources, a directory source, and -e extra vars over everything', () => {
    const dir = tree({
      'inv/10-web.yml': 'web:\n  hosts:\n    w1:\n      x: yaml\n',
      'inv/20-db': '[db]\nd1 x=ini\n[web]\nw2\n',
      'inv/skip.ini': '[never]\nn1\n',
      'inv/group_vars/web.yml': 'from_dir: true\n',
      'extra.ini': '[extra]\ne1\n',
    });
    const src = [join(dir, 'inv'), join(dir, 'extra.ini')];
    expect(ours(src)).toEqual(ansibleList(src));
    expect(ours(src, { extraVars: [{ vars: { x: 'cli' }, pos: {} }] })).toEqual(ansibleList(src, ['-e', 'x=cli']));
  });

  it('Python literals and shell splitting as Python itself does them', () => {
    const cases = [
      '2222',
      'True',
      '0644',
      '0o17',
      '1_000',
      '1e3',
      '-3',
      "'a' 'b'",
      '[1, (2, 3)]',
      "{'k': None}",
      'yes',
      'x y',
    ];
    const py = JSON.parse(
      execFileSync('python3', [
        '-c',
        'import ast,json,sys\nout=[]\nfor c in json.loads(sys.argv[1]):\n  try: v=ast.literal_eval(c)\n' +
          '  except (ValueError, SyntaxError): v=c\n  out.append(v)\nprint(json.dumps(out))',
        JSON.stringify(cases),
      ]).toString(),
    );
    expect(cases.map(pythonValue)).toEqual(py);
    const lines = ['h a=1 b="x y" c=\'q\' # comment', 'h k=a#b', 'h "quoted \\" inside"'];
    const sh = JSON.parse(
      execFileSync('python3', [
        '-c',
        'import json,shlex,sys\nprint(json.dumps([shlex.split(l, comments=True) for l in json.loads(sys.argv[1])]))',
        JSON.stringify(lines),
      ]).toString(),
    );
    expect(lines.map(shlexSplit)).toEqual(sh);
  });

  it('YAML scalars exactly as PyYAML reads them', () => {
    const src = 'v: [yes, No, on, OFF, y, n, 0644, 09, 0x1F, 1_000, 1:20, 1e3, 1.0e+3, .5, ~, "", 0b101, +12, 3.]\n';
    const py = JSON.parse(
      execFileSync('python3', [
        '-c',
        'import yaml,json,sys\nprint(json.dumps(yaml.safe_load(sys.argv[1])))',
        src,
      ]).toString(),
    );
    expect(parseAnsibleYaml(src).doc.toJS()).toEqual(py);
  });
});

describe('inventory errors: file, line and key, all at once, before any connection', () => {
  it('names file, line, key and expectation for a wrong type of a kvmforge var', () => {
    const p = problems('all:\n  hosts:\n    a:\n      hugepages_count: [1]\n');
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ line: 4, col: 24, key: 'a.hugepages_count' });
  });

  it('a connection var kvmforge cannot follow stops only a run that selects the host', () => {
    const inv = parseInventory('all:\n  hosts:\n    a:\n      ansible_port: 70000\n    b:\n', 'inv.yaml', catalog);
    expect(inv.hostProblems.get('a')![0]).toMatchObject({ line: 4, key: 'a.ansible_port' });
    expect(inv.hostProblems.get('b')).toBeUndefined();
  });

  it('refuses unknown group keys; an unknown var under a step prefix is a warning with the nearest name', () => {
    const p = problems('all:\n  host:\n    a:\n');
    expect(p[0]).toMatchObject({ line: 2, col: 3, key: 'all.host' });
    const inv = parseInventory(
      'all:\n  vars:\n    hugepages_cont: 2\n    my_own_var: 1\n  hosts:\n    a:\n',
      'i.yaml',
      catalog,
    );
    expect(inv.warnings).toHaveLength(1);
    expect(inv.warnings[0]).toMatchObject({ line: 3, key: 'all.hugepages_cont' });
    expect(inv.warnings[0].message).toMatch(/did you mean hugepages_count\?/);
    expect(
      problems('all:\n  vars:\n    hugepages_cont: 2\n  hosts:\n    a:\n', 'i.yaml', { strict: true })[0].message,
    ).toMatch(/--strict/);
  });

  it('reports every problem, not just the first, of every kind', () => {
    const p = problems('all:\n  hosts:\n    a:\n      hugepages_count: x\n    b:\n      ksm_run: maybe\n');
    expect(p.map((x) => x.line)).toEqual([4, 6]);
    const q = problems('all:\n  hosts:\n    a:\n      hugepages_count: x\n  bogus: 1\n');
    expect(q.map((x) => x.line).sort()).toEqual([4, 5]);
  });

  it('rejects duplicate keys in one mapping', () => {
    const p = problems('all:\n  hosts:\n    a:\n    a:\n');
    expect(p[0].message).toMatch(/duplicate/i);
    expect(p[0].line).toBe(4);
  });

  it('rejects a group cycle, with the chain, in YAML and INI', () => {
    const p = problems(
      'all:\n  children:\n    g1:\n      children:\n        g2:\n          children:\n            g1:\n',
    );
    expect(p[0].message).toMatch(/its own ancestor \(g2 → g1 → g2\)/);
    expect(p[0].line).toBe(5);
    const q = problems('[a:children]\nb\n[b:children]\na\n', 'hosts');
    expect(q[0]).toMatchObject({ file: 'hosts', line: 4 });
  });

  it('an inventory with no hosts is bad input, with its file', () => {
    expect(problems('all:\n  children:\n    empty:\n')[0].message).toMatch(/no hosts/);
    expect(problems('# nothing\n', 'hosts')[0]).toMatchObject({
      file: 'hosts',
      message: expect.stringMatching(/no hosts/),
    });
  });

  it('refuses what Ansible misreads: several hosts written as one string under hosts:', () => {
    const p = problems('all:\n  children:\n    etcd:\n      hosts:\n        node1\n        node2\n');
    expect(p[0]).toMatchObject({ line: 5 });
    expect(p[0].message).toMatch(/'node1 node2' is not a host name .*blanks/);
  });

  it('an alias error points at the alias, and bad host addresses at their var', () => {
    const p = problems('x: &x [1, 2]\nall:\n  hosts:\n    a:\n      hugepages_count: *x\n');
    // at the alias, not at 1:1 (and the top-level x, no group, is refused in the same pass)
    expect(p.find((x) => x.key === 'a.hugepages_count')).toMatchObject({ line: 5, col: 24 });
    expect(p.find((x) => x.key === 'x')).toMatchObject({
      line: 1,
      message: expect.stringMatching(/a group is a mapping/),
    });
    const inv = parseInventory('all:\n  hosts:\n    a:\n      ansible_host: "10.0.0.1; rm -rf /"\n', 'i.yaml', catalog);
    expect(inv.hostProblems.get('a')![0]).toMatchObject({ line: 4, message: expect.stringMatching(/neither an IP/) });
  });

  it('refuses a plain-text sudo password with a pointer to the alternative', () => {
    const inv = parseInventory('all:\n  vars:\n    ansible_become_password: hunter2\n  hosts:\n    a:\n', 'i.yaml');
    const p = inv.hostProblems.get('a')!;
    expect(p[0]).toMatchObject({ line: 3 });
    expect(p[0].message).toMatch(/kvmforge_become_password_env/);
    expect(p[0].message).not.toMatch(/hunter2/);
  });

  it('refuses alias bombs', () => {
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'all:',
      '  hosts: { h: }',
      '  vars:',
      '    x: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    ].join('\n');
    expect(problems(bomb).some((p) => /alias/i.test(p.message))).toBe(true);
  });

  it('refuses a .yml file that is no mapping, and inventory plugins', () => {
    expect(problems('- a\n- b\n')[0].message).toMatch(/not an inventory|mapping/);
    expect(problems('plugin: aws_ec2\nregions: [x]\n')[0].message).toMatch(/inventory plugin/);
  });

  it('refuses executable inventory scripts instead of running them', () => {
    const dir = tree({ 'dyn.py': '#!/usr/bin/env python3\nprint("{}")\n' });
    chmodSync(join(dir, 'dyn.py'), 0o755);
    expect(() => loadInventory(join(dir, 'dyn.py'))).toThrow(/executable inventory script/);
  });
});

describe('vault', () => {
  const dir = tree({ pw: 's3cret\n', wrong: 'nope\n' });
  const enc = execFileSync(
    'ansible-vault',
    ['encrypt_string', '--vault-password-file', join(dir, 'pw'), 'the-db-pw', '--name', 'db_password'],
    {
      env: ENV,
    },
  ).toString();
  const text = `all:\n  hosts:\n    h1:\n  vars:\n${enc.replace(/^/gm, '    ')}`;

  it('decrypts !vault values with the password, and keeps the plaintext a secret', () => {
    const inv = parseInventory(text, 'v.yml', catalog, { vaultPasswords: ['s3cret'] });
    expect(inv.hosts[0].vars.db_password).toBe('the-db-pw');
    expect(inv.secrets).toContain('the-db-pw');
  });

  it('without a password a vault value is never passed on as ciphertext; a wrong one is an error at its line', () => {
    const inv = parseInventory(text, 'v.yml', catalog);
    expect(inv.hosts[0].vars.db_password).toBeUndefined();
    expect(inv.warnings.some((w) => /left encrypted/.test(w.message))).toBe(true);
    const p = problems(text, 'v.yml', { vaultPasswords: ['nope'] });
    expect(p[0]).toMatchObject({ file: 'v.yml', line: 5, key: 'h1.db_password' });
    expect(p[0].message).toMatch(/does not decrypt/);
  });

  it('reads whole files encrypted with ansible-vault', () => {
    const d = tree({ 'hosts.yml': 'all:\n  hosts:\n    h1:\n      x: 1\n' });
    execFileSync('ansible-vault', ['encrypt', '--vault-password-file', join(dir, 'pw'), join(d, 'hosts.yml')], {
      env: ENV,
    });
    expect(loadInventory(join(d, 'hosts.yml'), catalog, { vaultPasswords: ['s3cret'] }).hosts[0].vars.x).toBe(1);
    expect(() => loadInventory(join(d, 'hosts.yml'))).toThrow(/--vault-password-file/);
  });
});

describe('the example inventory and the schema', () => {
  it('loads the example inventory, which points editors at the schema; each value is what it says', () => {
    const inv = loadInventory('inventories/example.yaml', catalog);
    expect(inv.hosts.map((h) => h.name)).toEqual(['kvm1', 'kvm2']);
    const [kvm1, kvm2] = inv.hosts;
    expect(kvm1.vars).toMatchObject({
      ansible_user: 'ops',
      ansible_become: true,
      kvmforge_become_password_env: 'KVMFORGE_SUDO_PASSWORD',
      hugepages_count: '10%',
      ksm_policy: 'thesis',
      ksm_host_role: 'production',
      boot_args_add: ['cgroup_disable=cpu,cpuset,memory'], // one kernel argument, not three
    });
    expect(kvm1.conn).toMatchObject({ address: '192.0.2.21', user: 'ops', become: true });
    expect(kvm2.vars.virtio_modules_vhost_net).toBe(false);
    const vms = kvm2.vars.domains_vms as Record<string, unknown>[];
    expect(vms.map((v) => v.name)).toEqual(['win2008-test3', 'db1']);
    expect(vms[1]).toMatchObject({ tier: 'fifo99', memory: 8192, vcpus: 4, emulatorpin: '0-1', autostart: true });
    expect(vms[1].vcpupin).toEqual({ 0: '2', 1: '3', 2: '4', 3: '5' });
    expect(inv.warnings).toEqual([]);
    expect(readFileSync('inventories/example.yaml', 'utf8')).toMatch(/^# yaml-language-server: \$schema=schema\.json/);
  });

  it('ships the generated schema in inventories/schema.json', () => {
    expect(JSON.parse(readFileSync('inventories/schema.json', 'utf8'))).toEqual(
      JSON.parse(JSON.stringify(buildSchema(catalog))),
    );
  });
});

describe('docs made from the steps', () => {
  it("README's step table is the one the steps make (kvmforge steps --markdown)", async () => {
    const { stepTable } = await import('../../src/cli/docs.ts');
    const { steps } = await import('../../steps/index.ts');
    expect(readFileSync('README.md', 'utf8')).toContain(stepTable(steps));
  });
});
