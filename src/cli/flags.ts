import type { ParseArgsConfig } from 'node:util';
import { ConfigError } from '../core/errors.ts';

/** A whole-number flag (`--hosts 2`), `dflt` when absent; out of range is bad input (exit 2). */
export function wholeFlag(
  v: string | boolean | undefined,
  name: string,
  dflt: number,
  min: number,
  max = Infinity,
): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw ConfigError.one(
      `--${name} '${v}': expected a whole number ${max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`}`,
    );
  return n;
}

/** Every flag the CLI knows. */
export const options = {
  inventory: { type: 'string', short: 'i' },
  limit: { type: 'string', short: 'l' },
  steps: { type: 'string' },
  skip: { type: 'string' },
  forks: { type: 'string', short: 'f' },
  diff: { type: 'boolean' },
  verify: { type: 'boolean' },
  json: { type: 'boolean' },
  junit: { type: 'string' },
  'retry-failed': { type: 'boolean' },
  'accept-new-host-keys': { type: 'boolean' },
  'known-hosts': { type: 'string' },
  'ask-become-pass': { type: 'boolean', short: 'K' },
  journal: { type: 'string' },
  list: { type: 'boolean' },
  host: { type: 'string' },
  hosts: { type: 'string' },
  from: { type: 'string' },
  out: { type: 'string' },
  memory: { type: 'string' },
  cpus: { type: 'string' },
  'cold-boot': { type: 'boolean' },
  emulated: { type: 'string', multiple: true },
  plain: { type: 'string', multiple: true },
  'second-nic': { type: 'string', multiple: true },
  size: { type: 'string' },
  'block-size': { type: 'string' },
  reasons: { type: 'boolean' },
  runs: { type: 'string' },
  workloads: { type: 'string' },
  dir: { type: 'string' },
  interval: { type: 'string' },
  plan: { type: 'boolean' },
  once: { type: 'boolean' },
  plot: { type: 'string' },
  sort: { type: 'string' },
  vm: { type: 'string', multiple: true },
  markdown: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

export type Flags = {
  [K in keyof typeof options]?: (typeof options)[K] extends { multiple: true }
    ? string[]
    : (typeof options)[K]['type'] extends 'string'
      ? string
      : boolean;
};
