// One host's side of a run: its connection (replaced when kvmforge cuts it or loses it), the facts read on
// it, its journal lines. And the one host loop every command shares: at most --forks hosts at once, one
// host's failure never stops the others.
import { isUserError } from '../core/errors.ts';
import type { Fact, FactValues, Host, StepContext, Transport } from '../core/types.ts';
import { bootId, HOST_FACTS } from '../facts/host.ts';
import { FactReader } from '../facts/reader.ts';
import { connect, type ConnectOptions } from '../transport/index.ts';
import type { Journal } from './journal.ts';

export interface SessionOptions {
  connect: ConnectOptions;
  journal: Journal;
  /** How transports are made (tests; the default opens SSH or local). */
  connectFn?: (host: Host, o: ConnectOptions) => Promise<Transport>;
  /** Every host of the inventory (a build host may be one the run doesn't target). */
  inventory?: Host[];
  events?: { message?(host: string, text: string): void };
}

export class HostSession {
  private t?: Transport;
  readonly facts: FactReader;
  /** The boot the run started on (or resumed on), to tell a reboot from a cut connection. */
  bootId = '';

  constructor(
    readonly host: Host,
    readonly o: SessionOptions,
  ) {
    this.facts = new FactReader(
      host,
      () => this.transport,
      (what, r, ms) => o.journal.command(host.name, what, '(facts script)', r, ms),
    );
  }

  get transport(): Transport {
    if (!this.t) throw new Error(`no connection to ${this.host.name}`);
    return this.t;
  }

  /** A new transport to this host (or another host of the inventory), with the run's settings. */
  open(host = this.host, attemptMs?: number): Promise<Transport> {
    return (this.o.connectFn ?? connect)(
      host,
      attemptMs ? { ...this.o.connect, connectTimeoutMs: attemptMs } : this.o.connect,
    );
  }

  /** What each refresh reads besides the boot id: the basic facts, or what the run's steps say they read. */
  private firstRead: readonly Fact<unknown>[] = HOST_FACTS;

  /** Connects and (unless told not to) reads the boot id and the basic facts (or the facts given) in one round
   * trip. */
  async start(readFacts: boolean | readonly Fact<unknown>[] = true): Promise<void> {
    this.t = await this.open();
    if (typeof readFacts !== 'boolean') this.firstRead = readFacts;
    if (readFacts) await this.refresh();
  }

  /** Forgets what it read and reads the boot id and the first facts again (after a change, on a new boot). */
  async refresh(): Promise<void> {
    this.facts.forget();
    this.facts.readAhead(this.firstRead);
    [this.bootId] = await this.facts.read(bootId);
  }

  /** Takes a new transport in place of the old one (closed). */
  async replace(t: Transport): Promise<void> {
    if (this.t && this.t !== t) await this.t.close().catch(() => undefined);
    this.t = t;
  }

  async close(): Promise<void> {
    await this.t?.close().catch(() => undefined);
  }

  read<F extends readonly Fact<unknown>[]>(...facts: F): Promise<FactValues<F>> {
    return this.facts.read(...facts);
  }

  log(text: string) {
    this.o.journal.log(this.host.name, text);
  }

  /** What a step sees of this host. */
  context(pendingSteps: string[] = []): StepContext {
    return {
      host: this.host,
      read: (...f) => this.read(...f),
      pendingSteps,
      inventory: this.o.inventory,
      connect: (other) => this.open(other),
    };
  }
}

/** Runs `work` for every host, at most `forks` at once, in the hosts' order in the results. */
export async function forEachHost<R>(hosts: Host[], forks: number, work: (host: Host) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(hosts.length);
  let next = 0;
  const worker = async () => {
    while (next < hosts.length) {
      const i = next++;
      results[i] = await work(hosts[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(forks, hosts.length)) }, worker));
  return results;
}

export type HostResult<R> = { host: string; ok: true; value: R } | { host: string; ok: false; error: string };

/** The host loop of the commands beside plan/apply (facts, exits, tune, top, bench): `work` on a session per host,
 * at most `forks` at once, each host's start and end in the journal; a host that fails is one line (its error). */
export type HostLoop = <R>(
  hosts: Host[],
  work: (s: HostSession) => Promise<R>,
  o?: { forks?: number; facts?: boolean },
) => Promise<HostResult<R>[]>;

export function hostLoop(forks: number, o: SessionOptions): HostLoop {
  return (hosts, work, opt = {}) => onEachHost(hosts, opt.forks ?? forks, o, work, opt.facts ?? true);
}

export async function onEachHost<R>(
  hosts: Host[],
  forks: number,
  o: SessionOptions,
  work: (s: HostSession) => Promise<R>,
  readFacts = true,
): Promise<HostResult<R>[]> {
  return forEachHost(hosts, forks, async (host) => {
    const s = new HostSession(host, o);
    try {
      s.log('start');
      await s.start(readFacts);
      const value = await work(s);
      s.log('done');
      return { host: host.name, ok: true as const, value };
    } catch (e) {
      if (!isUserError(e)) throw e;
      s.log(`failed: ${e.message}`);
      return { host: host.name, ok: false as const, error: e.message };
    } finally {
      await s.close();
    }
  });
}
