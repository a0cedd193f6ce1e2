// Host patterns against the real `ansible INV all --list-hosts --limit PATTERN`, on an inventory whose
// groups overlap (a host in two groups, a group of groups, ungrouped hosts, non-ASCII names).
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../src/inventory/load.ts';
import { selectHosts } from '../../src/inventory/patterns.ts';

const INV = 'test/fixtures/inventories/patterns.ini';
const ENV = { ...process.env, ANSIBLE_LOCALHOST_WARNING: 'false' };
const run = promisify(execFile);

const limitFile = join(mkdtempSync(join(tmpdir(), 'kvf-pat-')), 'limit');
writeFileSync(limitFile, 'db2\n\nweb[0]\n');

const PATTERNS = [
  'web',
  'web:db',
  'web,db',
  'web:&staging',
  'all:&staging',
  'prod:!db',
  '!db',
  '&staging',
  'web:!web2:&prod',
  'web*',
  'w?b[0-9]',
  '~web[12]',
  '~^d',
  '~(web|db)1',
  'web[0]',
  'web[1:2]',
  'web[-1]',
  'web[1:]',
  'db[0:0]',
  'all',
  '*',
  'nope,web1',
  'prod',
  'ungrouped',
  'al*',
  'web1:db2',
  'hôst1',
  'ünïcode',
  'web2,web2',
  'db,web[0]',
  `@${limitFile}`,
  'web,@nope-file-is-not-here'.split(',')[0],
];

/** The hosts Ansible selects, in its order; undefined when Ansible selects none. */
async function ansible(pattern: string): Promise<string[] | undefined> {
  try {
    const { stdout } = await run('ansible', ['-i', INV, 'all', '--list-hosts', '--limit', pattern], { env: ENV });
    return stdout
      .split('\n')
      .slice(1)
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return undefined;
  }
}

describe('host patterns select what ansible --list-hosts selects', () => {
  const inv = loadInventory(INV);
  const ours = (p: string) => {
    try {
      return selectHosts(inv, p, () => {}).map((h) => h.name);
    } catch {
      return undefined;
    }
  };

  it('every form, in Ansible’s order', async () => {
    const theirs = await Promise.all(PATTERNS.map(ansible));
    expect(PATTERNS.map((p) => [p, ours(p)])).toEqual(PATTERNS.map((p, i) => [p, theirs[i]]));
  });

  it('a term that matches nothing is a warning, as in Ansible; a subscript out of range, a bad regex: errors', () => {
    const warned: string[] = [];
    expect(selectHosts(inv, 'nope,web1', (w) => warned.push(w)).map((h) => h.name)).toEqual(['web1']);
    expect(warned).toEqual(["host pattern 'nope' matches no host or group: ignored (as Ansible does)"]);
    expect(() => selectHosts(inv, 'web[5]', () => {})).toThrow(/web has 3 host\(s\), no index 5/);
    expect(() => selectHosts(inv, '~web(', () => {})).toThrow(/invalid host pattern/);
    expect(() => selectHosts(inv, 'all:&nope', () => {})).toThrow(/selects no host/);
  });
});
