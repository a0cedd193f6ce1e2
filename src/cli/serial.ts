// Rolling batches as Ansible's `serial`: a number of hosts, a percentage of them (at least one host), or a
// list whose last entry repeats (`1,10%,50%`: a canary, then 10% at a time, then half).
import { ConfigError, type Problem } from '../core/errors.ts';
import type { Host } from '../core/types.ts';

export type SerialSpec = ({ n: number } | { percent: number })[];

/** Parses `--serial` / `kvmforge_serial` (a number, "P%", a list or "a,b,c"); a reason when it can't. */
export function parseSerial(v: unknown): SerialSpec | string {
  const items = Array.isArray(v) ? v : typeof v === 'number' ? [v] : String(v).split(',');
  if (!items.length) return 'expected a number of hosts, a percentage or a list of them';
  const out: SerialSpec = [];
  for (const raw of items) {
    const s = String(raw).trim();
    const pct = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(s);
    if (pct) {
      const p = Number(pct[1]);
      if (p <= 0 || p > 100) return `'${s}': a percentage must be over 0% and at most 100%`;
      out.push({ percent: p });
    } else if (/^[0-9]+$/.test(s)) {
      const n = Number(s);
      if (n < 1) return `'${s}': a batch needs at least one host`;
      out.push({ n });
    } else return `'${s}': expected a number of hosts (2) or a percentage (10%)`;
  }
  return out;
}

/** The hosts in batches, in order. */
export function batchesOf(hosts: Host[], spec: SerialSpec): Host[][] {
  const sizes = spec.map((x) => ('n' in x ? x.n : Math.max(1, Math.floor((hosts.length * x.percent) / 100))));
  const out: Host[][] = [];
  for (let i = 0, k = 0; i < hosts.length; k++) {
    const size = sizes[Math.min(k, sizes.length - 1)];
    out.push(hosts.slice(i, i + size));
    i += size;
  }
  return out;
}

/** The batches a run uses: --serial, else the hosts' kvmforge_serial (all must agree), else none. */
export function serialFor(hosts: Host[], flag: string | undefined): Host[][] | undefined {
  if (flag !== undefined) {
    const spec = parseSerial(flag);
    if (typeof spec === 'string') throw ConfigError.one(`--serial ${spec}`, { key: '--serial' });
    return batchesOf(hosts, spec);
  }
  const set = hosts.filter((h) => h.vars.kvmforge_serial !== undefined && h.vars.kvmforge_serial !== null);
  if (!set.length) return undefined;
  const problems: Problem[] = [];
  const first = JSON.stringify(set[0].vars.kvmforge_serial);
  for (const h of set) {
    const spec = parseSerial(h.vars.kvmforge_serial);
    const at = { ...(h.varPos.kvmforge_serial ?? h.pos), key: `${h.name}.kvmforge_serial` };
    if (typeof spec === 'string') problems.push({ ...at, message: spec });
    else if (JSON.stringify(h.vars.kvmforge_serial) !== first)
      problems.push({ ...at, message: `differs from ${set[0].name}'s (${first}): one roll-out has one serial` });
  }
  if (set.length !== hosts.length && !problems.length)
    problems.push({
      ...(set[0].varPos.kvmforge_serial ?? set[0].pos),
      key: `${set[0].name}.kvmforge_serial`,
      message: `set for ${set.length} of the ${hosts.length} selected hosts: set it for all (group all) or none`,
    });
  if (problems.length) throw new ConfigError(problems);
  return batchesOf(hosts, parseSerial(set[0].vars.kvmforge_serial) as SerialSpec);
}
