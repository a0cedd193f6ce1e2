// An Ansible INI inventory read into the graph as Ansible's ini plugin reads it: lines before any section
// are ungrouped hosts; [g] holds hosts with inline key=value vars (split like a shell line, values read as
// Python literals), [g:vars] one key=value per line, [g:children] group names that may be declared later.
// A [g:vars] or [g:children] naming a group declared nowhere is an error, as in Ansible.
import type { Position } from '../core/types.ts';
import type { InventoryGraph } from './graph.ts';
import { hostEntry } from './hostnames.ts';
import { pythonValue, shlexSplit } from './pyvalue.ts';

const SECTION = /^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$/;
const GROUP_NAME = /^([^:\]\s]+)\s*(?:[#;].*)?$/;

interface Pending {
  pos: Position;
  state: 'vars' | 'children';
  parents: string[];
}

export function readIniInventory(text: string, file: string, graph: InventoryGraph): void {
  const p = graph.problems;
  const pending = new Map<string, Pending>();
  let group = 'ungrouped';
  let state = 'hosts';
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const pos: Position = { file, line: i + 1, col: raw.length - raw.trimStart().length + 1 };
    if (!line || line[0] === '#' || line[0] === ';') return;
    const m = SECTION.exec(line);
    if (m) {
      group = m[1];
      state = m[2] ?? 'hosts';
      if (!['hosts', 'children', 'vars'].includes(state)) {
        p.push({ ...pos, message: `section [${m[1]}:${m[2]}] has an unknown type: expected :vars or :children` });
        state = 'skip';
        return;
      }
      if (!graph.groups.has(group)) {
        if (state === 'vars' && !pending.has(group)) pending.set(group, { pos, state: 'vars', parents: [] });
        graph.addGroup(group, pos);
      }
      const wait = pending.get(group);
      if (wait && state !== 'vars') {
        if (wait.state === 'children') declareChildren(graph, group, pending, pos);
        else pending.delete(group);
      }
      return;
    }
    if (line.startsWith('[') && line.endsWith(']')) {
      p.push({ ...pos, message: `invalid section '${line}': no spaces or other characters inside [ ]` });
      state = 'skip';
      return;
    }
    if (state === 'skip') return;
    if (state === 'hosts') hostLine(graph, group, line, pos);
    else if (state === 'vars') {
      const eq = line.indexOf('=');
      if (eq < 0) {
        p.push({ ...pos, message: `expected key=value in [${group}:vars], got '${line}'` });
        return;
      }
      const key = line.slice(0, eq).trim();
      const valueCol = pos.col + raw.trimStart().indexOf('=') + 1;
      graph.setVar(graph.groups.get(group)!, key, pythonValue(line.slice(eq + 1).trim()), { ...pos, col: valueCol });
    } else {
      const c = GROUP_NAME.exec(line);
      if (!c) {
        p.push({ ...pos, message: `expected a group name in [${group}:children], got '${line}'` });
        return;
      }
      const child = c[1];
      if (graph.groups.has(child)) graph.addChild(group, child, pos);
      else {
        const wait = pending.get(child) ?? { pos, state: 'children', parents: [] };
        wait.parents.push(group);
        pending.set(child, wait);
      }
    }
  });
  for (const [name, wait] of pending)
    p.push({
      ...wait.pos,
      key: name,
      message:
        wait.state === 'vars'
          ? `[${name}:vars] for a group declared nowhere (add a [${name}] or [${name}:children] section)`
          : `[${wait.parents.at(-1)}:children] names '${name}', a group declared nowhere (add a [${name}] section)`,
    });
}

function declareChildren(graph: InventoryGraph, group: string, pending: Map<string, Pending>, pos: Position): void {
  const wait = pending.get(group)!;
  pending.delete(group);
  for (const parent of wait.parents) {
    graph.addChild(parent, group, wait.pos ?? pos);
    if (pending.get(parent)?.state === 'children') declareChildren(graph, parent, pending, pos);
  }
}

function hostLine(graph: InventoryGraph, group: string, line: string, pos: Position): void {
  const p = graph.problems;
  let tokens: string[];
  try {
    tokens = shlexSplit(line);
  } catch (e) {
    p.push({ ...pos, message: `cannot split host line '${line}': ${(e as Error).message}` });
    return;
  }
  if (!tokens.length) return;
  const entry = hostEntry(tokens[0]);
  if ('error' in entry) {
    p.push({ ...pos, key: group, message: entry.error });
    return;
  }
  const vars: [string, unknown, Position][] = [];
  for (const t of tokens.slice(1)) {
    const eq = t.indexOf('=');
    if (eq < 0) {
      p.push({ ...pos, message: `expected key=value after the host name, got '${t}'` });
      return;
    }
    const col = Math.max(1, line.indexOf(t) + 1) + pos.col - 1;
    vars.push([t.slice(0, eq), pythonValue(t.slice(eq + 1)), { ...pos, col }]);
  }
  for (const name of entry.names) {
    const h = graph.addHost(name, group, pos, entry.port);
    for (const [k, v, at] of vars) graph.setVar(h, k, v, at);
  }
}
