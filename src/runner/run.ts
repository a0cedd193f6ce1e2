// plan/apply as plain functions: hosts in parallel (--forks), steps in order, one connection per host.
import { CommandError, ConfigError, HostError, isUserError, type Problem } from '../core/errors.ts';
import { writeFileScript } from '../core/file.ts';
import { quote } from '../core/sh.ts';
import type { Change, Host, Step, StepContext, Transport } from '../core/types.ts';
import { FACTS_SCRIPT, parseFacts, type Facts } from '../facts/gather.ts';
import { connect, type ConnectOptions } from '../transport/index.ts';
import type { Journal } from './journal.ts';
import type { HostReport, Report, StepReport } from './report.ts';

export interface RunEvents {
  hostStart?(host: string): void;
  stepStart?(host: string, step: string): void;
  stepEnd?(host: string, r: StepReport): void;
  hostEnd?(r: HostReport): void;
  output?(host: string, step: string, chunk: string): void;
  message?(host: string, text: string): void;
}

export interface RunOptions {
  /** build: only the source-build steps' artifacts, built (or fetched) into the local cache; hosts untouched. */
  mode: 'plan' | 'apply' | 'build';
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
}

/** Checks every step's vars for every host before any connection; throws one ConfigError with all problems. */
export function resolveParams(hosts: Host[], steps: Step<any>[], inventory: Host[] = hosts): Map<string, Map<string, unknown>> {
  const problems: Problem[] = [];
  const out = new Map<string, Map<string, unknown>>();
  for (const h of hosts) {
    const m = new Map<string, unknown>();
    for (const s of steps) {
      try {
        m.set(s.name, s.params(h));
      } catch (e) {
        if (e instanceof ConfigError) problems.push(...e.problems);
        else throw e;
      }
    }
    out.set(h.name, m);
  }
  for (const s of steps) {
    if (!s.checkAll || problems.length) continue;
    const own = new Map([...out].filter(([, m]) => m.get(s.name) !== undefined).map(([h, m]) => [h, m.get(s.name)]));
    if (own.size) problems.push(...s.checkAll(own, inventory));
  }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

export async function gatherFacts(t: Transport, host: Host, journal?: Journal): Promise<Facts> {
  const t0 = Date.now();
  const r = await t.exec(FACTS_SCRIPT, { sudo: host.conn.become, timeoutMs: commandLimitMs(host, 60_000) });
  journal?.command(host.name, 'facts', '(facts script)', { ...r, stdout: '(facts)' }, Date.now() - t0);
  if (r.code !== 0) throw new CommandError(host.name, 'facts', r.code, r.stderr, `gathering facts failed: exit ${r.code}: ${r.stderr.trim().slice(-200)}`);
  return parseFacts(r.stdout);
}

/** Facts and probes have short limits of their own; a host's kvmforge_command_timeout, when lower, wins. */
function commandLimitMs(host: Host, ownMs: number): number {
  const set = Number(host.vars.kvmforge_command_timeout) * 1000;
  return set > 0 ? Math.min(set, ownMs) : ownMs;
}

function context(host: Host, facts: Facts, t: Transport, o: RunOptions, step: string, pendingSteps: string[] = []): StepContext {
  const journal = o.journal;
  const memo = new Map<string, Promise<string>>();
  const probe = (script: string) => {
    let p = memo.get(script);
    if (!p) {
      p = (async () => {
        const t0 = Date.now();
        const r = await t.exec(script, { sudo: host.conn.become, timeoutMs: commandLimitMs(host, 120_000) });
        journal.command(host.name, `${step} (probe)`, script, r, Date.now() - t0);
        if (r.code !== 0) throw new CommandError(host.name, script, r.code, r.stderr);
        return r.stdout;
      })();
      memo.set(script, p);
    }
    return p;
  };
  return {
    host,
    facts,
    pendingSteps,
    inventory: o.inventory,
    connect: (other) => (o.connectFn ?? connect)(other, o.connect),
    probe,
    readFile: async (path) => {
      const out = await probe(`if [ -f ${quote(path)} ]; then echo Y; cat ${quote(path)}; else echo N; fi`);
      return out.startsWith('Y\n') ? out.slice(2) : out === 'Y' ? '' : null;
    },
  };
}

async function applyChange(t: Transport, host: Host, step: string, c: Change, o: RunOptions): Promise<void> {
  if (c.prepare) {
    o.journal.log(host.name, `${step}: ${c.summary}: preparing`);
    await c.prepare({
      transport: t,
      progress: (text) => o.events?.message?.(host.name, `${step}: ${text}`),
      log: (text) => o.journal.log(host.name, `${step}: ${text}`),
      logFile: (name) => o.journal.file(`${host.name}.${name}`),
    });
  }
  const script = c.file ? writeFileScript(c.file) : c.script;
  if (!script) return;
  const t0 = Date.now();
  const r = await t.exec(script, { sudo: true, onOutput: (chunk) => o.events?.output?.(host.name, step, chunk) });
  o.journal.command(host.name, `${step}: ${c.summary}`, c.file ? `(write ${c.file.path}, ${c.file.content.length} bytes)\n${script.split('\n').slice(0, 4).join('\n')}` : script, r, Date.now() - t0);
  if (r.code !== 0) {
    const what = c.file ? `writing ${c.file.path}` : c.summary;
    throw new CommandError(host.name, script, r.code, r.stderr, `${what} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** After a change that may cut the connection: a fresh connection, the change's check, then commit.
 * Otherwise the host's armed rollback restores it; we reconnect to say so, and fail the step. */
export async function confirmChange(t: Transport, host: Host, step: string, c: Change, o: RunOptions): Promise<Transport> {
  const { verify, commit, rollback, timeoutS, rolledBack } = c.confirm!;
  const armedAt = Date.now();
  await t.close();
  const make = o.connectFn ?? connect;
  const log = (m: string) => o.journal.log(host.name, `${step}: ${m}`);
  // leave time to commit before the host's own rollback fires
  const deadline = armedAt + timeoutS * 1000 - Math.min(15_000, timeoutS * 250);
  let last = 'no answer';
  let rolledBackByUs = false;
  await sleep(2000);
  while (Date.now() < deadline && !rolledBackByUs) {
    let nt: Transport | undefined;
    try {
      nt = await make(host, { ...o.connect, connectTimeoutMs: 12_000 });
      const r = await nt.exec(verify, { sudo: true, timeoutMs: 60_000 });
      if (r.code === 0) {
        const cm = await nt.exec(commit, { sudo: true, timeoutMs: 60_000 });
        if (cm.code !== 0) throw new CommandError(host.name, commit, cm.code, cm.stderr, `commit failed (exit ${cm.code}): ${cm.stderr.trim()}`);
        log(`confirmed on a new connection after ${((Date.now() - armedAt) / 1000).toFixed(1)} s; rollback disarmed${r.stdout.trim() ? `\n${r.stdout.trim()}` : ''}`);
        return nt;
      }
      last = `check failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`;
      log(`${last}; rolling back now`);
      await nt.exec(rollback, { sudo: true, timeoutMs: 30_000 }).catch(() => undefined);
      rolledBackByUs = true;
    } catch (e) {
      if (e instanceof CommandError) throw e;
      last = (e as Error).message;
      if (/CHANGED|unknown \(SHA256/.test(last)) throw e;
    }
    await nt?.close().catch(() => undefined);
    if (!rolledBackByUs) await sleep(2000);
  }
  // not confirmed: wait out the host's own rollback (unless we ran it), then reach the old address
  if (!rolledBackByUs) {
    log(`not confirmed (${last}); waiting for the host to roll back by itself`);
    await sleep(Math.max(0, armedAt + timeoutS * 1000 + 5000 - Date.now()));
  }
  const until = Date.now() + 180_000;
  let back = 'no answer';
  while (Date.now() < until) {
    let verdict: string | undefined;
    try {
      const nt = await make(host, { ...o.connect, connectTimeoutMs: 12_000 });
      const r = await nt.exec(rolledBack, { sudo: true, timeoutMs: 30_000 });
      await nt.close();
      const found = r.stdout.trim().split('\n').filter(Boolean).join(' | ');
      verdict = r.code !== 0 ? `reachable, but the rollback did not report (${found})` : `the host rolled back and is reachable at its old address${found && !rolledBackByUs ? `; before rolling back it found: ${found}` : ''}`;
    } catch (e) {
      back = (e as Error).message;
    }
    if (verdict) {
      log(`not confirmed (${last}); ${verdict}`);
      throw new HostError(`${c.summary}: not confirmed (${last}); ${verdict}`);
    }
    await sleep(3000);
  }
  throw new HostError(`${c.summary}: not confirmed (${last}), and the host is still unreachable after its rollback (${back})`);
}

/** Reboots and waits for a new boot_id on a fresh connection. Returns the new transport. */
export async function rebootHost(t: Transport, host: Host, oldBootId: string, o: RunOptions, timeoutS?: number): Promise<Transport> {
  const timeoutMs = (timeoutS ?? (Number(host.vars.kvmforge_reboot_timeout) || 600)) * 1000;
  o.journal.log(host.name, `reboot (boot_id ${oldBootId})`);
  o.events?.message?.(host.name, 'rebooting');
  await t.exec('nohup sh -c "sleep 1; systemctl reboot || reboot" >/dev/null 2>&1 &', { sudo: true, timeoutMs: 30_000 }).catch(() => undefined);
  await t.close();
  const deadline = Date.now() + timeoutMs;
  const make = o.connectFn ?? connect;
  let last = 'no answer';
  await sleep(3000);
  while (Date.now() < deadline) {
    try {
      const nt = await make(host, { ...o.connect });
      const r = await nt.exec('cat /proc/sys/kernel/random/boot_id; systemctl is-system-running 2>/dev/null || true', { timeoutMs: 30_000 });
      const [id, state] = r.stdout.trim().split('\n');
      if (r.code === 0 && id && id !== oldBootId && state !== 'starting') {
        o.journal.log(host.name, `back after reboot (boot_id ${id}, ${state})`);
        return nt;
      }
      last = id === oldBootId ? 'still the old boot' : `system ${state}`;
      await nt.close();
    } catch (e) {
      last = (e as Error).message;
      if (/CHANGED|unknown \(SHA256/.test(last)) throw e;
    }
    await sleep(3000);
  }
  throw new HostError(`did not come back from reboot within ${timeoutMs / 1000}s (last: ${last})`);
}

const MAX_RESUMES = 2;

/** After a step failed: was the host rebooted under us (by someone else)? A live connection says no. A lost
 * one: a new connection (tried for kvmforge_reconnect_timeout s, at least once) compares boot_id with the
 * one the run started from. A new boot comes back as a fresh transport to resume on; otherwise a note. */
export async function rebootedUnderUs(t: Transport, host: Host, bootId: string, o: RunOptions): Promise<{ transport?: Transport; bootId?: string; note?: string }> {
  const READ = 'cat /proc/sys/kernel/random/boot_id';
  try {
    const r = await t.exec(READ, { timeoutMs: 10_000 });
    if (r.code === 0) return {}; // same connection, same boot
  } catch {
    /* the connection is gone: look on a new one */
  }
  await t.close().catch(() => undefined);
  const make = o.connectFn ?? connect;
  const deadline = Date.now() + (Number(host.vars.kvmforge_reconnect_timeout) || 0) * 1000;
  let last = 'no answer';
  do {
    await sleep(2000);
    try {
      const nt = await make(host, { ...o.connect, connectTimeoutMs: 5000 });
      const r = await nt.exec(`${READ}; systemctl is-system-running 2>/dev/null || true`, { timeoutMs: 30_000 });
      const [now, state] = r.stdout.trim().split('\n');
      // going down (same boot, stopping) or not up yet (new boot, starting): look again while there is time
      if (r.code === 0 && now && ((now !== bootId && state === 'starting') || (now === bootId && state === 'stopping')) && Date.now() < deadline) {
        last = state === 'stopping' ? 'the host is shutting down' : 'new boot, still starting';
        await nt.close();
        continue;
      }
      if (r.code === 0 && now && now !== bootId) {
        o.journal.log(host.name, `boot_id changed from ${bootId} to ${now}: rebooted by someone else during the run`);
        return { transport: nt, bootId: now };
      }
      await nt.close();
      return { note: r.code === 0 ? 'the connection dropped; the host did not reboot (same boot_id)' : `reconnected, but could not read boot_id (exit ${r.code})` };
    } catch (e) {
      last = (e as Error).message;
      if (/CHANGED|unknown \(SHA256/.test(last)) return { note: last };
    }
  } while (Date.now() < deadline);
  const waited = Number(host.vars.kvmforge_reconnect_timeout) || 0;
  return { note: `no answer on a new connection${waited ? ` within ${waited}s (kvmforge_reconnect_timeout)` : ''}: ${last}` };
}

/** A reboot that was a trial (a new kernel): the step's check on the rebooted host, then its commit. */
async function afterReboot(t: Transport, host: Host, step: string, c: Change, o: RunOptions): Promise<void> {
  const { verify, commit } = c.afterReboot!;
  const r = await t.exec(verify, { sudo: true, timeoutMs: 120_000 });
  o.journal.command(host.name, `${step}: check after reboot`, verify, r, 0);
  if (r.code !== 0) throw new HostError(`${c.summary}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  const cm = await t.exec(commit, { sudo: true, timeoutMs: 300_000 });
  o.journal.command(host.name, `${step}: commit after reboot`, commit, cm, 0);
  if (cm.code !== 0) throw new CommandError(host.name, commit, cm.code, cm.stderr, `${c.summary}: commit failed (exit ${cm.code}): ${cm.stderr.trim().split('\n').slice(-2).join(' | ')}`);
}

/** `kvmforge build`: the artifact a host needs, in the local cache (built on its build host if need be). */
async function buildArtifact(step: Step<any>, ctx: StepContext, p: unknown, t: Transport, sr: StepReport, o: RunOptions) {
  const a = await step.artifact!(ctx, p);
  const { artifactDir, ensureArtifact, readMeta } = await import('../artifacts/artifacts.ts');
  const { requestOf } = await import('../artifacts/kit.ts');
  const cached = readMeta(artifactDir(a.spec, a.key));
  const meta = await ensureArtifact(requestOf(ctx, a), {
    transport: t,
    progress: (text) => o.events?.message?.(ctx.host.name, `${step.name}: ${text}`),
    log: (text) => o.journal.log(ctx.host.name, `${step.name}: ${text}`),
    logFile: (name) => o.journal.file(`${ctx.host.name}.${name}`),
  });
  sr.changes = [{ summary: `${a.spec.component} ${a.spec.version} artifact ${a.key.slice(0, 12)} ${cached ? 'already in the local cache' : `ready (built on ${meta.builtOn} in ${meta.buildSeconds} s)`}`, warning: meta.dropped?.length ? `options olddefconfig dropped: ${meta.dropped.join(', ')}` : undefined }];
  sr.status = cached ? 'ok' : 'changed';
}

async function runHost(host: Host, params: Map<string, unknown>, o: RunOptions): Promise<HostReport> {
  const t0 = Date.now();
  const rep: HostReport = { host: host.name, status: 'ok', steps: [], ms: 0 };
  o.events?.hostStart?.(host.name);
  let t: Transport | undefined;
  const finish = () => {
    rep.ms = Date.now() - t0;
    o.journal.log(host.name, `host ${rep.status}${rep.error ? `: ${rep.error}` : ''}`);
    o.events?.hostEnd?.(rep);
    return rep;
  };
  try {
    t = await (o.connectFn ?? connect)(host, o.connect);
    let facts = await gatherFacts(t, host, o.journal);
    const pending: string[] = [];
    let resumes = 0;
    for (let i = 0; i < o.steps.length; i++) {
      const step = o.steps[i];
      const s0 = Date.now();
      let ownCut = false; // kvmforge itself is cutting the connection (a reboot, a bridge switch)
      const p = params.get(step.name);
      const sr: StepReport = { step: step.name, status: 'ok', changes: [], ms: 0 };
      if (p === undefined || (o.mode === 'build' && !step.artifact)) {
        sr.status = 'skipped';
        rep.steps.push(sr);
        o.events?.stepEnd?.(host.name, sr);
        continue;
      }
      o.events?.stepStart?.(host.name, step.name);
      try {
        if (o.mode === 'build') {
          await buildArtifact(step, context(host, facts, t, o, step.name), p, t, sr, o);
          sr.ms = Date.now() - s0;
          rep.steps.push(sr);
          o.journal.log(host.name, `step ${step.name}: ${sr.status} ${sr.changes.map((c) => c.summary).join('; ')}`);
          o.events?.stepEnd?.(host.name, sr);
          continue;
        }
        const changes = await step.plan(context(host, facts, t, o, step.name, [...pending]), p);
        sr.changes = changes.map((c) => ({ summary: c.summary, diff: c.diff, warning: c.warning }));
        const real = changes.filter((c) => c.file || c.script || c.reboot);
        if (real.length && o.mode === 'plan') {
          sr.status = 'would change';
          pending.push(step.name);
        }
        if (real.length && o.mode === 'apply') {
          for (const c of real) {
            await applyChange(t, host, step.name, c, o);
            ownCut = !!c.confirm;
            if (c.confirm) t = await confirmChange(t, host, step.name, c, o);
            ownCut = false;
          }
          const rebooted = real.find((c) => c.reboot);
          if (rebooted) {
            ownCut = true;
            t = await rebootHost(t, host, facts.bootId, o, rebooted.rebootTimeoutS);
            ownCut = false;
            if (rebooted.afterReboot) await afterReboot(t, host, step.name, rebooted, o);
          }
          sr.status = 'changed';
          facts = await gatherFacts(t, host, o.journal);
          if (rebooted) {
            // what a reboot was for is checked on the running system, always
            const after = await step.plan(context(host, facts, t, o, step.name), p);
            if (after.length) throw new HostError(`after the reboot: ${after.map((c) => c.summary).join('; ')}`);
          } else if (o.verify) {
            const again = await step.plan(context(host, facts, t, o, step.name), p);
            if (again.some((c) => c.file || c.script || c.reboot)) {
              throw new HostError(`not converged: after apply the plan still has ${again.map((c) => c.summary).join('; ')}`);
            }
          }
        }
      } catch (e) {
        if (!isUserError(e)) throw e;
        let why = e.message;
        if (!(e instanceof ConfigError) && !ownCut && o.mode !== 'build') {
          const seen = await rebootedUnderUs(t, host, facts.bootId, o);
          if (seen.transport && resumes < MAX_RESUMES) {
            // idempotent steps: facts again, then this step planned again from what the host has now
            resumes++;
            t = seen.transport;
            const note = `rebooted by someone else during step ${step.name} (boot_id ${facts.bootId.slice(0, 8)}… → ${seen.bootId!.slice(0, 8)}…; it failed with: ${e.message}); facts gathered again and the run resumed at ${step.name}`;
            (rep.notes ??= []).push(note);
            o.journal.log(host.name, note);
            o.events?.message?.(host.name, `rebooted by someone else; resuming at ${step.name}`);
            facts = await gatherFacts(t, host, o.journal);
            i--;
            continue;
          }
          if (seen.transport) {
            t = seen.transport;
            why += `; the host was rebooted by someone else (boot_id changed), ${MAX_RESUMES} times already: not resuming again`;
          } else if (seen.note) why += `; ${seen.note}`;
        }
        sr.status = 'failed';
        sr.error = why;
        if (e instanceof ConfigError) rep.badInput = true;
        rep.status = 'failed';
        rep.error = `${step.name}: ${why}`;
      }
      sr.ms = Date.now() - s0;
      rep.steps.push(sr);
      o.journal.log(host.name, `step ${step.name}: ${sr.status}${sr.changes.length ? `\n  ${sr.changes.map((c) => c.summary).join('\n  ')}` : ''}${sr.error ? ` (${sr.error})` : ''}`);
      o.events?.stepEnd?.(host.name, sr);
      if (sr.status === 'failed') break;
    }
    if (rep.status !== 'failed' && rep.steps.some((s) => s.status === 'changed')) rep.status = 'changed';
    if (rep.status !== 'failed' && rep.steps.some((s) => s.status === 'would change')) rep.status = 'would change';
  } catch (e) {
    if (!isUserError(e)) {
      rep.status = 'failed';
      rep.error = `internal error: ${(e as Error).stack ?? e}`;
      return finish();
    }
    rep.status = 'failed';
    rep.error = e.message;
  } finally {
    await t?.close().catch(() => undefined);
  }
  return finish();
}

/** Runs hosts with at most `forks` at once; one host's failure never stops the others. */
export async function run(hosts: Host[], o: RunOptions): Promise<Report> {
  const params = resolveParams(hosts, o.steps, o.inventory ?? hosts);
  const started = new Date();
  const results: HostReport[] = new Array(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      results[i] = await runHost(hosts[i], params.get(hosts[i].name)!, o);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.forks, hosts.length)) }, worker));
  const report: Report = { mode: o.mode, started: started.toISOString(), ms: Date.now() - started.getTime(), journal: o.journal.enabled ? o.journal.dir : undefined, hosts: results };
  o.journal.writeReport(report);
  return report;
}
