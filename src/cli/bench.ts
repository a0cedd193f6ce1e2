// `kvmforge bench --vm A --vm B`: the guests are inventory hosts; they run one after the other (a
// benchmark beside another measures both), each workload `--runs` times; one failing guest is one line.
import { writeFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.ts';
import { wholeFlag } from './flags.ts';
import type { Inventory } from '../inventory/load.ts';
import type { HostLoop } from '../runner/session.ts';
import { saveInsight } from '../insight/saved.ts';
import {
  benchChart,
  benchScript,
  benchTable,
  THESIS_CH7,
  thesisComparison,
  blockText,
  label,
  median,
  networkScript,
  parseBench,
  WORKLOADS,
  type BenchOptions,
  type VmBench,
  type Workload,
} from '../insight/bench.ts';
import type { Host, Transport } from '../core/types.ts';

interface Flags {
  vm?: string[];
  size?: string;
  'block-size'?: string;
  runs?: string;
  workloads?: string;
  dir?: string;
  json?: boolean;
  plot?: string;
  save?: boolean;
  journal?: string;
  thesis?: boolean;
  tiers?: string;
  seconds?: string;
  hogs?: string;
}

/** Options of one mode given in the other: refused (never silently ignored). */
const DEVICE_ONLY = ['size', 'block-size', 'runs', 'workloads', 'dir', 'thesis'] as const;
const TIERS_ONLY = ['seconds', 'hogs'] as const;

export async function benchCommand(inv: Inventory, f: Flags, loop: HostLoop): Promise<number> {
  const stray = (f.tiers !== undefined ? DEVICE_ONLY : TIERS_ONLY).filter((k) => f[k] !== undefined);
  if (stray.length)
    throw ConfigError.one(
      `--${stray[0]}: ` +
        (f.tiers !== undefined ? 'not with --tiers (it measures CPU time on the host)' : 'only with --tiers HOST'),
    );
  if (f.tiers !== undefined) return (await import('./bench-tiers.ts')).benchTiers(inv, f, loop);
  const names = f.vm ?? [];
  if (!names.length) throw ConfigError.one('bench: name the guests to compare with --vm A --vm B (inventory hosts)');
  const hosts = names.map((n): Host => {
    const h = inv.hosts.find((x) => x.name === n);
    if (!h)
      throw ConfigError.one(
        `--vm '${n}': expected a host of the inventory (${inv.hosts.map((x) => x.name).join(', ') || 'it has none'})`,
      );
    return h;
  });
  if (new Set(names).size !== names.length) throw ConfigError.one(`--vm: each guest once (got ${names.join(', ')})`);
  if (f.thesis && names.length !== 2)
    throw ConfigError.one(
      `--thesis: expected two --vm, the optimized guest first and its unoptimized twin second (got ${names.length})`,
    );
  const size = wholeFlag(f.size, 'size', 256, 1, 65536);
  const blockKiB = blockSize(f['block-size'], size);
  const runs = wholeFlag(f.runs, 'runs', 3, 1, 100);
  const workloads = (f.workloads ?? WORKLOADS.join(',')).split(',').map((w) => w.trim()) as Workload[];
  for (const w of workloads)
    if (!WORKLOADS.includes(w)) throw ConfigError.one(`--workloads '${w}': expected some of ${WORKLOADS.join(', ')}`);
  const dir = f.dir ?? '/var/tmp';
  if (!dir.startsWith('/') || /[\n\0]/.test(dir))
    throw ConfigError.one(`--dir '${dir}': expected an absolute directory in the guest`);
  if (f.plot !== undefined && !f.plot.endsWith('.svg'))
    throw ConfigError.one(`--plot '${f.plot}': expected a file name ending in .svg`);

  const o: BenchOptions = { dir, sizeMiB: size, blockKiB };
  // one guest after the other: two at once would measure each other
  const results = (
    await loop(hosts, (s) => benchOne(s.host, s.transport, o, runs, workloads), { forks: 1, facts: false })
  ).map((r): VmBench => (r.ok ? r.value : { host: r.host, results: {}, error: r.error }));

  if (f.plot) {
    writeFileSync(
      f.plot,
      benchChart(
        `kvmforge bench: ${size} MiB per workload, disk in ${blockText(blockKiB)} requests (higher is better)`,
        results,
        workloads,
      ),
    );
    process.stderr.write(`plot: ${f.plot}\n`);
  }
  const data = {
    sizeMiB: size,
    blockKiB,
    runs,
    unit: 'MB/s',
    workloads: Object.fromEntries(workloads.map((w) => [w, label(w, blockKiB)])),
    vms: results,
    ...(f.thesis ? { thesis: THESIS_CH7 } : {}),
  };
  if (f.save) process.stderr.write(`saved: ${saveInsight(f.journal ?? '.kvmforge', 'bench', data)}\n`);
  if (f.json) process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else
    process.stdout.write(
      [
        benchTable(results, workloads, o, runs),
        ...(f.thesis ? ['', ...thesisComparison(results, workloads)] : []),
      ].join('\n') + '\n',
    );
  return results.some((r) => r.error) ? 1 : 0;
}

/** `--block-size 4k|64k|1M…`: a power of two from 4 KiB (O_DIRECT's alignment) up to the size. */
function blockSize(v: string | undefined, sizeMiB: number): number {
  if (v === undefined) return 1024;
  const m = /^(\d+)([kKmM])$/.exec(v);
  const kib = m ? Number(m[1]) * (/m/i.test(m[2]) ? 1024 : 1) : NaN;
  if (!(kib >= 4 && (kib & (kib - 1)) === 0 && kib <= sizeMiB * 1024))
    throw ConfigError.one(
      `--block-size '${v}': expected a power of two from 4k to the --size (${sizeMiB}M), like 4k, 64k or 1M`,
    );
  return kib;
}

async function benchOne(h: Host, t: Transport, o: BenchOptions, runs: number, workloads: Workload[]): Promise<VmBench> {
  const out: VmBench = { host: h.name, results: {} };
  const samples = new Map<Workload, number[]>();
  const add = (w: Workload, v: number) => samples.set(w, [...(samples.get(w) ?? []), v]);
  try {
    {
      const local = workloads.filter((w) => w !== 'network');
      for (let i = 0; i < runs; i++) {
        if (local.length) {
          const r = await t.exec(benchScript(o, local), { timeoutMs: 3_600_000 });
          if (r.code !== 0) throw new Error(r.stderr.trim().split('\n').pop() || `the bench script exited ${r.code}`);
          const p = parseBench(r.stdout);
          if (p.errors.length) throw new Error(p.errors.join('; '));
          out.disk = p.disk;
          out.nic = p.nic;
          for (const w of local) if (p.mbps[w] !== undefined) add(w, p.mbps[w]!);
        }
        if (workloads.includes('network')) add('network', await stream(t, o.sizeMiB));
      }
    }
    for (const [w, xs] of samples) {
      out.results[w] = median(xs);
      (out.spread ??= {})[w] = [Math.min(...xs), Math.max(...xs)];
    }
  } catch (e) {
    out.error = (e as Error).message;
  }
  return out;
}

/** SIZE MiB from the guest's stdout, timed from the first byte to the last (the channel set-up left out). */
async function stream(t: Transport, sizeMiB: number): Promise<number> {
  let bytes = 0;
  let first = 0;
  const r = await t.exec(networkScript(sizeMiB), {
    discardStdout: true,
    timeoutMs: 3_600_000,
    onOutput: (chunk, s) => {
      if (s !== 'stdout') return;
      if (!first) first = performance.now();
      bytes += chunk.length; // zeros: one char per byte
    },
  });
  const ms = performance.now() - first;
  if (r.code !== 0 || bytes !== sizeMiB * 1048576)
    throw new Error(`network stream: got ${bytes} of ${sizeMiB * 1048576} bytes (exit ${r.code}) ${r.stderr.trim()}`);
  return bytes / 1e6 / (ms / 1000);
}
