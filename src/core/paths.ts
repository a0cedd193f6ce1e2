// Where kvmforge's own files are (the package root: templates, lab scripts) and where it caches (artifacts,
// lab images): one place for both, below everything else.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the nearest directory up from this file with kvmforge's package.json (source tree or dist/). */
export const PROJECT = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(d, 'package.json');
    if (existsSync(p) && /"name":\s*"kvmforge"/.test(readFileSync(p, 'utf8'))) return d;
    const up = dirname(d);
    if (up === d) throw new Error('kvmforge: cannot find its package root (package.json) above its own files');
    d = up;
  }
})();

/** The cache root: $KVMFORGE_CACHE or ~/.cache/kvmforge (made on first use). */
export function cacheDir(): string {
  const d = process.env.KVMFORGE_CACHE ?? join(homedir(), '.cache', 'kvmforge');
  mkdirSync(d, { recursive: true });
  return d;
}
