// The inventory as Ansible's InventoryData holds it: groups and hosts in the order they were first seen,
// 'all' and 'ungrouped' made first, children and hosts appended in order, a group's vars set by key (the
// last one read wins), ansible_group_priority taken by the group itself. Sources (YAML, INI) fill it.
import type { Problem } from '../core/errors.ts';
import type { Position } from '../core/types.ts';

export type Vars = Record<string, unknown>;
export type VarPositions = Record<string, Position>;

export interface GroupNode {
  name: string;
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Vars;
  varPos: VarPositions;
  priority: number;
  pos: Position;
  depth: number;
}

export interface HostNode {
  name: string;
  vars: Vars;
  varPos: VarPositions;
  pos: Position;
}

export class InventoryGraph {
  readonly groups = new Map<string, GroupNode>();
  readonly hosts = new Map<string, HostNode>();
  readonly problems: Problem[] = [];
  readonly warnings: Problem[] = [];

  constructor(readonly origin: Position) {
    this.addGroup('all', origin);
    this.addGroup('ungrouped', origin);
    this.addChild('all', 'ungrouped', origin);
  }

  addGroup(name: string, pos: Position): GroupNode {
    let g = this.groups.get(name);
    if (!g) {
      g = { name, hosts: [], children: [], parents: [], vars: {}, varPos: {}, priority: 1, pos, depth: 0 };
      this.groups.set(name, g);
    }
    return g;
  }

  addHost(name: string, group: string | undefined, pos: Position, port?: number): HostNode {
    let h = this.hosts.get(name);
    if (!h) {
      h = { name, vars: {}, varPos: {}, pos };
      this.hosts.set(name, h);
      // the port of a host's first entry only, as Ansible does (Host(name, port))
      if (port !== undefined) this.setVar(h, 'ansible_port', port, pos);
    }
    if (group !== undefined) {
      const g = this.groups.get(group)!;
      if (!g.hosts.includes(name)) g.hosts.push(name);
    }
    return h;
  }

  /** `child` becomes a child group of `parent`; a loop is a problem at `pos` (Ansible refuses it too). */
  addChild(parent: string, child: string, pos: Position): void {
    const p = this.groups.get(parent)!;
    const c = this.groups.get(child)!;
    if (p.children.includes(child)) return;
    const up = parent === child ? [child] : this.pathUp(parent, child);
    if (up) {
      this.problems.push({
        ...pos,
        key: child,
        message: `group '${child}' is its own ancestor (${[child, ...up.slice(0, -1).reverse(), child].join(' → ')})`,
      });
      return;
    }
    p.children.push(child);
    if (!c.parents.includes(parent)) c.parents.push(parent);
  }

  /** The chain from `from` up to the ancestor `to`, if `to` is one. */
  private pathUp(from: string, to: string, seen = new Set<string>()): string[] | undefined {
    if (seen.has(from)) return undefined;
    seen.add(from);
    for (const p of this.groups.get(from)!.parents) {
      if (p === to) return [from, p];
      const up = this.pathUp(p, to, seen);
      if (up) return [from, ...up];
    }
    return undefined;
  }

  /** Sets a var on a group or host; `nested` holds positions inside the value ('domains_vms.0.memory'). */
  setVar(entity: GroupNode | HostNode, key: string, value: unknown, pos: Position, nested: VarPositions = {}): void {
    if ('priority' in entity && key === 'ansible_group_priority') {
      const n = typeof value === 'boolean' ? Number(value) : Math.trunc(Number(value));
      if (value === null || value === '' || !Number.isFinite(n))
        this.problems.push({ ...pos, key, message: `expected a whole number, got ${JSON.stringify(value)}` });
      else entity.priority = n;
      return;
    }
    entity.vars[key] = value;
    for (const k of Object.keys(entity.varPos)) if (k === key || k.startsWith(`${key}.`)) delete entity.varPos[k];
    entity.varPos[key] = pos;
    Object.assign(entity.varPos, nested);
  }

  /** What Ansible's reconcile_inventory does: top groups under all, hosts in no group in ungrouped. */
  reconcile(): void {
    for (const g of this.groups.values())
      if (g.name !== 'all' && !g.parents.length) this.addChild('all', g.name, g.pos);
    const ungrouped = this.groups.get('ungrouped')!;
    for (const h of this.hosts.keys()) {
      const direct = [...this.groups.values()].filter((g) => g.hosts.includes(h)).map((g) => g.name);
      const elsewhere = direct.some((g) => g !== 'all' && g !== 'ungrouped');
      if (elsewhere) ungrouped.hosts = ungrouped.hosts.filter((x) => x !== h);
      else if (!ungrouped.hosts.includes(h)) ungrouped.hosts.push(h);
    }
    // depth: the longest path from all (Ansible orders a host's groups by depth, priority, name)
    const depthOf = (name: string, seen: string[]): number => {
      const g = this.groups.get(name)!;
      if (name === 'all' || seen.includes(name)) return 0;
      return 1 + Math.max(0, ...g.parents.map((p) => depthOf(p, [...seen, name])));
    };
    for (const g of this.groups.values()) g.depth = depthOf(g.name, []);
    for (const name of this.hosts.keys())
      if (this.groups.has(name) && name !== 'all' && name !== 'ungrouped')
        this.warnings.push({
          ...this.hosts.get(name)!.pos,
          key: name,
          message: `'${name}' is both a host and a group name (a pattern '${name}' selects the group)`,
        });
  }

  /** A group's hosts as Ansible lists them: its own, then its children's, level by level, each once. */
  hostsOf(group: string): string[] {
    const out: string[] = [];
    const seen = new Set<string>([group]);
    let level = [group];
    while (level.length) {
      for (const g of level) for (const h of this.groups.get(g)!.hosts) if (!out.includes(h)) out.push(h);
      const next: string[] = [];
      for (const g of level)
        for (const c of this.groups.get(g)!.children)
          if (!seen.has(c)) {
            seen.add(c);
            next.push(c);
          }
      level = next;
    }
    return out;
  }

  /** Every group a host is in, directly or through its parents ('all' included). */
  groupsOf(host: string): GroupNode[] {
    const names = new Set<string>(['all']);
    const climb = (g: string) => {
      if (names.has(g) && g !== 'all') return;
      names.add(g);
      for (const p of this.groups.get(g)!.parents) climb(p);
    };
    for (const g of this.groups.values()) if (g.hosts.includes(host)) climb(g.name);
    return [...names].map((n) => this.groups.get(n)!);
  }
}

/** Ansible's sort_groups: by depth, then ansible_group_priority, then name (code point order). */
export function sortGroups(groups: GroupNode[]): GroupNode[] {
  return [...groups].sort(
    (a, b) => a.depth - b.depth || a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}
