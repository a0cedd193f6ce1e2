// Whether OpenSSH's configuration says the same for every host: then one `ssh -G` per set of options answers
// for all hosts given those options (only the name differs), instead of one per host. It does when no file
// ssh reads — the -F file, or ~/.ssh/config and /etc/ssh/ssh_config, with every file they Include — has a
// `Match`, a `Host` line other than `Host *`, a `%` token or hostname canonicalization. Anything this reader
// is not sure of (a file it cannot read, a pattern in a directory name, deep Includes) answers no: each host
// then asks ssh on its own, as before.
import { readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { globRe } from '../core/glob.ts';

/** ssh_config's words on a line: `Key value…` or `Key=value…`, double quotes grouping. */
function words(line: string): string[] {
  return [...line.replace(/^(\S+?)\s*=\s*/, '$1 ').matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/** The files an Include names (ssh_config(5): relative paths are in ~/.ssh for a user's file, /etc/ssh for the
 * system's; a pattern only in the last part); undefined when this reader cannot tell. */
function included(pattern: string, system: boolean): string[] | undefined {
  const path = pattern.replace(/^~(?=\/|$)/, homedir());
  const full = isAbsolute(path) ? path : join(system ? '/etc/ssh' : join(homedir(), '.ssh'), path);
  const dir = dirname(full);
  const name = basename(full);
  if (/[*?[]/.test(dir)) return undefined;
  if (!/[*?[]/.test(name)) return [full];
  if (/\[/.test(name)) return undefined;
  const re = globRe(name);
  try {
    return readdirSync(dir)
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dir, f));
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? [] : undefined;
  }
}

function fileIsGeneral(file: string, system: boolean, depth: number): boolean {
  if (depth > 8) return false;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    // ssh skips a configuration file (or an Include) that does not exist
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    if (line.includes('%')) return false;
    const [key, ...args] = words(line);
    const k = key.toLowerCase();
    if (k === 'match') return false;
    if (k === 'host' && !(args.length === 1 && args[0] === '*')) return false;
    if (k === 'canonicalizehostname' && args[0]?.toLowerCase() !== 'no') return false;
    if (k === 'include')
      for (const a of args) {
        const files = included(a, system);
        if (!files?.every((f) => fileIsGeneral(f, system, depth + 1))) return false;
      }
  }
  return true;
}

const known = new Map<string, boolean>();

/** Whether ssh's configuration (the -F file, or the user's and the system's) is the same for every host. */
export function configIsGeneral(configFile?: string): boolean {
  const key = configFile ?? '';
  let v = known.get(key);
  if (v === undefined) {
    v = configFile
      ? fileIsGeneral(configFile, false, 0)
      : fileIsGeneral(join(homedir(), '.ssh/config'), false, 0) && fileIsGeneral('/etc/ssh/ssh_config', true, 0);
    known.set(key, v);
  }
  return v;
}
