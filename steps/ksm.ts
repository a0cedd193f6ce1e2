// ksm: Kernel Samepage Merging on/off and its scan rate, now (sysfs) and at every boot (a systemd unit).
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { varOf } from '../src/core/vars.ts';
import { fact, strictFact, type Change, type Host, type Step, type VarSpec } from '../src/core/types.ts';
import { cpu, init, ksm } from '../src/facts/host.ts';

export const UNIT = 'kvmforge-ksm.service';
export const UNIT_FILE = `/etc/systemd/system/${UNIT}`;

interface Params {
  run: 0 | 1 | 2;
  pagesToScan: number;
  sleepMs: number;
  policy: 'manual' | 'thesis';
  role: 'test' | 'desktop' | 'production';
  cpuLimit: number;
}

/** The thesis's policy (§5.2.1): on for test and desktop hosts; on production hosts only while CPU stays under ~70%. */
export function thesisRun(
  role: Params['role'],
  load1: number,
  cpus: number,
  limit: number,
): { run: 0 | 1; why: string } {
  if (role !== 'production') return { run: 1, why: `${role} host: KSM on` };
  const busy = load1 / Math.max(1, cpus);
  return busy > limit / 100
    ? { run: 0, why: `production host at ${Math.round(busy * 100)}% CPU (over ${limit}%): KSM off` }
    : { run: 1, why: `production host at ${Math.round(busy * 100)}% CPU (under ${limit}%): KSM on` };
}

export function unitText(p: { run: number; pagesToScan: number; sleepMs: number }): string {
  return `# kvmforge ksm: KSM settings are lost at reboot; this unit puts them back.
[Unit]
Description=kvmforge: Kernel Samepage Merging settings
ConditionPathExists=/sys/kernel/mm/ksm/run

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '${[
    `echo ${p.pagesToScan} > /sys/kernel/mm/ksm/pages_to_scan`,
    `echo ${p.sleepMs} > /sys/kernel/mm/ksm/sleep_millisecs`,
    `echo ${p.run} > /sys/kernel/mm/ksm/run`,
  ].join('; ')}'

[Install]
WantedBy=multi-user.target
`;
}

/** The 1-minute load average. */
export const loadavg = strictFact('loadavg', 'cat /proc/loadavg', (out) => Number(out.split(' ')[0]));
/** `systemctl is-enabled UNIT` ('' when the unit is not installed). */
export const unitEnabled = (unit: string) =>
  fact(`is-enabled:${unit}`, `systemctl is-enabled ${unit} 2>/dev/null || true`, (out) => out.trim());

const vars: Record<string, VarSpec> = {
  ksm_run: {
    schema: { enum: [0, 1, 2] },
    default: 1,
    defaultText: '1; 0 off, 2 off and unmerge',
    description: '1 merge, 0 stop, 2 stop and unmerge all pages.',
  },
  ksm_pages_to_scan: {
    schema: { type: 'integer', minimum: 1, maximum: 100000 },
    default: 100,
    description: 'Pages scanned per wake-up.',
  },
  ksm_sleep_millisecs: {
    schema: { type: 'integer', minimum: 1, maximum: 60000 },
    default: 20,
    description: 'Sleep between scans.',
  },
  ksm_policy: {
    schema: { enum: ['manual', 'thesis'] },
    default: 'manual',
    defaultText:
      '`manual`, or `thesis`: on for `ksm_host_role` test/desktop, on production hosts only below ' +
      '`ksm_cpu_limit_percent` CPU load',
    description:
      'manual: ksm_run as given; thesis: on for test/desktop hosts, on production hosts only under ' +
      'ksm_cpu_limit_percent CPU.',
  },
  ksm_host_role: {
    schema: { enum: ['test', 'desktop', 'production'] },
    default: 'test',
    description: 'For ksm_policy: thesis.',
  },
  ksm_cpu_limit_percent: {
    schema: { type: 'integer', minimum: 1, maximum: 100 },
    default: 70,
    description: 'For ksm_policy: thesis.',
  },
};

const step: Step<Params> = {
  name: 'ksm',
  description: 'Kernel Samepage Merging: run, pages_to_scan, sleep_millisecs; persisted by a systemd unit',
  doc:
    '`/sys/kernel/mm/ksm/{pages_to_scan,sleep_millisecs,run}` now, and `kvmforge-ksm.service` to set them at ' +
    'every boot',
  vars,
  params(host: Host) {
    return {
      run: varOf(host, vars, 'ksm_run'),
      pagesToScan: varOf(host, vars, 'ksm_pages_to_scan'),
      sleepMs: varOf(host, vars, 'ksm_sleep_millisecs'),
      policy: varOf(host, vars, 'ksm_policy'),
      role: varOf(host, vars, 'ksm_host_role'),
      cpuLimit: varOf(host, vars, 'ksm_cpu_limit_percent'),
    };
  },
  async plan(ctx, p) {
    const [k, ini, c] = await ctx.read(ksm, init, cpu);
    if (k.run === undefined) throw new HostError('KSM is not available in this kernel (no /sys/kernel/mm/ksm/run)');
    let run = p.run;
    let why = '';
    if (p.policy === 'thesis') {
      const [load1] = await ctx.read(loadavg);
      ({ run, why } = thesisRun(p.role, load1, c.count, p.cpuLimit));
    }
    const want = { pages_to_scan: p.pagesToScan, sleep_millisecs: p.sleepMs, run };
    const diffs = Object.entries(want).filter(([key, v]) => k[key] !== v);
    // run=2 (stop + unmerge) reads back as 2; after a reboot the unit writes 0: both mean "off"
    const settled = run === 2 && k.run === 0 && diffs.every(([key]) => key === 'run');
    const changes: Change[] = [];
    if (diffs.length && !settled) {
      changes.push({
        kind: 'script',
        summary: diffs.map(([key, v]) => `ksm ${key} ${k[key]} → ${v}`).join(', '),
        diff:
          diffs.map(([key, v]) => `/sys/kernel/mm/ksm/${key}: ${k[key]} → ${v}`).join('\n') + (why ? `\n(${why})` : ''),
        script: diffs.map(([key, v]) => `echo ${v} > /sys/kernel/mm/ksm/${key}`).join('\n'),
      });
    }
    if (ini !== 'systemd') {
      if (changes.length) changes[0].warning = 'no systemd on this host: the KSM settings will not survive a reboot';
      return changes;
    }
    const unit = await planFile(ctx, {
      path: UNIT_FILE,
      content: unitText({ run: run === 2 ? 0 : run, pagesToScan: p.pagesToScan, sleepMs: p.sleepMs }),
    });
    if (unit) {
      changes.push(unit, { kind: 'script', summary: `reload systemd for ${UNIT}`, script: 'systemctl daemon-reload' });
    }
    const [enabled] = await ctx.read(unitEnabled(UNIT));
    if (enabled !== 'enabled')
      changes.push({
        kind: 'script',
        summary: `enable ${UNIT}`,
        diff: `${UNIT}: ${enabled || 'not installed'} → enabled`,
        script: `systemctl daemon-reload; systemctl enable ${UNIT}`,
      });
    return changes;
  },
};
export default step;
