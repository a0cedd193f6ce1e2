// plan → apply → verify over hosts: hosts in parallel (--forks), steps in order, one connection per host.
import { ConfigError, HostError, isUserError, type Problem } from '../core/errors.ts';
import { applies, type Fact, type Host, type Step, type Transport } from '../core/types.ts';
import { HOST_FACTS } from '../facts/host.ts';
import type { ConnectOptions } from '../transport/index.ts';
import { applyChange, rebootedUnderUs } from './apply.ts';
import type { Journal } from './journal.ts';
import type { HostReport, Report, StepReport } from './report.ts';
import { checkMigrateTarget, checkPolicies, describeGuests, policyOf, runningGuests } from './guests.ts';
import { forEachHost, HostSession } from './session.ts';

export interface RunEvents {
  hostStart?(host: string): void;
  stepStart?(host: string, step: string): void;
  stepEnd?(host: string, r: StepReport): void;
  hostEnd?(r: HostReport): void;
  output?(host: string, step: string, chunk: string): void;
  message?(host: string, text: string): void;
}

export interface RunOptions {
  mode: 'plan' | 'apply';
  steps: Step<any>[];
  forks: number;
  /** After apply, plan each step again and require no changes. */
  verify: boolean;
  connect: ConnectOptions;
  journal: Journal;
  events?: RunEvents;
  /** Test hook / advanced: how transports are made. */
  connectFn?: (host: Host, o: ConnectOptions) => Promise<Transport>;
  /** Every host of the inventory (default: the hosts of the run), for steps that use another host. */
  inventory?: Host[];
  /** Ctrl-C: once aborted, no new change (and no new host) is started; running ones finish. */
  signal?: AbortSignal;
  /** Rolling batches (--serial): the hosts of each batch run (forks at a time) before the next begins. */
  batches?: Host[][];
  /** With batches: the share of a batch's hosts that may fail before the roll-out stops (default 0). */
  maxFailPercentage?: number;
}

/** A step that is off for a host, and why. */
export interface Off {
  off: string;
}
const isOff = (p: unknown): p is Off =>
  typeof p === 'object' && p !== null && 'off' in p && Object.keys(p).length === 1;

/** `<step>_enabled`: the var that turns a step off (dashes become underscores). */
export const enabledVar = (step: string) => `${step.replace(/-/g, '_')}_enabled`;

/** Whether a step runs on a host: its `<step>_enabled` var, then what the step itself wants. */
export function wanted(step: Step<unknown>, host: Host): true | string {
  if (host.vars[enabledVar(step.name)] === false) return `off (${enabledVar(step.name)}: false)`;
  return step.wanted?.(host) ?? true;
}

/** Checks every step's vars for every host before any connection; throws one ConfigError with all problems. */
export function resolveParams(
  hosts: Host[],
  steps: Step<any>[],
  inventory: Host[] = hosts,
): Map<string, Map<string, unknown>> {
  const problems: Problem[] = [];
  const out = new Map<string, Map<string, unknown>>();
  for (const h of hosts) {
    const m = new Map<string, unknown>();
    for (const s of steps) {
      try {
        const w = wanted(s, h);
        m.set(s.name, w === true ? s.params(h) : ({ off: w } satisfies Off));
      } catch (e) {
        if (e instanceof ConfigError) problems.push(...e.problems);
        else throw e;
      }
    }
    out.set(h.name, m);
  }
  for (const s of steps) {
    if (!s.checkAll || problems.length) continue;
    const own = new Map([...out].filter(([, m]) => !isOff(m.get(s.name))).map(([h, m]) => [h, m.get(s.name)]));
    if (own.size) problems.push(...s.checkAll(own, inventory));
  }
  problems.push(...checkPolicies(hosts, inventory));
  if (problems.length) throw new ConfigError(problems);
  return out;
}

/**
 * Before an apply touches a host that runs VMs: would any step reboot it? Under reboot_running_vms: refuse
 * the host fails here, before anything is changed; under migrate the target is checked. Planned like plan mode.
 */
async function rebootPreflight(
  s: HostSession,
  params: Map<string, unknown>,
  o: RunOptions,
): Promise<string | undefined> {
  const [guests] = await s.read(runningGuests);
  if (!guests.length) return undefined;
  const pending: string[] = [];
  for (const step of o.steps) {
    const p = params.get(step.name);
    if (isOff(p)) continue;
    let changes: Awaited<ReturnType<typeof step.plan>>;
    try {
      changes = await step.plan(s.context([...pending]), p);
    } catch {
      return undefined; // the run itself will meet this, with its own message
    }
    if (changes.some(applies)) pending.push(step.name);
    if (!changes.some((c) => c.kind === 'reboot')) continue;
    const policy = policyOf(s.host);
    if (policy.policy === 'refuse') return `step ${step.name} would reboot the host: ${describeGuests(guests, policy)}`;
    if (policy.policy === 'migrate') await checkMigrateTarget(s);
    return undefined;
  }
  return undefined;
}

