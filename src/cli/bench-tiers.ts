// `kvmforge bench --tiers HOST`: HOST's running VMs that name a tier, alone and under CPU contention
// (src/insight/tiers.ts says what is measured). Reads only; the hogs end by themselves.
import { writeFileSync } from 'node:fs';
import { ConfigError, HostError } from '../core/errors.ts';
import type { Inventory } from '../inventory/load.ts';
import type { HostLoop } from '../runner/session.ts';
import { wholeFlag } from './flags.ts';
import { readRunning, wantedTiers } from '../insight/tune.ts';
import {
  BUSY,
  THESIS_TIERS,
  parseTiers,
  tiersChart,
  tiersComparison,
  tiersScript,
  tiersTable,
  tierVm,
  type TierResult,
} from '../insight/tiers.ts';

export interface TierFlags {
  tiers?: string;
  vm?: string[];
  seconds?: string;
  hogs?: string;
  json?: boolean;
  plot?: string;
  save?: boolean;
}

export async function benchTiers(inv: Inventory, f: TierFlags, loop: HostLoop): Promise<number> {
  const host = inv.hosts.find((h) => h.name === f.tiers);
  if (!host)
    throw ConfigError.one(
      `--tiers '${f.tiers}': expected a host of the inventory ` +
        `(${inv.hosts.map((x) => x.name).join(', ') || 'it has none'})`,
    );
  if (f.vm?.length)
    throw ConfigError.one("--tiers compares HOST's VMs that name a tier in domains_vms: leave out --vm");
  if (f.save)
    throw ConfigError.one('--save keeps the device comparison for the report; with --tiers use --json or --plot');
  if (f.plot !== undefined && !f.plot.endsWith('.svg'))
    throw ConfigError.one(`--plot '${f.plot}': expected a file name ending in .svg`);
  const seconds = wholeFlag(f.seconds, 'seconds', 10, 1, 600);
  const want = wantedTiers(host); // bad domains_vms: exit 2 here
  if (!want.length)
    throw ConfigError.one(`--tiers ${host.name}: no VM of its domains_vms names a tier (ordinary, rr90, rr99, fifo99)`);

  const [r] = await loop(
    [host],
    async (s): Promise<TierResult> => {
      const found = await readRunning(
        s.transport,
        want.map((w) => w.vm),
      );
      if (found.problems.length) throw new HostError(found.problems.join('; '));
      if (
        found.rtRuntimeUs === -1 &&
        found.vms.some((v) => v.vcpus.some((t) => t.policy === 'fifo' || t.policy === 'rr'))
      )
        throw new HostError(
          'RT throttling is off (kernel.sched_rt_runtime_us = -1): a busy real-time vCPU beside CPU hogs could ' +
            'starve this host; not measured',
        );
      const cpus = await s.transport.exec('nproc', { timeoutMs: 30_000 });
      const hogs = wholeFlag(f.hogs, 'hogs', Number(cpus.stdout.trim()) || 1, 1, 256);
      const ordered = want.map((w) => found.vms.find((v) => v.name === w.vm)!);
      const threads = ordered.flatMap((v) => v.vcpus.map((t) => ({ pid: v.pid, tid: t.tid })));
      const m = await s.transport.exec(tiersScript(threads, seconds, hogs), {
        sudo: true,
        timeoutMs: (2 * seconds + 60) * 1000,
      });
      if (m.code !== 0) throw new HostError(m.stderr.trim().split('\n').pop() || `the measurement exited ${m.code}`);
      let shares: ReturnType<typeof parseTiers>;
      try {
        shares = parseTiers(m.stdout, threads.length);
      } catch (e) {
        throw new HostError(`the measurement: ${(e as Error).message}`);
      }
      let i = 0;
      const vms = want.map((w, k) => {
        const vm = ordered[k];
        const n = vm.vcpus.length;
        const out = tierVm(vm, w.tier, shares.alone.slice(i, i + n), shares.contended.slice(i, i + n));
        i += n;
        return out;
      });
      return { host: host.name, seconds, hogs, vms };
    },
    { facts: false },
  );
  if (!r.ok) {
    process.stdout.write(`${r.host}: FAILED: ${r.error}\n`);
    return 1;
  }
  const result = r.value;
  const cmp = tiersComparison(result);
  if (f.plot) {
    writeFileSync(f.plot, tiersChart(result));
    process.stderr.write(`plot: ${f.plot}\n`);
  }
  if (f.json)
    process.stdout.write(
      JSON.stringify(
        { ...result, thesis: THESIS_TIERS, fifo99Ahead: cmp.ahead, ordinaryOverFifo99: cmp.measured },
        null,
        2,
      ) + '\n',
    );
  else process.stdout.write(tiersTable(result).join('\n') + '\n');
  // an idle guest measured nothing: say so with the exit code too
  return result.vms.some((v) => v.alone < BUSY) ? 1 : 0;
}
