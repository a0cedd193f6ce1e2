// What `ansible-inventory --list`, `--host` and `--graph` print, from kvmforge's reading of the inventory.
import type { Inventory } from './load.ts';
import { Vaulted } from './yaml11.ts';

/** JSON as Ansible writes it: a vault value stays `{"__ansible_vault": ciphertext}`. */
function plain(v: unknown): unknown {
  if (v instanceof Vaulted) return { __ansible_vault: v.ciphertext };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** A host's vars as ansible-inventory --host prints them. */
export function hostVars(inv: Inventory, host: string): Record<string, unknown> | undefined {
  const v = inv.ansibleVars.get(host);
  return v && (plain(v) as Record<string, unknown>);
}

/** ansible-inventory --list; `only` narrows it to some hosts (--limit). */
export function inventoryList(inv: Inventory, only?: Set<string>): Record<string, unknown> {
  const { graph } = inv;
  const keep = (h: string) => !only || only.has(h);
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  const format = (name: string) => {
    const g = graph.groups.get(name)!;
    const entry: Record<string, string[]> = {};
    const hosts = name === 'all' ? [] : g.hosts.filter(keep);
    const children: string[] = [];
    out[name] = entry;
    for (const c of g.children) {
      if (only && !graph.hostsOf(c).some(keep)) continue;
      children.push(c);
      if (!seen.has(c)) {
        seen.add(c);
        format(c);
      }
    }
    if (hosts.length) entry.hosts = hosts;
    if (children.length) entry.children = children;
    if (!Object.keys(entry).length) delete out[name];
  };
  format('all');
  const hostvars: Record<string, unknown> = {};
  for (const h of graph.hosts.keys()) {
    const v = hostVars(inv, h);
    if (keep(h) && v && Object.keys(v).length) hostvars[h] = v;
  }
  return { _meta: { hostvars }, ...out };
}

/** ansible-inventory --graph [GROUP] [--vars]. */
export function inventoryGraph(inv: Inventory, group = 'all', vars = false): string {
  const { graph } = inv;
  if (!graph.groups.has(group)) throw new Error(`no group '${group}' (--graph takes a group name)`);
  const line = (name: string, depth: number) => (depth ? `${'  |'.repeat(depth)}--${name}` : name);
  const showVars = (v: Record<string, unknown>, depth: number) =>
    Object.keys(v)
      .sort()
      .map((k) => line(`{${k} = ${pyRepr(v[k])}}`, depth));
  const walk = (name: string, depth: number): string[] => {
    const g = graph.groups.get(name)!;
    const out = [line(`@${name}:`, depth)];
    for (const c of g.children) out.push(...walk(c, depth + 1));
    if (name !== 'all')
      for (const h of g.hosts) {
        out.push(line(h, depth + 1));
        if (vars) out.push(...showVars(hostVars(inv, h) ?? {}, depth + 2));
      }
    if (vars) {
      const gv: Record<string, unknown> = { ...(plain(g.vars) as Record<string, unknown>) };
      if (g.priority !== 1) gv.ansible_group_priority = g.priority;
      out.push(...showVars(gv, depth + 1));
    }
    return out;
  };
  return walk(group, 0).join('\n');
}

/** Values the way Python prints them in --graph --vars (True, None, 'text' inside lists). */
function pyRepr(v: unknown, nested = false): string {
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'string') return nested ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (Array.isArray(v)) return `[${v.map((x) => pyRepr(x, true)).join(', ')}]`;
  return `{${Object.entries(v as object)
    .map(([k, x]) => `'${k}': ${pyRepr(x, true)}`)
    .join(', ')}}`;
}
