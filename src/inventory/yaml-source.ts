// An Ansible YAML inventory file read into the graph as Ansible's yaml plugin reads it: top-level keys are
// groups; a group has hosts, vars and children (a string stands for a one-key mapping); host keys may carry
// a port and ranges. What Ansible only warns about and skips (other keys, a group that is no mapping) is
// refused here with its line, and so is what it misreads (several hosts in one string).
import {
  isAlias,
  isMap,
  isScalar,
  isSeq,
  visit,
  type Document,
  type LineCounter,
  type Node,
  type Pair,
  type YAMLMap,
} from 'yaml';
import type { Problem } from '../core/errors.ts';
import type { Position } from '../core/types.ts';
import type { InventoryGraph, VarPositions } from './graph.ts';
import { hostEntry } from './hostnames.ts';
import { parseAnsibleYaml } from './yaml11.ts';

export interface YamlText {
  doc: Document;
  at: (offset: number | undefined) => Position;
  /** problems that make it no YAML (syntax): the caller may try INI before reporting them */
  syntax: Problem[];
  /** problems with YAML that parsed (duplicate keys, unknown tags, alias bombs) */
  problems: Problem[];
}

/** Parses an Ansible YAML file (inventory or vars file) with positions and the checks every such file gets. */
export function readYaml(text: string, file: string): YamlText {
  const { doc, lines } = parseAnsibleYaml(text);
  const at = (offset: number | undefined) => position(file, lines, offset);
  const syntax = doc.errors.map((e) => ({ ...at(e.pos[0]), message: `YAML syntax: ${e.message.split('\n')[0]}` }));
  const problems: Problem[] = [];
  for (const w of doc.warnings)
    if (w.code === 'TAG_RESOLVE_FAILED')
      problems.push({ ...at(w.pos[0]), message: `${w.message.split('\n')[0]} (Ansible knows !vault and !unsafe)` });
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key) || (pair.key as { value: unknown }).value === '<<') continue;
        const k = String(pair.key.value);
        if (seen.has(k))
          problems.push({ ...at(pair.key.range?.[0]), key: k, message: `duplicate key '${k}' in one mapping` });
        seen.add(k);
      }
    },
  });
  return { doc, at, syntax, problems };
}

function position(file: string, lines: LineCounter, offset: number | undefined): Position {
  if (offset === undefined) return { file, line: 1, col: 1 };
  const { line, col } = lines.linePos(offset);
  return { file, line, col };
}

interface Entry {
  key: unknown;
  keyPos: Position;
  value: Node | null;
  valuePos: Position;
}

/** A mapping's entries as PyYAML builds them: merged (<<) entries first, own entries override, aliases resolved. */
export function entries(y: YamlText, map: YAMLMap): Entry[] {
  const out = new Map<unknown, Entry>();
  const add = (e: Entry) => out.set(e.key, out.has(e.key) ? { ...e, keyPos: out.get(e.key)!.keyPos } : e);
  const isMerge = (pair: Pair) => isScalar(pair.key) && (pair.key as { value: unknown }).value === '<<';
  for (const m of map.items.filter(isMerge)) {
    const via = y.at((m.key as Node).range?.[0]);
    const v = deref(y, m.value as Node | null);
    const sources = isSeq(v) ? v.items.map((i) => deref(y, i as Node)) : [v];
    for (const src of sources)
      if (isMap(src)) for (const e of entries(y, src)) add({ ...e, keyPos: via, valuePos: via });
  }
  for (const pair of map.items.filter((x) => !isMerge(x))) {
    const keyNode = pair.key as Node | null;
    // an alias's value is where the alias is written (the anchor may be far away)
    const written = pair.value as Node | null;
    add({
      key: isScalar(keyNode) ? keyNode.value : keyNode,
      keyPos: y.at(keyNode?.range?.[0]),
      value: deref(y, written),
      valuePos: y.at((written ?? keyNode)?.range?.[0]),
    });
  }
  return [...out.values()];
}

function deref(y: YamlText, n: Node | null): Node | null {
  return isAlias(n) ? ((n.resolve(y.doc) as Node | undefined) ?? null) : n;
}

/** A value as plain data; an alias bomb is a problem, not a hang. */
export function plainValue(y: YamlText, n: Node | null, at: Position, problems: Problem[]): unknown {
  if (n === null) return null;
  try {
    return n.toJS(y.doc, { maxAliasCount: 50 });
  } catch (e) {
    problems.push({
      ...at,
      message: `YAML: ${(e as Error).message} (aliases expanding to too many nodes are refused)`,
    });
    return null;
  }
}

