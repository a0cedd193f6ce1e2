// What a run returns: per host, per step, a status and the changes (summary, diff).
import { columns } from '../core/table.ts';

export type StepStatus = 'ok' | 'changed' | 'would change' | 'failed' | 'skipped';

export interface ChangeReport {
  summary: string;
  diff?: string;
  warning?: string;
}

export interface StepReport {
  step: string;
  status: StepStatus;
  changes: ChangeReport[];
  error?: string;
  /** Why a step was skipped (off by its var, or not asked for). */
  note?: string;
  ms: number;
}

export interface HostReport {
  host: string;
  status: 'ok' | 'changed' | 'would change' | 'failed';
  error?: string;
  /** Failed on bad input that only the host could reveal (a NIC it lacks): exit 2, like bad inventory. */
  badInput?: boolean;
  steps: StepReport[];
  /** Things the run noticed and dealt with (the host rebooted by someone else, and the run resumed). */
  notes?: string[];
  ms: number;
}

export interface Report {
  mode: 'plan' | 'apply' | 'build';
  started: string;
  ms: number;
  journal?: string;
  hosts: HostReport[];
}

export function failed(r: Report): boolean {
  return r.hosts.some((h) => h.status === 'failed');
}

export function countChanges(r: Report): number {
  return r.hosts.reduce(
    (n, h) =>
      n +
      h.steps.reduce((m, s) => m + (s.status === 'changed' || s.status === 'would change' ? s.changes.length : 0), 0),
    0,
  );
}

const xml = (s: string) =>
  s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

export function junit(r: Report): string {
  const cases = r.hosts.flatMap((h) => {
    const steps = h.steps.length
      ? h.steps
      : [{ step: 'connect', status: 'failed' as StepStatus, changes: [], error: h.error, ms: h.ms }];
    return steps.map((s) => {
      const body =
        s.status === 'failed'
          ? `<failure message="${xml(s.error ?? h.error ?? 'failed')}"/>`
          : s.status === 'skipped'
            ? '<skipped/>'
            : `<system-out>${xml(s.changes.map((c) => c.summary).join('\n'))}</system-out>`;
      return (
        `  <testcase classname="${xml(h.host)}" name="${xml(s.step)}" ` +
        `time="${(s.ms / 1000).toFixed(3)}">${body}</testcase>`
      );
    });
  });
  const failures = r.hosts.reduce(
    (n, h) => n + (h.steps.length ? h.steps.filter((s) => s.status === 'failed').length : 1),
    0,
  );
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="kvmforge ${r.mode}" tests="${cases.length}" ` +
    `failures="${failures}" time="${(r.ms / 1000).toFixed(3)}">\n${cases.join('\n')}\n</testsuite>\n`
  );
}

export function summaryTable(r: Report, stepNames: string[]): string {
  const header = ['host', ...stepNames, 'time'];
  const rows = r.hosts.map((h) => [
    h.host,
    ...stepNames.map((n) => {
      const s = h.steps.find((x) => x.step === n);
      if (!s) return '-';
      return s.status === 'changed' || s.status === 'would change' ? `${s.status} (${s.changes.length})` : s.status;
    }),
    `${(h.ms / 1000).toFixed(1)}s`,
  ]);
  const out = columns([header, ...rows]);
  for (const h of r.hosts) for (const n of h.notes ?? []) out.push(`${h.host}: note: ${n}`);
  for (const h of r.hosts) if (h.error) out.push(`${h.host}: FAILED: ${h.error}`);
  return out.join('\n');
}
