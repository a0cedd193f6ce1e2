// ksm: Kernel Samepage Merging on/off and its scan rate, now (sysfs) and at every boot (a systemd unit).
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { varOr } from '../src/core/vars.ts';
import type { Change, Host, Step } from '../src/core/types.ts';

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
export function thesisRun(role: Params['role'], load1: number, cpus: number, limit: number): { run: 0 | 1; why: string } {
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
ExecStart=/bin/sh -c 'echo ${p.pagesToScan} > /sys/kernel/mm/ksm/pages_to_scan; echo ${p.sleepMs} > /sys/kernel/mm/ksm/sleep_millisecs; echo ${p.run} > /sys/kernel/mm/ksm/run'

[Install]
WantedBy=multi-user.target
`;
}

const step: Step<Params | undefined> = {
  name: 'ksm',
  description: 'Kernel Samepage Merging: run, pages_to_scan, sleep_millisecs; persisted by a systemd unit',
  vars: {
    ksm_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    ksm_run: { enum: [0, 1, 2], description: '1 merge, 0 stop, 2 stop and unmerge all pages (default 1).' },
    ksm_pages_to_scan: { type: 'integer', minimum: 1, maximum: 100000, description: 'Pages scanned per wake-up (default 100).' },
    ksm_sleep_millisecs: { type: 'integer', minimum: 1, maximum: 60000, description: 'Sleep between scans (default 20).' },
    ksm_policy: { enum: ['manual', 'thesis'], description: 'manual: ksm_run as given; thesis: on for test/desktop hosts, on production hosts only under ksm_cpu_limit_percent CPU.' },
    ksm_host_role: { enum: ['test', 'desktop', 'production'], description: 'For ksm_policy: thesis (default test).' },
    ksm_cpu_limit_percent: { type: 'integer', minimum: 1, maximum: 100, description: 'For ksm_policy: thesis (default 70).' },
  },
  params(host: Host) {
    if (!varOr(host, 'ksm_enabled', true)) return undefined;
    return {
      run: varOr(host, 'ksm_run', 1),
      pagesToScan: varOr(host, 'ksm_pages_to_scan', 100),
      sleepMs: varOr(host, 'ksm_sleep_millisecs', 20),
      policy: varOr(host, 'ksm_policy', 'manual'),
      role: varOr(host, 'ksm_host_role', 'test'),
      cpuLimit: varOr(host, 'ksm_cpu_limit_percent', 70),
    };
  },
  async plan(ctx, p) {
    const { ksm, init } = ctx.facts;
    if (ksm.run === undefined) throw new HostError('KSM is not available in this kernel (no /sys/kernel/mm/ksm/run)');
    let run = p!.run;
    let why = '';
    if (p!.policy === 'thesis') {
      const load1 = Number((await ctx.probe('cat /proc/loadavg')).split(' ')[0]);
      ({ run, why } = thesisRun(p!.role, load1, ctx.facts.cpu.count, p!.cpuLimit));
    }
    const want = { pages_to_scan: p!.pagesToScan, sleep_millisecs: p!.sleepMs, run };
    const diffs = Object.entries(want).filter(([k, v]) => ksm[k] !== v);
    // run=2 (stop + unmerge) reads back as 2; after a reboot the unit writes 0: both mean "off"
    const settled = run === 2 && ksm.run === 0 && diffs.every(([k]) => k === 'run');
    const changes: Change[] = [];
    if (diffs.length && !settled) {
      changes.push({
        summary: diffs.map(([k, v]) => `ksm ${k} ${ksm[k]} → ${v}`).join(', '),
        diff: diffs.map(([k, v]) => `/sys/kernel/mm/ksm/${k}: ${ksm[k]} → ${v}`).join('\n') + (why ? `\n(${why})` : ''),
        script: diffs.map(([k, v]) => `echo ${v} > /sys/kernel/mm/ksm/${k}`).join('\n'),
      });
    }
    if (init !== 'systemd') {
      if (changes.length) changes[0].warning = 'no systemd on this host: the KSM settings will not survive a reboot';
      return changes;
    }
    const unit = await planFile(ctx, { path: UNIT_FILE, content: unitText({ run: run === 2 ? 0 : run, pagesToScan: p!.pagesToScan, sleepMs: p!.sleepMs }) });
    if (unit) {
      changes.push(unit, { summary: `reload systemd for ${UNIT}`, script: 'systemctl daemon-reload' });
    }
    const enabled = (await ctx.probe(`systemctl is-enabled ${UNIT} 2>/dev/null || true`)).trim();
    if (enabled !== 'enabled') changes.push({ summary: `enable ${UNIT}`, diff: `${UNIT}: ${enabled || 'not installed'} → enabled`, script: `systemctl daemon-reload; systemctl enable ${UNIT}` });
    return changes;
  },
};
export default step;
