// Small helpers for steps' params(): a var's value or its declared default, and errors that point at the
// var's file:line.
import { dirname } from 'node:path';
import { ConfigError } from './errors.ts';
import type { Host, VarSpec } from './types.ts';

export function varOr<T>(host: Host, name: string, dflt: T): T {
  const v = host.vars[name];
  return v === undefined || v === null ? dflt : (v as T);
}

/** A step's var for a host: set in the inventory, else the default its declaration holds (written only there). */
export function varOf<T>(host: Host, vars: Record<string, VarSpec>, name: string): T {
  if (!(name in vars)) throw new Error(`var ${name} is not declared`);
  return varOr(host, name, vars[name].default as T);
}

/** An error at a var, or inside one with a dotted path ('domains_vms.0.memory'): the nearest known position. */
export function badVar(host: Host, name: string, message: string): ConfigError {
  let at = name;
  while (!host.varPos[at] && at.includes('.')) at = at.slice(0, at.lastIndexOf('.'));
  return ConfigError.one(message, { ...(host.varPos[at] ?? host.pos), key: `${host.name}.${name}` });
}

/** The directory a var's relative paths are read from: that of the inventory file that set it (a layered inventory's
 * own files stay beside it), else the host's. */
export function varDir(host: Host, name: string): string {
  return dirname((host.varPos[name] ?? host.pos).file);
}
