import { ConfigError } from '../core/errors.ts';

/** A whole-number flag (`--hosts 2`), `dflt` when absent; out of range is bad input (exit 2). */
export function wholeFlag(v: string | boolean | undefined, name: string, dflt: number, min: number, max = Infinity): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw ConfigError.one(`--${name} '${v}': expected a whole number ${max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`}`);
  return n;
}
