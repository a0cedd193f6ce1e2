// Reads named facts from a host: the ones not known yet go out together, in one script (one round trip),
// each in a subshell of its own with its exit code and stderr kept apart; values are kept per host until
// something on it changes.
import { randomBytes } from 'node:crypto';
import { CommandError } from '../core/errors.ts';
import type { Fact, FactValues, Host, Transport } from '../core/types.ts';
import { FACT_PRELUDE } from './host.ts';

/** Facts have short limits of their own; a host's kvmforge_command_timeout, when lower, wins. */
export function commandLimitMs(host: Host, ownMs: number): number {
  const set = Number(host.vars.kvmforge_command_timeout) * 1000;
  return set > 0 ? Math.min(set, ownMs) : ownMs;
}

/** The one script for a batch of facts, and how to split its output back. */
export function batchScript(facts: readonly Fact<unknown>[], nonce = randomBytes(6).toString('hex')): string {
  const m = `@@kvmforge-${nonce}`;
  return [
    FACT_PRELUDE,
    'e=$(mktemp)',
    ...facts.flatMap((f, i) => [
      `echo '${m} ${i}'`,
      `( ${f.command}\n) 2>"$e" </dev/null && rc=0 || rc=$?`,
      `echo "${m} rc ${i} $rc"`,
      `if [ $rc != 0 ]; then echo '${m} err ${i}'; tail -c 2000 "$e"; fi`,
    ]),
    'rm -f "$e"',
  ].join('\n');
}

export function splitBatch(out: string, n: number): { out: string; code: number; stderr: string }[] {
  const nonce = /^@@kvmforge-([0-9a-f]+) 0$/m.exec(out)?.[1];
  const res = Array.from({ length: n }, () => ({ out: '', code: 0, stderr: '' }));
  if (!nonce) return res;
  let cur: { i: number; part: 'out' | 'stderr' } | undefined;
  const m = `@@kvmforge-${nonce} `;
  for (const line of out.split('\n')) {
    if (line.startsWith(m)) {
      const [a, b, c] = line.slice(m.length).split(' ');
      if (a === 'rc') {
        res[Number(b)].code = Number(c);
        cur = undefined;
      } else if (a === 'err') cur = { i: Number(b), part: 'stderr' };
      else cur = { i: Number(a), part: 'out' };
      continue;
    }
    if (cur) res[cur.i][cur.part] += `${line}\n`;
  }
  return res;
}

export class FactReader {
  /** Each fact read: its value, or what its parser threw — thrown when the fact is asked for, so a fact read ahead
   * (the first round trip's) fails the step that uses it, as it would have read alone. */
  private known = new Map<string, { value: unknown } | { error: unknown }>();
  constructor(
    private host: Host,
    private transport: () => Transport,
    /** Where each batch is logged (the run journal): what was asked, the exit code, the output. */
    private log?: (what: string, r: { code: number | null; stdout: string; stderr: string }, ms: number) => void,
  ) {}

  /** Facts to read with the next read, in its round trip, for later reads. */
  private ahead: readonly Fact<unknown>[] = [];

  /** Forget everything read (after a change, a reboot, a new connection). */
  forget() {
    this.known.clear();
  }

  /** Reads these facts along with the next read's (one round trip); a later read of one costs nothing. */
  readAhead(facts: readonly Fact<unknown>[]) {
    this.ahead = facts;
  }

  async read<F extends readonly Fact<unknown>[]>(...facts: F): Promise<FactValues<F>> {
    const wanted = [...facts, ...this.ahead];
    this.ahead = [];
    const missing = [...new Map(wanted.filter((f) => !this.known.has(f.name)).map((f) => [f.name, f])).values()];
    if (missing.length) {
      const script = batchScript(missing);
      const t0 = Date.now();
      const r = await this.transport().exec(script, {
        sudo: this.host.conn.become,
        timeoutMs: commandLimitMs(this.host, 120_000),
      });
      this.log?.(
        `facts: ${missing.map((f) => f.name).join(', ')}`,
        { ...r, stdout: r.stdout.length > 4000 ? `${r.stdout.slice(0, 4000)}…` : r.stdout },
        Date.now() - t0,
      );
      if (r.code !== 0)
        throw new CommandError(
          this.host.name,
          script,
          r.code,
          r.stderr,
          `reading facts (${missing.map((f) => f.name).join(', ')}) failed: exit ${r.code}: ` +
            `${r.stderr.trim().slice(-200)}`,
        );
      splitBatch(r.stdout, missing.length).forEach((p, i) => {
        try {
          this.known.set(missing[i].name, { value: missing[i].parse(p.out.replace(/\n$/, ''), p.code, p.stderr) });
        } catch (error) {
          this.known.set(missing[i].name, { error });
        }
      });
    }
    return facts.map((f) => {
      const v = this.known.get(f.name)!;
      if ('error' in v) throw v.error;
      return v.value;
    }) as FactValues<F>;
  }
}
