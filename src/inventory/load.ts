// Loads an Ansible-shaped YAML inventory: validation with positions, group tree, merged host vars.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, parseDocument, isScalar, visit } from 'yaml';
import { ConfigError, type Problem } from '../core/errors.ts';
import type { Host, Position } from '../core/types.ts';
import { SourceMap } from './positions.ts';
import { buildSchema, HOSTNAME, NO_STEPS, type VarCatalog } from './schema.ts';

type Vars = Record<string, unknown>;

export interface Group {
  name: string;
  hosts: string[];
  children: string[];
  parents: string[];
  vars: Vars;
  varPos: Record<string, Position>;
  depth: number;
}

export interface Inventory {
  file: string;
  hosts: Host[];
  groups: Map<string, Group>;
}

const validators = new WeakMap<VarCatalog, ReturnType<Ajv['compile']>>();
function validate(data: unknown, catalog: VarCatalog) {
  let v = validators.get(catalog);
  if (!v) {
    v = new Ajv({ allErrors: true, strict: false }).compile(buildSchema(catalog));
    validators.set(catalog, v);
  }
  v(data);
  return v.errors ?? [];
}

/** Reads an inventory; `catalog` holds the steps' vars (checked here, before any connection). */
export function loadInventory(path: string, catalog: VarCatalog = NO_STEPS): Inventory {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw ConfigError.one(`cannot read inventory: ${(e as NodeJS.ErrnoException).code ?? e}`, { file: path });
  }
  return parseInventory(text, path, catalog);
}

export function parseInventory(text: string, file: string, catalog: VarCatalog = NO_STEPS): Inventory {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const src = new SourceMap(file, doc, lines);
  const problems: Problem[] = [];
  for (const err of doc.errors) {
    if (err.code === 'DUPLICATE_KEY') continue;
    const p = src.at(err.pos[0]);
    problems.push({ ...p, message: `YAML syntax: ${err.message.split('\n')[0]}` });
  }
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const k = String(pair.key.value);
        if (seen.has(k))
          problems.push({
            ...src.at(pair.key.range?.[0]),
            key: k,
            message: `duplicate key '${k}' (a host or group is named twice in one mapping)`,
          });
        seen.add(k);
      }
    },
  });
  if (problems.length) throw new ConfigError(problems);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 50 });
  } catch (e) {
    throw ConfigError.one(`YAML: ${(e as Error).message} (aliases expanding to too many nodes are refused)`, src.at(0));
  }
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw ConfigError.one('expected a mapping with an `all:` group at the top', src.at(0));
  }
  for (const e of validate(data, catalog)) problems.push(describe(e, src));
  if (problems.length) throw new ConfigError(dedupe(problems));
  return build(data as Record<string, unknown>, src, dirname(resolve(file)));
}

function dedupe(ps: Problem[]): Problem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = `${p.line}:${p.col}:${p.key}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function describe(e: ErrorObject, src: SourceMap): Problem {
  const path = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const key = path.join('.');
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = (e.params as { additionalProperty: string }).additionalProperty;
      return {
        ...src.pos([...path, prop], true),
        key: [...path, prop].join('.'),
        message: `unknown key '${prop}': a group takes only hosts, vars and children`,
      };
    }
    case 'propertyNames':
    case 'pattern':
    case 'anyOf':
    case 'enum':
    case 'not': {
      if (e.propertyName !== undefined || e.keyword === 'propertyNames') {
        const prop = e.propertyName ?? (e.params as { propertyName?: string }).propertyName ?? '';
        const inVars = path.length > 0 && (path.at(-1) === 'vars' || path.at(-2) === 'hosts');
        const msg = inVars
          ? `unknown key '${prop}': not a kvmforge var (names starting with a step's name are reserved; see ` +
            `inventories/schema.json)`
          : `invalid name '${prop}': expected letters, digits, '.', '_' or '-' (${HOSTNAME})`;
        return { ...src.pos([...path, prop], true), key: [...path, prop].join('.'), message: msg };
      }
      const allowed = (e.params as { allowedValues?: unknown[] }).allowedValues;
      return {
        ...src.pos(path),
        key,
        message: allowed
          ? `expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`
          : `expected ${e.message}`,
      };
    }
    case 'type':
      return {
        ...src.pos(path),
        key,
        message: `expected ${(e.params as { type: string | string[] }).type.toString().replace(',', ' or ')}`,
      };
    default:
      return { ...src.pos(path), key, message: `expected a value that ${e.message}` };
  }
}

