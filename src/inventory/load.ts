// Loads inventories as Ansible does: the -i sources (YAML, INI, directories, host lists) into one graph,
// then each host's vars in Ansible's precedence — group vars written in the sources ('all' first, then the
// host's groups by depth, ansible_group_priority, name), then group_vars/ files in the same order (all.yml
// beats any group's vars written in the inventory), the host's own vars, host_vars files, -e extra vars.
// kvmforge's vars are checked where they are set; every problem is
// reported in one pass, before any connection.
import { resolve } from 'node:path';
import { ConfigError, type Problem } from '../core/errors.ts';
import type { Host } from '../core/types.ts';
import { coerce, VarChecker, type VarSite } from './check-vars.ts';
import { connectionOf } from './connection.ts';
import { type GroupNode, InventoryGraph, sortGroups, type Vars, type VarPositions } from './graph.ts';
import { NO_STEPS, type VarCatalog } from './schema.ts';
import { describeSources, readSource, readText, type SourceContext } from './sources.ts';
import { decryptVault } from './vault.ts';
import { readVarsFile, varsFilesOf } from './vars-files.ts';
import { Vaulted } from './yaml11.ts';

export interface Inventory {
  /** the sources, for messages */
  file: string;
  sources: string[];
  hosts: Host[];
  groups: Map<string, GroupNode>;
  graph: InventoryGraph;
  /** each host's vars as Ansible shows them (ansible-inventory --list): before kvmforge reads its own vars */
  ansibleVars: Map<string, Vars>;
  /** problems of a host's connection vars: they stop a run that selects the host, not the others */
  hostProblems: Map<string, Problem[]>;
  warnings: Problem[];
  /** decrypted vault values: masked in every log */
  secrets: string[];
}

export interface ExtraVars {
  vars: Vars;
  pos: VarPositions;
}

export interface LoadOptions {
  vaultPasswords?: string[];
  extraVars?: ExtraVars[];
  /** warnings (unknown vars under a kvmforge prefix) become errors */
  strict?: boolean;
}

/** Reads inventory sources; `catalog` holds the steps' vars (checked here, before any connection). */
export function loadInventory(
  sources: string | string[],
  catalog: VarCatalog = NO_STEPS,
  opts: LoadOptions = {},
): Inventory {
  const list = (Array.isArray(sources) ? sources : [sources]).filter(Boolean);
  const graph = new InventoryGraph({ file: list[0] ?? '(inventory)', line: 1, col: 1 });
  const ctx: SourceContext = { graph, vaultPasswords: opts.vaultPasswords ?? [], varDirs: [], files: [] };
  for (const s of list) readSource(s, ctx);
  return finish(graph, list, ctx, catalog, opts);
}

/** Reads one inventory given as text (YAML or INI), as if from `file`; no group_vars/host_vars. */
export function parseInventory(
  text: string,
  file: string,
  catalog: VarCatalog = NO_STEPS,
  opts: LoadOptions = {},
): Inventory {
  const graph = new InventoryGraph({ file, line: 1, col: 1 });
  const ctx: SourceContext = { graph, vaultPasswords: opts.vaultPasswords ?? [], varDirs: [], files: [] };
  readText(text, file, ctx);
  return finish(graph, [file], ctx, catalog, opts);
}

