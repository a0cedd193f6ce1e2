// A library loaded on first use, not when its importer loads: `kvmforge steps` or `--help` should not pay for
// a template engine, a diff or a YAML parser it never calls.
import { createRequire } from 'node:module';
import type * as Zx from 'zx';

const require = createRequire(import.meta.url);

export function lazy<T>(id: string): () => T {
  let mod: T | undefined;
  return () => (mod ??= require(id) as T);
}

/** zx (local processes): ~100 ms of loading that a run over SSH alone never needs. */
export const zx = lazy<typeof Zx>('zx');
