// group_vars/ and host_vars/ beside each inventory source, found as Ansible's host_group_vars plugin finds
// them: for an entity NAME the first of NAME (a directory: every file in it with no extension or
// .yml/.yaml/.json, sorted, recursively, skipping hidden and ~ files), NAME.yml, NAME.yaml, NAME.json.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { isMap, type Node } from 'yaml';
import type { Problem } from '../core/errors.ts';
import type { Vars, VarPositions } from './graph.ts';
import { decryptVault, isVaultText } from './vault.ts';
import { entries, nestedPositions, plainValue, readYaml } from './yaml-source.ts';

const EXTS = ['.yml', '.yaml', '.json'];

const kind = (path: string) => {
  try {
    const st = statSync(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
};

function dirFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const full = join(dir, name);
    const ext = extname(name);
    const k = kind(full);
    if (k === 'dir' && !ext) out.push(...dirFiles(full));
    else if (k === 'file' && (!ext || EXTS.includes(ext))) out.push(full);
  }
  return out;
}

/** The vars files for `name` under `<dir>/<sub>/`, in the order they are merged. */
export function varsFilesOf(dir: string, sub: 'group_vars' | 'host_vars', name: string): string[] {
  if (name.startsWith('/')) return [];
  const base = join(dir, sub);
  if (kind(base) !== 'dir') return [];
  for (const ext of ['', ...EXTS]) {
    const path = join(base, name + ext);
    const k = kind(path);
    if (k === 'dir') return dirFiles(path);
    if (k === 'file') return [path];
  }
  return [];
}

export interface VarsFile {
  vars: Vars;
  pos: VarPositions;
}

/** Reads one vars file (YAML or JSON, whole-file vault allowed): a mapping, or nothing when empty. */
export function readVarsFile(path: string, vaultPasswords: string[], problems: Problem[]): VarsFile {
  const out: VarsFile = { vars: {}, pos: {} };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    problems.push({ file: path, message: `cannot read vars file: ${(e as NodeJS.ErrnoException).code ?? e}` });
    return out;
  }
  if (isVaultText(text)) {
    try {
      text = decryptVault(text, vaultPasswords);
    } catch (e) {
      problems.push({ file: path, line: 1, col: 1, message: (e as Error).message });
      return out;
    }
  }
  const y = readYaml(text, path);
  problems.push(...y.syntax, ...y.problems);
  const top = y.doc.contents as Node | null;
  if (y.syntax.length || top === null || (!isMap(top) && (top as { value?: unknown }).value === null)) return out;
  if (!isMap(top)) {
    problems.push({ ...y.at(top.range?.[0]), message: 'a vars file holds a mapping of var names to values' });
    return out;
  }
  for (const e of entries(y, top)) {
    const key = String(e.key);
    out.vars[key] = plainValue(y, e.value, e.valuePos, problems);
    out.pos[key] = e.valuePos;
    Object.assign(out.pos, nestedPositions(y, e.value, key));
  }
  return out;
}
