// Applying a step's changes, by kind: a script, a file, a switch that may cut the connection (confirmed on a
// new one), a reboot (back on a new boot), an artifact's packages. All reconnecting goes through reconnect().
import { parkGuests, unparkGuests } from './guests.ts';
import { installArtifact } from '../artifacts/install.ts';
import { CommandError, HostError } from '../core/errors.ts';
import { writeFileScript } from '../core/file.ts';
import type { Change, Transport } from '../core/types.ts';
import type { Journal } from './journal.ts';
import { reconnect, sleep } from './reconnect.ts';
import type { HostSession } from './session.ts';

export interface ApplyEvents {
  output?(host: string, step: string, chunk: string): void;
  message?(host: string, text: string): void;
}

async function run(
  s: HostSession,
  step: string,
  summary: string,
  script: string,
  shown: string,
  what: string,
  events?: ApplyEvents,
) {
  const t0 = Date.now();
  const r = await s.transport.exec(script, {
    sudo: true,
    onOutput: (chunk) => events?.output?.(s.host.name, step, chunk),
  });
  s.o.journal.command(s.host.name, `${step}: ${summary}`, shown, r, Date.now() - t0);
  if (r.code !== 0)
    throw new CommandError(
      s.host.name,
      script,
      r.code,
      r.stderr,
      `${what} failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    );
}

export async function applyChange(s: HostSession, step: string, c: Change, events?: ApplyEvents): Promise<void> {
  switch (c.kind) {
    case 'note':
      return;
    case 'script':
      return run(s, step, c.summary, c.script, c.script, c.summary, events);
    case 'file': {
      const script = writeFileScript(c.file);
      return run(
        s,
        step,
        c.summary,
        script,
        `(write ${c.file.path}, ${c.file.content.length} bytes)\n${script.split('\n').slice(0, 4).join('\n')}`,
        `writing ${c.file.path}`,
        events,
      );
    }
    case 'install': {
      s.log(`${step}: ${c.summary}: preparing`);
      const script = await installArtifact(c, s.context(), {
        transport: s.transport,
        progress: (text) => events?.message?.(s.host.name, `${step}: ${text}`),
        log: (text) => s.log(`${step}: ${text}`),
        logFile: (name) => s.o.journal.file(`${s.host.name}.${name}`),
      });
      return run(s, step, c.summary, script, script, c.summary, events);
    }
    case 'switch':
      await run(s, step, c.summary, c.script, c.script, c.summary, events);
      return confirmSwitch(s, step, c);
    case 'reboot':
      if (c.script) await run(s, step, c.summary, c.script, c.script, c.summary, events);
      await rebootHost(s, c.timeoutS, events);
      if (c.check) await checkAfterReboot(s, step, c.summary, c.check);
      return;
  }
}

/** After a change that may cut the connection: a fresh connection, the change's check, then commit.
 * Otherwise the host's armed rollback restores it; we reconnect to say so, and fail the step. */
export async function confirmSwitch(
  s: HostSession,
  step: string,
  c: Extract<Change, { kind: 'switch' }>,
): Promise<void> {
  const { verify, commit, rollback, timeoutS, rolledBack } = c;
  const armedAt = Date.now();
  const log = (m: string) => s.log(`${step}: ${m}`);
  await s.transport.close();
  let rolledBackByUs = false;
  // leave time to commit before the host's own rollback fires
  const confirmed = await reconnect(s.host, (h, ms) => s.open(h, ms), {
    deadline: armedAt + timeoutS * 1000 - Math.min(15_000, timeoutS * 250),
    firstDelayMs: 2000,
    attemptMs: 12_000,
    until: async (t) => {
      const r = await t.exec(verify, { sudo: true, timeoutMs: 60_000 });
      if (r.code === 0) {
        const cm = await t.exec(commit, { sudo: true, timeoutMs: 60_000 });
        if (cm.code !== 0)
          throw new CommandError(
            s.host.name,
            commit,
            cm.code,
            cm.stderr,
            `commit failed (exit ${cm.code}): ${cm.stderr.trim()}`,
          );
        log(
          `confirmed on a new connection after ${((Date.now() - armedAt) / 1000).toFixed(1)} s; rollback ` +
            `disarmed${r.stdout.trim() ? `\n${r.stdout.trim()}` : ''}`,
        );
        return { done: true };
      }
      const why = `check failed: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`;
      log(`${why}; rolling back now`);
      await t.exec(rollback, { sudo: true, timeoutMs: 30_000 }).catch(() => undefined);
      rolledBackByUs = true;
      return { stop: why };
    },
  });
  if (confirmed.transport) return s.replace(confirmed.transport);
  const last = confirmed.last;
  // not confirmed: wait out the host's own rollback (unless we ran it), then reach the old address
  if (!rolledBackByUs) {
    log(`not confirmed (${last}); waiting for the host to roll back by itself`);
    await sleep(Math.max(0, armedAt + timeoutS * 1000 + 5000 - Date.now()));
  }
  let verdict = '';
  const back = await reconnect(s.host, (h, ms) => s.open(h, ms), {
    deadline: Date.now() + 180_000,
    attemptMs: 12_000,
    intervalMs: 3000,
    atLeastOnce: true,
    until: async (t) => {
      const r = await t.exec(rolledBack, { sudo: true, timeoutMs: 30_000 });
      const found = r.stdout.trim().split('\n').filter(Boolean).join(' | ');
      verdict =
        r.code !== 0
          ? `reachable, but the rollback did not report (${found})`
          : `the host rolled back and is reachable at its old ` +
            `address${found && !rolledBackByUs ? `; before rolling back it found: ${found}` : ''}`;
      return { stop: verdict };
    },
  });
  if (verdict) {
    log(`not confirmed (${last}); ${verdict}`);
    throw new HostError(`${c.summary}: not confirmed (${last}); ${verdict}`);
  }
  throw new HostError(
    `${c.summary}: not confirmed (${last}), and the host is still unreachable after its rollback (${back.last})`,
  );
}

/** Reboots and waits for a new boot_id on a fresh connection, which replaces the old one. */
export async function rebootHost(s: HostSession, timeoutS?: number, events?: ApplyEvents): Promise<void> {
  const timeoutMs = (timeoutS ?? (Number(s.host.vars.kvmforge_reboot_timeout) || 600)) * 1000;
  const old = s.bootId;
  // the VMs running there first, as reboot_running_vms says (refuse throws: nothing is rebooted)
  const parked = await parkGuests(s);
  events?.message?.(s.host.name, 'rebooting');
  await s.transport
    .exec('nohup sh -c "sleep 1; systemctl reboot || reboot" >/dev/null 2>&1 &', { sudo: true, timeoutMs: 30_000 })
    .catch(() => undefined);
  // journaled once the host has the order: a run killed from here on leaves a host that reboots by itself
  s.log(`reboot (boot_id ${old})`);
  await s.transport.close();
  const r = await reconnect(s.host, (h) => s.open(h), {
    deadline: Date.now() + timeoutMs,
    firstDelayMs: 3000,
    intervalMs: 3000,
    until: async (t) => {
      const x = await t.exec('cat /proc/sys/kernel/random/boot_id; systemctl is-system-running 2>/dev/null || true', {
        timeoutMs: 30_000,
      });
      const [id, state] = x.stdout.trim().split('\n');
      if (x.code === 0 && id && id !== old && state !== 'starting') {
        s.log(`back after reboot (boot_id ${id}, ${state})`);
        return { done: true };
      }
      return { retry: id === old ? 'still the old boot' : `system ${state}` };
    },
  });
  if (!r.transport) throw new HostError(`did not come back from reboot within ${timeoutMs / 1000}s (last: ${r.last})`);
  await s.replace(r.transport);
  await s.refresh();
  if (parked) await unparkGuests(s, parked);
}

/** A reboot that was a trial (a new kernel): the step's check on the rebooted host, then its commit. */
async function checkAfterReboot(
  s: HostSession,
  step: string,
  summary: string,
  check: { verify: string; commit: string },
): Promise<void> {
  const t: Transport = s.transport;
  const r = await t.exec(check.verify, { sudo: true, timeoutMs: 120_000 });
  s.o.journal.command(s.host.name, `${step}: check after reboot`, check.verify, r, 0);
  if (r.code !== 0)
    throw new HostError(`${summary}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`);
  const cm = await t.exec(check.commit, { sudo: true, timeoutMs: 300_000 });
  s.o.journal.command(s.host.name, `${step}: commit after reboot`, check.commit, cm, 0);
  if (cm.code !== 0)
    throw new CommandError(
      s.host.name,
      check.commit,
      cm.code,
      cm.stderr,
      `${summary}: commit failed (exit ${cm.code}): ${cm.stderr.trim().split('\n').slice(-2).join(' | ')}`,
    );
}

/** After a step failed: was the host rebooted under us (by someone else)? A live connection says no. A lost
 * one: a new connection (tried for kvmforge_reconnect_timeout s, at least once) compares boot_id with the
 * one the run started from. A new boot becomes the session's connection (resume on it); otherwise a note. */
export async function rebootedUnderUs(s: HostSession): Promise<{ newBoot?: string; note?: string }> {
  const READ = 'cat /proc/sys/kernel/random/boot_id';
  try {
    const r = await s.transport.exec(READ, { timeoutMs: 10_000 });
    if (r.code === 0) return {}; // same connection, same boot
  } catch {
    /* the connection is gone: look on a new one */
  }
  await s.transport.close().catch(() => undefined);
  const waited = Number(s.host.vars.kvmforge_reconnect_timeout) || 0;
  const deadline = Date.now() + waited * 1000;
  let found: { now: string; code: number | null } | undefined;
  const r = await reconnect(s.host, (h) => s.open(h, 5000), {
    deadline,
    firstDelayMs: 2000,
    intervalMs: 2000,
    atLeastOnce: true,
    until: async (t) => {
      const x = await t.exec(`${READ}; systemctl is-system-running 2>/dev/null || true`, { timeoutMs: 30_000 });
      const [now, state] = x.stdout.trim().split('\n');
      // going down (same boot, stopping) or not up yet (new boot, starting): look again while there is time
      if (
        x.code === 0 &&
        now &&
        ((now !== s.bootId && state === 'starting') || (now === s.bootId && state === 'stopping')) &&
        Date.now() < deadline
      ) {
        return { retry: state === 'stopping' ? 'the host is shutting down' : 'new boot, still starting' };
      }
      found = { now: now ?? '', code: x.code };
      return { done: true };
    },
  }).catch((e: Error) => ({ transport: undefined, last: e.message, hostKey: true }));
  if (r.transport && found && found.code === 0 && found.now && found.now !== s.bootId) {
    s.log(`boot_id changed from ${s.bootId} to ${found.now}: rebooted by someone else during the run`);
    await s.replace(r.transport);
    return { newBoot: found.now };
  }
  if (r.transport) {
    await r.transport.close();
    return {
      note:
        found?.code === 0
          ? 'the connection dropped; the host did not reboot (same boot_id)'
          : `reconnected, but could not read boot_id (exit ${found?.code})`,
    };
  }
  if ('hostKey' in r) return { note: r.last };
  return {
    note: `no answer on a new connection${waited ? ` within ${waited}s (kvmforge_reconnect_timeout)` : ''}: ${r.last}`,
  };
}

export type { Journal };