/** Positions inside a value ('domains_vms.0.memory'), so steps can point into lists and maps. */
export function nestedPositions(y: YamlText, n: Node | null, prefix: string, depth = 0): VarPositions {
  const out: VarPositions = {};
  if (depth > 5 || n === null) return out;
  if (isMap(n))
    for (const e of entries(y, n)) {
      const k = `${prefix}.${String(e.key)}`;
      out[k] = e.valuePos;
      Object.assign(out, nestedPositions(y, e.value, k, depth + 1));
    }
  else if (isSeq(n))
    n.items.forEach((item, i) => {
      const v = deref(y, item as Node);
      const k = `${prefix}.${i}`;
      out[k] = y.at(v?.range?.[0]);
      Object.assign(out, nestedPositions(y, v, k, depth + 1));
    });
  return out;
}

const isNull = (n: Node | null) => n === null || (isScalar(n) && n.value === null);

/** Reads a YAML inventory into `graph`. Returns false when the text is not a YAML inventory (try INI). */
export function readYamlInventory(y: YamlText, graph: InventoryGraph): boolean {
  const top = y.doc.contents as Node | null;
  if (!isMap(top)) return false;
  const p = graph.problems;
  p.push(...y.problems);
  const plugin = top.items.find((i) => isScalar(i.key) && i.key.value === 'plugin');
  if (plugin) {
    p.push({
      ...y.at((plugin.key as Node).range?.[0]),
      key: 'plugin',
      message: 'an inventory plugin configuration: kvmforge reads static inventories (YAML, INI), not plugins',
    });
    return true;
  }
  for (const e of entries(y, top)) group(y, graph, e);
  return true;
}

function group(y: YamlText, graph: InventoryGraph, e: Entry): string | undefined {
  const p = graph.problems;
  if (typeof e.key !== 'string' || !e.key) {
    p.push({ ...e.keyPos, message: `a group name must be text, got ${JSON.stringify(e.key)}` });
    return undefined;
  }
  const name = e.key;
  if (!isNull(e.value) && !isMap(e.value)) {
    p.push({ ...e.valuePos, key: name, message: 'a group is a mapping of hosts, vars and children' });
    return undefined;
  }
  const g = graph.addGroup(name, e.keyPos);
  if (!isMap(e.value)) return name;
  for (const s of entries(y, e.value)) {
    const section = String(s.key);
    if (!['hosts', 'vars', 'children'].includes(section)) {
      p.push({
        ...s.keyPos,
        key: `${name}.${section}`,
        message: `unknown key '${section}': a group takes only hosts, vars and children`,
      });
      continue;
    }
    if (isNull(s.value)) continue;
    // a string stands for a mapping with that one key, as in Ansible (hosts: web1)
    const items: Entry[] = isScalar(s.value)
      ? [{ key: s.value.value, keyPos: s.valuePos, value: null, valuePos: s.valuePos }]
      : isMap(s.value)
        ? entries(y, s.value)
        : [];
    if (!isScalar(s.value) && !isMap(s.value)) {
      p.push({ ...s.valuePos, key: `${name}.${section}`, message: `${section} must be a mapping` });
      continue;
    }
    for (const item of items) {
      if (section === 'vars') {
        const key = String(item.key);
        graph.setVar(
          g,
          key,
          plainValue(y, item.value, item.valuePos, p),
          item.valuePos,
          nestedPositions(y, item.value, key),
        );
      } else if (section === 'children') {
        const child = group(y, graph, item);
        if (child !== undefined) graph.addChild(name, child, item.keyPos);
      } else hosts(y, graph, name, item);
    }
  }
  return name;
}

function hosts(y: YamlText, graph: InventoryGraph, groupName: string, item: Entry): void {
  const p = graph.problems;
  if (typeof item.key !== 'string') {
    p.push({
      ...item.keyPos,
      message: `a host name must be text, got ${JSON.stringify(item.key)} (quote numbers: "10")`,
    });
    return;
  }
  const entry = hostEntry(item.key);
  if ('error' in entry) {
    p.push({ ...item.keyPos, key: `${groupName}.hosts`, message: entry.error });
    return;
  }
  if (!isNull(item.value) && !isMap(item.value)) {
    p.push({ ...item.valuePos, key: item.key, message: "a host's vars are a mapping" });
    return;
  }
  const vars = isMap(item.value) ? entries(y, item.value) : [];
  for (const name of entry.names) {
    const h = graph.addHost(name, groupName, item.keyPos, entry.port);
    for (const v of vars) {
      const key = String(v.key);
      graph.setVar(h, key, plainValue(y, v.value, v.valuePos, p), v.valuePos, nestedPositions(y, v.value, key));
    }
  }
}
