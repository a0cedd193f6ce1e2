// Inventory sources as Ansible takes them from -i: a file (YAML, or INI — told apart the way Ansible's
// plugins are tried: YAML for .yml/.yaml/.json and for files without an extension, INI otherwise or when
// the text is no YAML mapping), a directory (every file in it, sorted, recursively, skipping hidden files,
// group_vars/, host_vars/ and Ansible's ignored extensions, .ini among them), or a host list ('a,b,').
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { InventoryGraph } from './graph.ts';
import { hostEntry } from './hostnames.ts';
import { readIniInventory } from './ini-source.ts';
import { decryptVault, isVaultText } from './vault.ts';
import { readYaml, readYamlInventory } from './yaml-source.ts';

// Ansible's INVENTORY_IGNORE_EXTS (REJECT_EXTS + .orig, .ini, .cfg, .retry) and IGNORED_ALWAYS
const IGNORED_EXTS = ['.pyc', '.pyo', '.swp', '.bak', '~', '.rpm', '.md', '.txt', '.rst', '.orig', '.ini', '.cfg'];
const IGNORED = (name: string) =>
  name.startsWith('.') ||
  ['host_vars', 'group_vars', 'vars_plugins'].includes(name) ||
  [...IGNORED_EXTS, '.retry'].some((e) => name.endsWith(e));
const YAML_EXTS = ['.yml', '.yaml', '.json'];

export interface SourceContext {
  graph: InventoryGraph;
  vaultPasswords: string[];
  /** directories whose group_vars/ and host_vars/ apply (each source's own directory), in order */
  varDirs: string[];
  /** the files read, for messages */
  files: string[];
}

/** Reads one -i source into the graph. */
export function readSource(source: string, ctx: SourceContext): void {
  const p = ctx.graph.problems;
  let st: ReturnType<typeof statSync> | undefined;
  try {
    st = statSync(source);
  } catch {
    st = undefined;
  }
  if (!st && source.includes(',')) {
    hostList(source, ctx);
    return;
  }
  if (!st) {
    p.push({ file: source, message: 'cannot read inventory: no such file or directory' });
    return;
  }
  const full = resolve(source);
  if (st.isDirectory()) {
    if (!ctx.varDirs.includes(full)) ctx.varDirs.push(full);
    for (const name of readdirSync(full).sort()) {
      if (IGNORED(name)) continue;
      readSource(join(source, name), { ...ctx, varDirs: [] });
    }
    return;
  }
  if (!ctx.varDirs.includes(dirname(full))) ctx.varDirs.push(dirname(full));
  readFile(source, st.mode, ctx);
}

function readFile(file: string, mode: number, ctx: SourceContext): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    ctx.graph.problems.push({ file, message: `cannot read inventory: ${(e as NodeJS.ErrnoException).code ?? e}` });
    return;
  }
  if (mode & 0o111 && text.startsWith('#!')) {
    ctx.graph.problems.push({
      file,
      line: 1,
      col: 1,
      message: 'an executable inventory script: kvmforge reads static inventories; save its --list output as a file',
    });
    return;
  }
  readText(text, file, ctx);
}

/** Reads inventory text (YAML or INI, possibly vault-encrypted) into the graph. */
export function readText(text: string, file: string, ctx: SourceContext): void {
  const p = ctx.graph.problems;
  ctx.files.push(file);
  if (isVaultText(text)) {
    try {
      text = decryptVault(text, ctx.vaultPasswords);
    } catch (e) {
      p.push({ file, line: 1, col: 1, message: (e as Error).message });
      return;
    }
  }
  const ext = extname(file).toLowerCase();
  if (!ext || YAML_EXTS.includes(ext)) {
    const y = readYaml(text, file);
    if (!y.syntax.length && readYamlInventory(y, ctx.graph)) return;
    if (!y.syntax.length && y.doc.contents === null) return; // empty or only comments: no hosts from it
    // not a YAML inventory: Ansible's INI plugin is tried next (an INI file named .yaml is read as INI)
    const trial = new InventoryGraph(ctx.graph.origin);
    readIniInventory(text, file, trial);
    if (trial.problems.length && !looksLikeIni(text)) {
      if (y.syntax.length) p.push(...y.syntax);
      else
        p.push({
          file,
          line: 1,
          col: 1,
          message:
            'not an inventory: as YAML it is no mapping of groups (all:, or group names), and as INI ' +
            `line ${trial.problems[0].line}: ${trial.problems[0].message}`,
        });
      return;
    }
  }
  readIniInventory(text, file, ctx.graph);
}

/** An INI inventory has [section] lines, or host lines with key=value; YAML has neither at the start of a line. */
function looksLikeIni(text: string): boolean {
  return text
    .split('\n')
    .some((l) => /^\s*\[[^\]\s]+\]\s*([#;].*)?$/.test(l) || /^\s*[^\s#;:]+\s+[A-Za-z_]\w*=/.test(l));
}

function hostList(source: string, ctx: SourceContext): void {
  const where = { file: '(-i host list)', line: 1, col: 1 };
  for (const item of source.split(',').map((s) => s.trim())) {
    if (!item) continue;
    const e = hostEntry(item);
    if ('error' in e) ctx.graph.problems.push({ ...where, message: e.error });
    else for (const n of e.names) ctx.graph.addHost(n, 'ungrouped', where, e.port);
  }
}

/** A short name for a list of sources in messages. */
export function describeSources(sources: string[]): string {
  return sources.length === 1 ? sources[0] : `${sources.map((s) => basename(s)).join(', ')}`;
}