function build(data: Record<string, unknown>, src: SourceMap, baseDir: string): Inventory {
  const problems: Problem[] = [];
  const groups = new Map<string, Group>();
  const hostDefs = new Map<string, { vars: Vars; varPos: Record<string, Position>; pos: Position }>();

  const groupOf = (name: string): Group => {
    let g = groups.get(name);
    if (!g) {
      g = { name, hosts: [], children: [], parents: [], vars: {}, varPos: {}, depth: 0 };
      groups.set(name, g);
    }
    return g;
  };
  const readVars = (vars: unknown, path: string[], into: Vars, pos: Record<string, Position>) => {
    if (!vars || typeof vars !== 'object') return;
    for (const [k, v] of Object.entries(vars as Vars)) {
      into[k] = v;
      pos[k] = src.pos([...path, k]);
      nestedPositions(v, [...path, k], k, pos);
    }
  };
  // positions of nested values too ('domains_vms.0.memory'), so steps can point into lists and maps
  const nestedPositions = (v: unknown, path: string[], key: string, pos: Record<string, Position>, depth = 0) => {
    if (!v || typeof v !== 'object' || depth > 5) return;
    for (const [k, sub] of Object.entries(v as Vars)) {
      pos[`${key}.${k}`] = src.pos([...path, k]);
      nestedPositions(sub, [...path, k], `${key}.${k}`, pos, depth + 1);
    }
  };
  const walk = (name: string, g: unknown, path: string[], stack: string[]) => {
    const group = groupOf(name);
    if (stack.includes(name)) {
      problems.push({
        ...src.pos(path, true),
        key: path.join('.'),
        message: `group '${name}' is its own ancestor (${[...stack, name].join(' → ')})`,
      });
      return;
    }
    if (!g || typeof g !== 'object') return;
    const o = g as { hosts?: Record<string, unknown>; vars?: Vars; children?: Record<string, unknown> };
    readVars(o.vars, [...path, 'vars'], group.vars, group.varPos);
    for (const [h, hv] of Object.entries(o.hosts ?? {})) {
      if (!group.hosts.includes(h)) group.hosts.push(h);
      let def = hostDefs.get(h);
      if (!def) {
        def = { vars: {}, varPos: {}, pos: src.pos([...path, 'hosts', h], true) };
        hostDefs.set(h, def);
      }
      readVars(hv, [...path, 'hosts', h], def.vars, def.varPos);
    }
    for (const [c, cg] of Object.entries(o.children ?? {})) {
      if (!group.children.includes(c)) group.children.push(c);
      const child = groupOf(c);
      if (!child.parents.includes(name)) child.parents.push(name);
      walk(c, cg, [...path, 'children', c], [...stack, name]);
    }
  };

  groupOf('all');
  for (const [top, g] of Object.entries(data)) {
    if (top !== 'all') {
      const all = groupOf('all');
      if (!all.children.includes(top)) all.children.push(top);
      if (!groupOf(top).parents.includes('all')) groupOf(top).parents.push('all');
    }
    walk(top, g, [top], top === 'all' ? [] : ['all']);
  }
  for (const name of hostDefs.keys()) {
    if (groups.has(name))
      problems.push({ ...hostDefs.get(name)!.pos, key: name, message: `'${name}' is both a host and a group name` });
  }
  if (problems.length) throw new ConfigError(problems);

  // depth = longest path from all (Ansible sorts groups by depth, then name)
  const depthOf = (name: string, seen: string[] = []): number => {
    const g = groups.get(name)!;
    if (name === 'all' || seen.includes(name)) return 0;
    return 1 + Math.max(0, ...g.parents.map((p) => depthOf(p, [...seen, name])));
  };
  for (const g of groups.values()) g.depth = depthOf(g.name);

  // hosts in no group but all are 'ungrouped', as in Ansible
  const grouped = new Set([...groups.values()].filter((g) => g.name !== 'all').flatMap((g) => g.hosts));
  const ungrouped = groupOf('ungrouped');
  if (!groups.get('all')!.children.includes('ungrouped')) groups.get('all')!.children.push('ungrouped');
  if (!ungrouped.parents.includes('all')) ungrouped.parents.push('all');
  for (const h of groups.get('all')!.hosts)
    if (!grouped.has(h) && !ungrouped.hosts.includes(h)) ungrouped.hosts.push(h);

  const hosts: Host[] = [];
  for (const [name, def] of hostDefs) {
    const memberOf = new Set<string>();
    const climb = (g: string) => {
      if (memberOf.has(g)) return;
      memberOf.add(g);
      for (const p of groups.get(g)!.parents) climb(p);
    };
    for (const g of groups.values()) if (g.hosts.includes(name)) climb(g.name);
    memberOf.add('all');
    const ordered = [...memberOf]
      .map((n) => groups.get(n)!)
      .sort((a, b) => a.depth - b.depth || a.name.localeCompare(b.name));
    const vars: Vars = {};
    const varPos: Record<string, Position> = {};
    for (const g of [...ordered, def]) {
      for (const k of Object.keys(g.vars))
        for (const p of Object.keys(varPos)) if (p.startsWith(`${k}.`)) delete varPos[p];
      Object.assign(vars, g.vars);
      Object.assign(varPos, g.varPos);
    }
    const host: Host = {
      name,
      groups: ordered.map((g) => g.name).filter((g) => g !== 'all'),
      vars,
      varPos,
      pos: def.pos,
      conn: connection(name, vars, varPos, baseDir, problems),
    };
    hosts.push(host);
  }
  if (problems.length) throw new ConfigError(problems);
  return { file: src.file, hosts, groups };
}

