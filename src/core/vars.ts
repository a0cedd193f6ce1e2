// Small helpers for steps' params(): defaults and errors that point at the var's file:line.
import { ConfigError } from './errors.ts';
import type { Host } from './types.ts';

export function varOr<T>(host: Host, name: string, dflt: T): T {
  const v = host.vars[name];
  return v === undefined || v === null ? dflt : (v as T);
}

export function badVar(host: Host, name: string, message: string): ConfigError {
  return ConfigError.one(message, { ...(host.varPos[name] ?? host.pos), key: `${host.name}.${name}` });
}
