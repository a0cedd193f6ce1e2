// `kvmforge exits`: every selected host at once; one failing host is one line, the others still report.
import { writeFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import { saveInsight } from '../insight/saved.ts';
import type { Host } from '../core/types.ts';
import type { HostLoop } from '../runner/session.ts';
import { derive, exitsBars, exitsChart, exitsScript, exitsTable, parseExits, type ExitsRow } from '../insight/exits.ts';
import { parseReasons, reasonsLine, reasonsScript, type Reasons } from '../insight/reasons.ts';

export interface HostExits {
  host: string;
  vms: (ExitsRow & { reasons?: Reasons })[];
  missing?: string[];
  error?: string;
  /** --reasons asked for, but perf could not give them on this host */
  reasonsError?: string;
}

export async function exitsCommand(
  hosts: Host[],
  f: {
    interval?: string;
    vm?: string[];
    json?: boolean;
    plot?: string;
    reasons?: boolean;
    save?: boolean;
    journal?: string;
  },
  loop: HostLoop,
): Promise<number> {
  const interval = f.interval === undefined ? 5 : Number(f.interval);
  if (!(interval > 0 && interval <= 3600))
    throw ConfigError.one(`--interval '${f.interval}': expected seconds, more than 0 and at most 3600`);
  if (f.plot !== undefined && !f.plot.endsWith('.svg'))
    throw ConfigError.one(`--plot '${f.plot}': expected a file name ending in .svg`);
  const results = (
    await loop(
      hosts,
      async (s): Promise<HostExits> => {
        const t = s.transport;
        const h = s.host;
        {
          const r = await t.exec(
            `[ -e /dev/kvm ] || { echo 'no /dev/kvm: not a KVM host' >&2; exit 3; ` +
              `}\n${exitsScript(interval, f.vm ?? [])}`,
            { sudo: true, timeoutMs: (interval + 120) * 1000 },
          );
          if (r.code !== 0)
            return { host: h.name, vms: [], error: r.stderr.trim().split('\n').pop() || `exit ${r.code}` };
          const { vms, missing } = parseExits(r.stdout);
          const out: HostExits = { host: h.name, vms: vms.map((v) => derive(v, interval)), missing };
          const pids = out.vms.filter((v) => !v.error).map((v) => v.pid);
          if (f.reasons && pids.length) {
            // a second interval: perf's recording would disturb the counters' one
            const p = await t.exec(reasonsScript(pids, interval), { sudo: true, timeoutMs: (interval + 300) * 1000 });
            if (p.code !== 0) out.reasonsError = p.stderr.trim().split('\n').pop() || `exit ${p.code}`;
            else {
              const byPid = parseReasons(p.stdout);
              for (const v of out.vms) if (!v.error) v.reasons = byPid.get(v.pid) ?? { exits: {}, userspace: {} };
            }
          }
          return out;
        }
      },
      { facts: false },
    )
  ).map((r): HostExits => (r.ok ? r.value : { host: r.host, vms: [], error: r.error }));
  if (f.save)
    process.stderr.write(`saved: ${saveInsight(f.journal ?? '.kvmforge', 'exits', { interval, hosts: results })}\n`);
  if (f.plot) {
    const bars = exitsBars(results);
    writeFileSync(f.plot, exitsChart(interval, bars));
    process.stderr.write(`plot: ${f.plot}\n`);
  }
  if (f.json) process.stdout.write(JSON.stringify({ interval, hosts: results }, null, 2) + '\n');
  else {
    for (const r of results) {
      process.stdout.write(r.error ? `${r.host}: FAILED: ${r.error}\n` : `${exitsTable(r.host, r.vms, interval)}\n`);
      for (const v of r.vms) if (v.reasons) process.stdout.write(`${reasonsLine(v.name, v.reasons, interval)}\n`);
      if (r.reasonsError) process.stdout.write(`${r.host}: no exit reasons: ${r.reasonsError}\n`);
      for (const m of r.missing ?? []) process.stdout.write(`${r.host}: no running VM named ${m}\n`);
      process.stdout.write('\n');
    }
  }
  return results.some((r) => r.error || r.reasonsError || r.missing?.length || r.vms.some((v) => v.error && !v.note))
    ? 1
    : 0;
}