function connection(
  name: string,
  v: Vars,
  pos: Record<string, Position>,
  baseDir: string,
  problems: Problem[],
): Host['conn'] {
  for (const secret of ['ansible_become_password', 'ansible_become_pass']) {
    if (secret in v) {
      problems.push({
        ...pos[secret],
        key: `${name}.${secret}`,
        message:
          'a sudo password in plain text is refused: set kvmforge_become_password_env: VAR_NAME and export VAR_NAME, ' +
          'or pass --ask-become-pass',
      });
    }
  }
  const address = String(v.ansible_host ?? v.ansible_ssh_host ?? name);
  if (!isIP(address) && !new RegExp(HOSTNAME).test(address)) {
    problems.push({
      ...(pos.ansible_host ?? pos.ansible_ssh_host),
      key: `${name}.ansible_host`,
      message: `'${address}' is neither an IP address nor a host name`,
    });
  }
  const local =
    v.ansible_connection === 'local' ||
    (name === 'localhost' && v.ansible_connection === undefined && v.ansible_host === undefined);
  let jump = v.kvmforge_jump as string | undefined;
  const common = v.ansible_ssh_common_args as string | undefined;
  if (!jump && common) {
    const m = /(?:-J\s*|ProxyJump[= ])['"]?([^'"\s]+)/.exec(common);
    if (m) jump = m[1];
  }
  const user = String(v.ansible_user ?? v.ansible_ssh_user ?? (local ? (process.env.USER ?? 'root') : 'root'));
  const key = v.ansible_ssh_private_key_file as string | undefined;
  return {
    address,
    port: Number(v.ansible_port ?? v.ansible_ssh_port ?? 22),
    user,
    keyFile: key ? resolve(baseDir, key.replace(/^~(?=\/)/, process.env.HOME ?? '~')) : undefined,
    local,
    become: v.ansible_become === undefined ? user !== 'root' : Boolean(v.ansible_become),
    becomePasswordEnv: v.kvmforge_become_password_env as string | undefined,
    jump,
    knownHostsFile: v.kvmforge_known_hosts_file ? resolve(baseDir, String(v.kvmforge_known_hosts_file)) : undefined,
  };
}

/** Ansible-style host patterns: names, groups, globs (*), 'all', joined with ',' or ':'; '!x' excludes. */
export function selectHosts(inv: Inventory, limit: string | undefined): Host[] {
  if (!limit) return inv.hosts;
  const parts = limit
    .split(/[,:]/)
    .map((s) => s.trim())
    .filter(Boolean);
  const match = (pat: string): Set<string> => {
    const re = new RegExp(`^${pat.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    const out = new Set<string>();
    for (const h of inv.hosts)
      if (re.test(h.name) || h.groups.some((g) => re.test(g)) || pat === 'all') out.add(h.name);
    return out;
  };
  const include = new Set<string>();
  const exclude = new Set<string>();
  for (const p of parts) {
    if (p.startsWith('!')) for (const h of match(p.slice(1))) exclude.add(h);
    else for (const h of match(p)) include.add(h);
  }
  const hosts = inv.hosts.filter((h) => include.has(h.name) && !exclude.has(h.name));
  if (!hosts.length) throw ConfigError.one(`--limit '${limit}' matches no host in ${inv.file}`);
  return hosts;
}