/** What a host's first round trip reads (with its boot id): the facts each step on it says its plan reads first,
 * every basic fact for a step that doesn't say. A run of `files` reads the files' state only, not the host's
 * modules, addresses and versions. */
export function firstFacts(steps: Step<any>[], params: Map<string, unknown>): Fact<unknown>[] {
  const out = new Map<string, Fact<unknown>>();
  for (const step of steps) {
    const p = params.get(step.name);
    if (isOff(p)) continue;
    for (const f of step.facts ? step.facts(p) : HOST_FACTS) out.set(f.name, f);
  }
  return [...out.values()];
}

const MAX_RESUMES = 2;

/** One step on one host: plan; in apply mode apply its changes and, after a reboot or with --verify, plan again.
 * When it fails because someone else rebooted the host, it resumes from the new boot (at most twice a run). */
async function runStep(
  s: HostSession,
  step: Step<unknown>,
  p: unknown,
  o: RunOptions,
  pending: string[],
  rep: HostReport,
  resumes: { n: number },
): Promise<StepReport> {
  const sr: StepReport = { step: step.name, status: 'ok', changes: [], ms: 0 };
  if (isOff(p)) {
    sr.status = 'skipped';
    sr.note = p.off;
    return sr;
  }
  if (o.signal?.aborted) {
    sr.status = 'skipped';
    sr.note = 'interrupted (Ctrl-C) before it began';
    return sr;
  }
  const s0 = Date.now();
  o.events?.stepStart?.(s.host.name, step.name);
  for (;;) {
    let cutting = false; // kvmforge itself is cutting the connection (a reboot, a bridge switch)
    try {
      const changes = await step.plan(s.context([...pending]), p);
      sr.changes = changes.map((c) => ({ summary: c.summary, diff: c.diff, warning: c.warning }));
      const real = changes.filter(applies);
      if (real.length && o.mode === 'plan') {
        sr.status = 'would change';
        pending.push(step.name);
        // the plan shows ahead what a reboot will do to the VMs running there
        const reboot = real.findIndex((c) => c.kind === 'reboot');
        if (reboot >= 0) {
          const [guests] = await s.read(runningGuests);
          if (guests.length) {
            const i = changes.indexOf(real[reboot]);
            const note = describeGuests(guests, policyOf(s.host));
            sr.changes[i].warning = sr.changes[i].warning ? `${sr.changes[i].warning}; ${note}` : note;
          }
        }
      }
      if (real.length && o.mode === 'apply') {
        let done = 0;
        for (const c of real) {
          if (o.signal?.aborted) break;
          cutting = c.kind === 'switch' || c.kind === 'reboot';
          await applyChange(s, step.name, c, o.events);
          cutting = false;
          done++;
        }
        if (done < real.length) {
          sr.status = done ? 'changed' : 'skipped';
          sr.note = `interrupted (Ctrl-C) after ${done} of ${real.length} change(s); a new run continues from here`;
          sr.changes = sr.changes.slice(0, done);
          rep.status = 'interrupted';
          break;
        }
        sr.status = 'changed';
        await s.refresh();
        if (real.some((c) => c.kind === 'reboot')) {
          // what a reboot was for is checked on the running system, always
          const after = await step.plan(s.context(), p);
          if (after.length) throw new HostError(`after the reboot: ${after.map((c) => c.summary).join('; ')}`);
        } else if (o.verify) {
          const again = await step.plan(s.context(), p);
          if (again.some(applies))
            throw new HostError(
              `not converged: after apply the plan still has ${again.map((c) => c.summary).join('; ')}`,
            );
        }
      }
      break;
    } catch (e) {
      if (!isUserError(e)) throw e;
      let why = e.message;
      if (!(e instanceof ConfigError) && !cutting) {
        const before = s.bootId;
        const seen = await rebootedUnderUs(s);
        if (seen.newBoot && resumes.n < MAX_RESUMES) {
          // idempotent steps: facts again, then this step planned again from what the host has now
          resumes.n++;
          const note =
            `rebooted by someone else during step ${step.name} (boot_id ${before.slice(0, 8)}… → ` +
            `${seen.newBoot.slice(0, 8)}…; it failed with: ${e.message}); facts gathered again and the run resumed ` +
            `at ${step.name}`;
          (rep.notes ??= []).push(note);
          s.log(note);
          o.events?.message?.(s.host.name, `rebooted by someone else; resuming at ${step.name}`);
          await s.refresh();
          continue;
        }
        if (seen.newBoot)
          why +=
            `; the host was rebooted by someone else (boot_id changed), ${MAX_RESUMES} times already: not ` +
            `resuming again`;
        else if (seen.note) why += `; ${seen.note}`;
      }
      sr.status = 'failed';
      sr.error = why;
      if (e instanceof ConfigError) rep.badInput = true;
      rep.status = 'failed';
      rep.error = `${step.name}: ${why}`;
      break;
    }
  }
  sr.ms = Date.now() - s0;
  return sr;
}