function finish(
  graph: InventoryGraph,
  sources: string[],
  ctx: SourceContext,
  catalog: VarCatalog,
  opts: LoadOptions,
): Inventory {
  const problems = graph.problems;
  // every problem in one pass: the sources' problems are reported together with the vars' below
  const broken = problems.length > 0;
  graph.reconcile();
  if (!graph.hosts.size && !broken)
    problems.push({
      file: sources[0],
      ...(ctx.files.length ? { line: 1, col: 1 } : {}),
      message: `no hosts in ${describeSources(sources)}`,
    });
  if (problems.length && !graph.hosts.size) throw new ConfigError(problems);

  const passwords = opts.vaultPasswords ?? [];
  const checker = new VarChecker(catalog);
  const warnings: Problem[] = [...graph.warnings];
  const sites: VarSite[] = [];
  const fileVars = (sub: 'group_vars' | 'host_vars', name: string) =>
    ctx.varDirs.flatMap((d) => varsFilesOf(d, sub, name)).map((f) => ({ f, ...readVarsFile(f, passwords, problems) }));
  const groupFiles = new Map([...graph.groups.keys()].map((g) => [g, fileVars('group_vars', g)] as const));
  for (const g of graph.groups.values()) {
    for (const [k, v] of Object.entries(g.vars))
      sites.push({ entity: g.name, key: k, value: v, pos: g.varPos[k], inner: g.varPos });
    for (const file of groupFiles.get(g.name)!)
      for (const [k, v] of Object.entries(file.vars))
        sites.push({ entity: g.name, key: k, value: v, pos: file.pos[k], inner: file.pos });
  }
  for (const x of opts.extraVars ?? [])
    for (const [k, v] of Object.entries(x.vars))
      sites.push({ entity: '-e', key: k, value: v, pos: x.pos[k], inner: x.pos });

  const secrets: string[] = [];
  const ansibleVars = new Map<string, Vars>();
  const hostProblems = new Map<string, Problem[]>();
  const hosts: Host[] = [];
  let undecrypted = 0;
  for (const h of graph.hosts.values()) {
    const hostFiles = fileVars('host_vars', h.name);
    for (const [k, v] of Object.entries(h.vars))
      sites.push({ entity: h.name, key: k, value: v, pos: h.varPos[k], inner: h.varPos });
    for (const file of hostFiles)
      for (const [k, v] of Object.entries(file.vars))
        sites.push({ entity: h.name, key: k, value: v, pos: file.pos[k], inner: file.pos });

    const vars: Vars = {};
    const varPos: VarPositions = {};
    const apply = (src: Vars, pos: VarPositions) => {
      for (const k of Object.keys(src)) {
        for (const p of Object.keys(varPos)) if (p === k || p.startsWith(`${k}.`)) delete varPos[p];
        vars[k] = src[k];
      }
      for (const [p, at] of Object.entries(pos)) if (p.split('.')[0] in src) varPos[p] = at;
    };
    const all = graph.groups.get('all')!;
    const groups = sortGroups(graph.groupsOf(h.name).filter((g) => g.name !== 'all'));
    // Ansible's VARIABLE_PRECEDENCE: all_inventory, groups_inventory, all_plugins_inventory, groups_plugins_…
    apply(all.vars, all.varPos);
    for (const g of groups) apply(g.vars, g.varPos);
    for (const f of groupFiles.get('all')!) apply(f.vars, f.pos);
    for (const g of groups) for (const f of groupFiles.get(g.name)!) apply(f.vars, f.pos);
    apply(h.vars, h.varPos);
    for (const f of hostFiles) apply(f.vars, f.pos);
    for (const x of opts.extraVars ?? []) apply(x.vars, x.pos);
    ansibleVars.set(h.name, { ...vars });

    // vault values: decrypted with the password given, else left out of what kvmforge reads
    for (const [k, v] of Object.entries(vars)) {
      const decrypted = decryptDeep(
        v,
        passwords,
        (msg) => {
          if (!passwords.length && !checker.schemaOf(k)) undecrypted++;
          else problems.push({ ...(varPos[k] ?? h.pos), key: `${h.name}.${k}`, message: msg });
        },
        secrets,
      );
      if (decrypted === undefined) delete vars[k];
      else vars[k] = decrypted;
    }
    // kvmforge's own vars as their declared types ('yes' → true, "5555" → 5555)
    for (const [k, v] of Object.entries(vars)) {
      const schema = checker.schemaOf(k);
      if (schema) vars[k] = coerce(schema, v);
    }
    const own: Problem[] = [];
    const conn = connectionOf(h.name, vars, varPos, own);
    if (own.length) hostProblems.set(h.name, own);
    hosts.push({
      name: h.name,
      groups: groups.map((g) => g.name),
      vars,
      varPos,
      pos: h.pos,
      conn,
    });
  }
  const seen = new Set<string>();
  for (const s of sites) {
    const id = `${s.entity}\0${s.key}\0${s.pos?.file}:${s.pos?.line}:${s.pos?.col}`;
    if (seen.has(id) || s.value instanceof Vaulted) continue;
    seen.add(id);
    checker.check({ ...s, pos: s.pos ?? { file: sources[0], line: 1, col: 1 } }, problems, warnings);
  }
  if (undecrypted)
    warnings.push({
      file: sources[0],
      message:
        `${undecrypted} vault-encrypted var value(s) left encrypted (no --vault-password-file); kvmforge does not ` +
        'use them',
    });
  if (opts.strict && warnings.length)
    problems.push(...warnings.map((w) => ({ ...w, message: `${w.message} (--strict)` })));
  if (problems.length) throw new ConfigError(dedupe(problems));
  return {
    file: describeSources(sources),
    sources: sources.map((s) => (s.includes(',') ? s : resolve(s))),
    hosts,
    groups: graph.groups,
    graph,
    ansibleVars,
    hostProblems,
    warnings: dedupe(warnings),
    secrets,
  };
}

/** Replaces vault values inside `v` with their plaintext; undefined (and `fail` called) when one can't be. */
function decryptDeep(v: unknown, passwords: string[], fail: (msg: string) => void, secrets: string[]): unknown {
  if (v instanceof Vaulted) {
    try {
      const plain = decryptVault(v.ciphertext, passwords);
      secrets.push(plain);
      return plain;
    } catch (e) {
      fail((e as Error).message);
      return undefined;
    }
  }
  if (Array.isArray(v)) {
    const out = v.map((x) => decryptDeep(x, passwords, fail, secrets));
    return out.includes(undefined) && v.some((x) => x !== undefined) ? undefined : out;
  }
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const d = decryptDeep(x, passwords, fail, secrets);
      if (d === undefined && x !== undefined) return undefined;
      out[k] = d;
    }
    return out;
  }
  return v;
}

function dedupe(ps: Problem[]): Problem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = `${p.file}:${p.line}:${p.col}:${p.key}:${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
