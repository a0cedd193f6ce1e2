// One way back to a host whose connection kvmforge cut (a bridge switch, a reboot) or lost (someone else
// rebooted it): new connections until `until` says it found what it waits for, or the deadline passes.
// A host key that is unknown or changed ends it at once: that is never a transient.
import { CommandError, HostKeyError } from '../core/errors.ts';
import type { Host, Transport } from '../core/types.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What `until` says of a fresh connection: found it (keep this transport), not yet (why), or give up (why). */
export type Verdict = { done: true } | { retry: string } | { stop: string };

export interface ReconnectOptions {
  /** Epoch ms after which no new attempt starts. */
  deadline: number;
  /** Wait before the first attempt, and between attempts. */
  firstDelayMs?: number;
  intervalMs?: number;
  /** How long one connection attempt may take. */
  attemptMs?: number;
  /** Judges a fresh connection (it may run commands on it). */
  until: (t: Transport) => Promise<Verdict>;
  /** At least one attempt even when the deadline has passed (a zero timeout still tries once). */
  atLeastOnce?: boolean;
}

export interface Reconnected {
  /** The connection that passed `until` (the caller owns it), if any. */
  transport?: Transport;
  /** The last reason an attempt failed, or the reason `until` stopped. */
  last: string;
  stopped?: boolean;
}

export async function reconnect(
  host: Host,
  open: (host: Host, attemptMs?: number) => Promise<Transport>,
  o: ReconnectOptions,
): Promise<Reconnected> {
  let last = 'no answer';
  await sleep(o.firstDelayMs ?? 0);
  for (let tries = 0; (tries === 0 && o.atLeastOnce) || Date.now() < o.deadline; tries++) {
    let t: Transport | undefined;
    try {
      t = await open(host, o.attemptMs);
      const v = await o.until(t);
      if ('done' in v) return { transport: t, last };
      last = 'retry' in v ? v.retry : v.stop;
      await t.close().catch(() => undefined);
      if ('stop' in v) return { last, stopped: true };
    } catch (e) {
      // a host key problem is never transient; a command that failed on a live connection is the caller's
      if (e instanceof HostKeyError || e instanceof CommandError) throw e;
      await t?.close().catch(() => undefined);
      last = (e as Error).message;
    }
    if (Date.now() >= o.deadline) break;
    await sleep(o.intervalMs ?? 2000);
  }
  return { last };
}
