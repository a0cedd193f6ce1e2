import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { loadInventory, parseInventory, selectHosts } from '../../src/inventory/load.ts';
import { buildSchema } from '../../src/inventory/schema.ts';
import { catalog } from '../../steps/index.ts';
import { inventoryList } from '../../src/cli/commands.ts';

const NESTED = 'test/fixtures/inventories/nested.yaml';

function problems(yaml: string) {
  try {
    parseInventory(yaml, 'inv.yaml');
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

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
    expect(host('node1').conn).toMatchObject({
      address: '192.0.2.11',
      port: 2222,
      user: 'root',
      become: false,
      local: false,
    });
    expect(host('node3').conn).toMatchObject({ address: 'node3.example.test', port: 22, user: 'ops', become: true });
    expect(host('node2').conn.address).toBe('node2');
  });

  it('remembers where each var was set', () => {
    expect(host('node2').varPos.level).toMatchObject({ line: 24, col: 22 });
    expect(host('node1').varPos.level).toMatchObject({ line: 18 });
  });

  it('merges vars exactly as ansible-inventory does', () => {
    const theirs = JSON.parse(
      execFileSync('ansible-inventory', ['-i', NESTED, '--list'], {
        env: { ...process.env, ANSIBLE_INVENTORY_ENABLED: 'yaml' },
      }).toString(),
    );
    const ours = inventoryList(inv) as { _meta: { hostvars: Record<string, unknown> } };
    expect(ours._meta.hostvars).toEqual(theirs._meta.hostvars);
    for (const g of ['dc', 'rack1', 'rack2', 'gpu']) {
      expect(new Set((ours as any)[g].hosts ?? [])).toEqual(new Set(theirs[g].hosts ?? []));
      expect(new Set((ours as any)[g].children ?? [])).toEqual(new Set(theirs[g].children ?? []));
    }
  });

  it('selects hosts by name, group, glob and exclusion', () => {
    const names = (l: string) =>
      selectHosts(inv, l)
        .map((h) => h.name)
        .sort();
    expect(names('gpu')).toEqual(['node1', 'node3']);
    expect(names('node*')).toEqual(['node1', 'node2', 'node3']);
    expect(names('dc,!rack2')).toEqual(['node1', 'node2']);
    expect(names('all')).toHaveLength(4);
    expect(() => selectHosts(inv, 'nope')).toThrow(/matches no host/);
  });
});

describe('inventory validation', () => {
  it('reports YAML syntax errors with line and column', () => {
    const p = problems('all:\n  hosts:\n    a: {\n');
    expect(p[0]).toMatchObject({ file: 'inv.yaml', line: expect.any(Number) });
    expect(p[0].message).toMatch(/YAML syntax/);
  });

  it('names file, line, key and expectation for a wrong type', () => {
    const p = problems('all:\n  hosts:\n    a:\n      ansible_port: "22x"\n');
    expect(p).toHaveLength(1);
    expect(p[0]).toMatchObject({ line: 4, col: 21, key: 'all.hosts.a.ansible_port' });
    expect(p[0].message).toMatch(/expected integer/);
  });

  it('rejects out-of-range ports', () => {
    const p = problems('all:\n  hosts:\n    a:\n      ansible_port: 70000\n');
    expect(p[0]).toMatchObject({ line: 4, key: 'all.hosts.a.ansible_port' });
  });

  it('rejects unknown group keys and typos in kvmforge namespaces, but keeps foreign vars', () => {
    const p = problems('all:\n  host:\n    a:\n  vars:\n    kvmforge_jmp: x\n    my_own_var: 1\n');
    expect(p.map((x) => x.key).sort()).toEqual(['all.host', 'all.vars.kvmforge_jmp']);
    expect(p.find((x) => x.key === 'all.host')).toMatchObject({ line: 2, col: 3 });
    expect(p.find((x) => x.key === 'all.vars.kvmforge_jmp')).toMatchObject({ line: 5, col: 5 });
  });

  it('reports every problem, not just the first', () => {
    const p = problems('all:\n  hosts:\n    a:\n      ansible_port: x\n    b:\n      ansible_become: maybe\n');
    expect(p.map((x) => x.line)).toEqual([4, 6]);
  });

  it('rejects duplicate host names in one mapping', () => {
    const p = problems('all:\n  hosts:\n    a:\n    a:\n');
    expect(p[0].message).toMatch(/unique|duplicate/i);
    expect(p[0].line).toBe(4);
  });

  it('rejects a group cycle', () => {
    const p = problems(
      'all:\n  children:\n    g1:\n      children:\n        g2:\n          children:\n            g1:\n',
    );
    expect(p[0].message).toMatch(/its own ancestor/);
    expect(p[0].line).toBe(7);
  });

  it('rejects bad host names and addresses', () => {
    expect(problems('all:\n  hosts:\n    "bad name":\n')[0]).toMatchObject({
      line: 3,
      message: expect.stringMatching(/invalid name/),
    });
    expect(problems('all:\n  hosts:\n    a:\n      ansible_host: "10.0.0.1; rm -rf /"\n')[0]).toMatchObject({
      line: 4,
      message: expect.stringMatching(/neither an IP address nor a host name/),
    });
  });

  it('refuses a plain-text sudo password with a pointer to the alternative', () => {
    const p = problems('all:\n  vars:\n    ansible_become_password: hunter2\n  hosts:\n    a:\n');
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
      '  vars:',
      '    x: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
    ].join('\n');
    expect(problems(bomb)[0].message).toMatch(/alias/i);
  });

  it('refuses a non-mapping document', () => {
    expect(problems('- a\n- b\n')[0].message).toMatch(/mapping/);
  });

  it('loads the example inventory, which points editors at the schema', () => {
    const inv = loadInventory('inventories/example.yaml');
    expect(inv.hosts.map((h) => h.name)).toEqual(['kvm1', 'kvm2']);
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