async function runHost(host: Host, params: Map<string, unknown>, o: RunOptions): Promise<HostReport> {
  const t0 = Date.now();
  const rep: HostReport = { host: host.name, status: 'ok', steps: [], ms: 0 };
  o.events?.hostStart?.(host.name);
  const s = new HostSession(host, o);
  try {
    await s.start(firstFacts(o.steps, params));
    // refused before anything is changed: no step runs, and the host still ends below (the live view waits
    // for every host's end)
    const refused = o.mode === 'apply' ? await rebootPreflight(s, params, o) : undefined;
    if (refused) {
      rep.status = 'failed';
      rep.error = `${refused}; nothing was changed`;
    }
    const pending: string[] = [];
    const resumes = { n: 0 };
    for (const step of refused ? [] : o.steps) {
      const sr = await runStep(s, step, params.get(step.name), o, pending, rep, resumes);
      rep.steps.push(sr);
      if (sr.status !== 'skipped')
        s.log(
          [
            `step ${step.name}: ${sr.status}${sr.error ? ` (${sr.error})` : ''}`,
            ...sr.changes.map((c) => c.summary),
          ].join('\n  '),
        );
      o.events?.stepEnd?.(host.name, sr);
      if (sr.status === 'failed' || rep.status === 'interrupted') break;
      if (o.signal?.aborted && step !== o.steps.at(-1)) {
        rep.status = 'interrupted';
        break;
      }
    }
    const settled = rep.status === 'failed' || rep.status === 'interrupted';
    if (!settled && rep.steps.some((x) => x.status === 'changed')) rep.status = 'changed';
    if (!settled && rep.steps.some((x) => x.status === 'would change')) rep.status = 'would change';
  } catch (e) {
    rep.status = 'failed';
    rep.error = isUserError(e) ? e.message : `internal error: ${(e as Error).stack ?? e}`;
  } finally {
    await s.close();
  }
  rep.ms = Date.now() - t0;
  s.log(`host ${rep.status}${rep.error ? `: ${rep.error}` : ''}`);
  o.events?.hostEnd?.(rep);
  return rep;
}

/** Runs hosts with at most `forks` at once; one host's failure never stops the others. */
export async function run(hosts: Host[], o: RunOptions): Promise<Report> {
  const params = resolveParams(hosts, o.steps, o.inventory ?? hosts);
  const started = new Date();
  // a host that never starts still ends, for whoever watches (the live view waits for every host)
  const never = (h: Host, status: 'interrupted' | 'not run'): HostReport => {
    const r: HostReport = { host: h.name, status, steps: [], ms: 0 };
    o.events?.hostEnd?.(r);
    return r;
  };
  const one = (h: Host) =>
    o.signal?.aborted ? Promise.resolve(never(h, 'interrupted')) : runHost(h, params.get(h.name)!, o);
  const results: HostReport[] = [];
  let stopped: string | undefined;
  for (const [i, batch] of (o.batches ?? [hosts]).entries()) {
    if (stopped) {
      results.push(...batch.map((h) => never(h, 'not run')));
      continue;
    }
    const done = await forEachHost(batch, o.forks, one);
    results.push(...done);
    const failed = done.filter((r) => r.status === 'failed').length;
    const limit = o.maxFailPercentage ?? 0;
    if (o.batches && failed && (failed * 100) / batch.length > limit)
      stopped =
        `${failed} of ${batch.length} host(s) failed in batch ${i + 1} of ${o.batches.length} ` +
        `(more than --max-fail-percentage ${limit}%)`;
  }
  const order = new Map(hosts.map((h, i) => [h.name, i]));
  results.sort((a, b) => order.get(a.host)! - order.get(b.host)!);
  const report: Report = {
    mode: o.mode,
    started: started.toISOString(),
    ms: Date.now() - started.getTime(),
    journal: o.journal.enabled ? o.journal.dir : undefined,
    hosts: results,
    ...(o.signal?.aborted ? { interrupted: true } : {}),
    ...(o.batches ? { rollout: { batches: o.batches.map((b) => b.map((h) => h.name)), stopped } } : {}),
  };
  o.journal.writeReport(report);
  return report;
}
