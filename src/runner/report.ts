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
  /** interrupted: Ctrl-C stopped the run before this host finished (or began); not run: a rolling
   * roll-out stopped (failures over --max-fail-percentage) before this host's batch */
  status: 'ok' | 'changed' | 'would change' | 'failed' | 'interrupted' | 'not run';
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
  /** Ctrl-C: no change was started after it; the ones running finished (exit 130) */
  interrupted?: boolean;
  /** a rolling roll-out (--serial): the batches, and why it stopped early */
  rollout?: { batches: string[][]; stopped?: string };
}

/** Hosts whose plan has changes, with the steps that would change (drift: plan --detailed-exitcode). */
export function drift(r: Report): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const h of r.hosts) {
    const steps = h.steps.filter((s) => s.status === 'would change').map((s) => s.step);
    if (steps.length) out[h.host] = steps;
  }
  return out;
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

/** Text as XML 1.0 allows it: markup escaped, terminal colour codes dropped, characters XML can't hold (NUL,
 * other control characters, lone surrogates, U+FFFE/FFFF) written as \xNN / \uNNNN text. */
export function xmlText(s: string): string {
  return s
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
    .replace(
      new RegExp(
        String.raw`[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])` +
          String.raw`|(?<![\ud800-\udbff])[\udc00-\udfff]`,
        'g',
      ),
      (c) => {
        const n = c.charCodeAt(0);
        return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
      },
    );
}
const xml = xmlText;

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

const WIDTH = 100;

/** Lines of at most `width` columns: words wrapped, continuation lines indented. */
function wrap(text: string, width = WIDTH, indent = '    '): string[] {
  const out: string[] = [];
  const lead = /^ */.exec(text)![0];
  let line = lead;
  for (const word of text.slice(lead.length).split(' ')) {
    if (line.trim() && [...line].length + 1 + [...word].length > width) {
      out.push(line);
      line = indent + word;
    } else line = line.trim() ? `${line} ${word}` : line + word;
  }
  out.push(line);
  return out.flatMap((l) =>
    [...l].length <= width
      ? [l]
      : (l.match(new RegExp(`.{1,${width - indent.length}}`, 'gu')) ?? []).map((x, i) => (i ? indent + x : x)),
  );
}

/** Why steps were skipped: one line per step and reason, naming its hosts (or "every host"). */
function skippedWhy(r: Report): string[] {
  const by = new Map<string, { step: string; why: string; hosts: string[] }>();
  for (const h of r.hosts)
    for (const s of h.steps) {
      if (s.status !== 'skipped' || !s.note || s.note.startsWith('interrupted')) continue;
      const k = `${s.step}\n${s.note}`;
      if (!by.has(k)) by.set(k, { step: s.step, why: s.note, hosts: [] });
      by.get(k)!.hosts.push(h.host);
    }
  return [...by.values()].flatMap(({ step, why, hosts }) => {
    const on =
      hosts.length === r.hosts.length && hosts.length > 1
        ? 'every host'
        : hosts.length > 3
          ? `${hosts.slice(0, 3).join(', ')} and ${hosts.length - 3} more`
          : hosts.join(', ');
    return wrap(`${step} skipped on ${on}: ${why}`);
  });
}

/** The run at a glance, within 100 columns: a table when it fits, else one block per host. */
export function summaryTable(r: Report, stepNames: string[]): string {
  const out = stepTable(r, stepNames);
  if (out.some((l) => [...l].length > WIDTH)) {
    out.length = 0;
    for (const h of r.hosts) {
      const by = new Map<string, string[]>();
      for (const n of stepNames) {
        const s = h.steps.find((x) => x.step === n);
        const st = !s
          ? 'not run'
          : s.changes.length && s.status !== 'ok' && s.status !== 'skipped'
            ? `${s.status} (${s.changes.length})`
            : s.status;
        by.set(st, [...(by.get(st) ?? []), n]);
      }
      out.push(`${h.host} — ${h.status}, ${(h.ms / 1000).toFixed(1)}s`);
      for (const [st, names] of by) out.push(...wrap(`  ${st}: ${names.join(', ')}`));
    }
  }
  out.push(...skippedWhy(r));
  for (const h of r.hosts) for (const n of h.notes ?? []) out.push(...wrap(`${h.host}: note: ${n}`));
  for (const h of r.hosts) if (h.error) out.push(...wrap(`${h.host}: FAILED: ${h.error}`));
  for (const h of r.hosts)
    if (h.status === 'interrupted')
      out.push(...wrap(`${h.host}: interrupted (Ctrl-C)${h.steps.length ? '' : ' before it began'}`));
  if (r.rollout?.stopped) {
    const names = (st: string) => r.hosts.filter((h) => h.status === st).map((h) => h.host);
    const done = r.hosts.filter((h) => !['failed', 'not run', 'interrupted'].includes(h.status)).map((h) => h.host);
    out.push(...wrap(`roll-out stopped: ${r.rollout.stopped}`));
    out.push(...wrap(`  done: ${done.join(', ') || 'none'}`));
    out.push(...wrap(`  failed: ${names('failed').join(', ') || 'none'}`));
    const untouched = names('not run').join(', ') || 'none';
    out.push(...wrap(`  never touched: ${untouched} (kvmforge apply --retry-failed continues)`));
  }
  return out.join('\n');
}

function stepTable(r: Report, stepNames: string[]): string[] {
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
  return columns([header, ...rows]);
}
