// VM insight results kept for the platform report: `exits --save` and `bench --save` write them under the
// journal root (insight/<kind>-<time>.json); the report draws the newest of each.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type InsightKind = 'exits' | 'bench';

/** Writes the result whole (temp file, then rename); returns its path. */
export function saveInsight(root: string, kind: InsightKind, data: unknown): string {
  const dir = join(root, 'insight');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date()
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
  const file = join(dir, `${kind}-${stamp}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify({ saved: stamp, ...(data as object) }, null, 2));
  renameSync(`${file}.tmp`, file);
  return file;
}

/** The newest saved result of a kind, or undefined. */
export function newestInsight<T>(root: string, kind: InsightKind): (T & { saved: string }) | undefined {
  const dir = join(root, 'insight');
  if (!existsSync(dir)) return undefined;
  const f = readdirSync(dir)
    .filter((n) => n.startsWith(`${kind}-`) && n.endsWith('.json'))
    .sort()
    .at(-1);
  return f ? (JSON.parse(readFileSync(join(dir, f), 'utf8')) as T & { saved: string }) : undefined;
}
