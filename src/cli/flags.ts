// The options a command was given, by their long names ('retry-failed'), and checks for number options.
import { ConfigError } from '../core/errors.ts';

export interface Flags {
  inventory?: string[];
  limit?: string;
  'extra-vars'?: string[];
  'vault-password-file'?: string[];
  strict?: boolean;
  verbose?: number;
  steps?: string;
  skip?: string;
  forks?: string;
  diff?: boolean;
  verify?: boolean;
  check?: boolean;
  json?: boolean;
  junit?: string;
  'list-hosts'?: boolean;
  'retry-failed'?: boolean;
  serial?: string;
  'max-fail-percentage'?: string;
  'detailed-exitcode'?: boolean;
  'accept-new-host-keys'?: boolean;
  'known-hosts'?: string;
  'ask-become-pass'?: boolean;
  journal?: string;
  list?: boolean;
  host?: string;
  graph?: string | boolean;
  vars?: boolean;
  hosts?: string;
  from?: string;
  out?: string;
  memory?: string;
  cpus?: string;
  'cold-boot'?: boolean;
  emulated?: string[];
  plain?: string[];
  'second-nic'?: string[];
  'install-deps'?: boolean;
  apply?: boolean;
  size?: string;
  'block-size'?: string;
  reasons?: boolean;
  runs?: string;
  workloads?: string;
  dir?: string;
  interval?: string;
  plan?: boolean;
  once?: boolean;
  plot?: string;
  sort?: string;
  vm?: string[];
  markdown?: boolean;
  'gpg-key'?: string;
  format?: string;
  save?: boolean;
}

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
