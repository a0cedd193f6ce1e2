// `kvmforge bench --tiers HOST`: the thesis's table 7-2 (super-pi as SCHED_OTHER vs SCHED_FIFO 99 under
// load) measured from the host's side. The VMs of HOST that name a tier keep running their own CPU-bound
// job; kvmforge reads how much CPU each one's vCPU threads get, first alone, then beside CPU hogs (one
// busy loop per CPU, SCHED_OTHER nice 0, each ended by `timeout`). A guest's job runs at the speed its
// vCPUs are given, so "alone ÷ under contention" is how much longer the same job takes under load.
import { columns } from '../core/table.ts';
import { groupedChart } from './plot.ts';
import { fmt, type RunningVm } from './tune.ts';

export interface TierVm {
  name: string;
  tier: string;
  /** the vCPU threads' policy as read (`fifo 99 nice 0`) */
  sched: string;
  vcpus: number;
  /** share of the vCPUs' time on a CPU, 0..1 (a vCPU thread busy all the window is 1) */
  alone: number;
  contended: number;
}

export interface TierResult {
  host: string;
  seconds: number;
  hogs: number;
  vms: TierVm[];
}

/**
 * One window alone and one beside `hogs` busy loops; lines `alone NS T1 T2 …` and `contended NS …` where NS is
 * the window and Tn each thread's time on a CPU in it (schedstat's first field), `gone` for a thread that ended.
 */
export function tiersScript(threads: { pid: number; tid: number }[], seconds: number, hogs: number): string {
  const paths = threads.map((t) => `/proc/${t.pid}/task/${t.tid}/schedstat`).join(' ');
  return `export LC_ALL=C
command -v taskset >/dev/null || { echo 'taskset (util-linux) is needed on the host' >&2; exit 3; }
ns() { for p in ${paths}; do cut -d' ' -f1 "$p" 2>/dev/null || echo gone; done | tr '\\n' ' '; }
window() { t0=$(date +%s%N); a=$(ns); sleep ${seconds}; t1=$(date +%s%N); b=$(ns); echo "$1 $((t1 - t0)) $a/ $b"; }
window alone
n=$(nproc); hogs=; i=0
trap 'kill $hogs 2>/dev/null || true' EXIT
while [ $i -lt ${hogs} ]; do
  timeout ${2 * seconds + 60} taskset -c $((i % n)) sh -c 'while :; do :; done' & hogs="$hogs $!"; i=$((i + 1))
done
sleep 1
window contended
# the hogs end here (their timeout is the backstop); a hog already gone is no failure (kvmforge runs scripts
# under set -eu, where a failing kill, even in the exit trap, would fail the measurement)
kill $hogs 2>/dev/null || true; wait 2>/dev/null || true; trap - EXIT
`;
}

/** Each thread's share of the window, by phase. */
export function parseTiers(out: string, threads: number): { alone: number[]; contended: number[] } {
  const shares = (phase: string) => {
    const line = out.split('\n').find((l) => l.startsWith(`${phase} `));
    if (!line) throw new Error(`no ${phase} window in the host's output`);
    const [head, after] = line.slice(phase.length + 1).split('/');
    const [win, ...before] = head.trim().split(/\s+/);
    const end = after.trim().split(/\s+/);
    if (before.length !== threads || end.length !== threads)
      throw new Error(`expected ${threads} vCPU threads in the ${phase} window, read ${before.length}`);
    return before.map((b, i) => {
      if (b === 'gone' || end[i] === 'gone') throw new Error('a vCPU thread ended during the measurement');
      return (Number(end[i]) - Number(b)) / Number(win);
    });
  };
  return { alone: shares('alone'), contended: shares('contended') };
}

/** A VM's vCPUs, averaged. */
export function tierVm(vm: RunningVm, tier: string, alone: number[], contended: number[]): TierVm {
  const avg = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const s = vm.vcpus[0];
  return { name: vm.name, tier, sched: fmt(s), vcpus: vm.vcpus.length, alone: avg(alone), contended: avg(contended) };
}

/** Below this a guest had no CPU-bound job running alone: its slowdown would measure nothing. */
export const BUSY = 0.5;
const slowdown = (v: TierVm) => v.alone / Math.max(v.contended, 1e-6);
const pct = (x: number) => `${(x * 100).toFixed(0)}%`;

/** The thesis's table 7-2 (super-pi 2M digits in a loaded host's guest, seconds). */
export const THESIS_TIERS = { ordinary: 40.86, fifo99: 39.83 } as const;

export function tiersTable(r: TierResult): string[] {
  const rows = [['VM', 'tier', 'vCPU threads', 'busy alone', 'under contention', 'slowdown']];
  for (const v of r.vms)
    rows.push([
      v.name,
      v.tier,
      `${v.vcpus} × ${v.sched}`,
      pct(v.alone),
      pct(v.contended),
      v.alone < BUSY ? 'idle guest' : `${slowdown(v).toFixed(2)}×`,
    ]);
  return [
    `${r.host}: ${r.seconds} s alone, then ${r.seconds} s beside ${r.hogs} CPU hog(s) ` +
      '(busy loops, SCHED_OTHER nice 0, ' +
      'one per CPU in turn)',
    'vCPU time from /proc/PID/task/TID/schedstat; slowdown = busy alone ÷ busy under contention',
    ...columns(rows, [3, 4, 5]),
    ...tiersComparison(r).lines,
  ];
}

/** The fifo99 and ordinary VMs against the thesis's figures; undefined verdict when either is missing or idle. */
export function tiersComparison(r: TierResult): { ahead?: boolean; measured?: number; lines: string[] } {
  const t = THESIS_TIERS;
  const ref =
    `the thesis, table 7-2 (super-pi 2M digits on a loaded host): ordinary ${t.ordinary} s, fifo99 ${t.fifo99} s, ` +
    `ordinary ÷ fifo99 ${(t.ordinary / t.fifo99).toFixed(2)}×`;
  const busy = r.vms.filter((v) => v.alone >= BUSY);
  const fifo = busy.find((v) => v.tier === 'fifo99');
  const ord = busy.find((v) => v.tier === 'ordinary');
  const lines = [ref];
  for (const v of r.vms.filter((x) => x.alone < BUSY))
    lines.push(
      `${v.name}: its vCPUs were busy ${pct(v.alone)} alone: start a CPU-bound job in the guest (the thesis ran ` +
        'super-pi) and measure again',
    );
  if (!fifo || !ord) {
    lines.push('no verdict: needs a busy VM in tier fifo99 and one in ordinary');
    return { lines };
  }
  const measured = slowdown(ord) / slowdown(fifo);
  const ahead = slowdown(fifo) < slowdown(ord);
  lines.push(
    `here: ${ord.name} ÷ ${fifo.name} slowdown ${measured.toFixed(2)}×; ` +
      `fifo99 ahead: ${ahead ? 'yes, as in the thesis' : 'NO'}`,
    'Absolute figures differ (the thesis timed super-pi with KVM on hardware; here the CPU share a vCPU gets is',
    'measured, often under software emulation): what must hold is the direction, the fifo99 VM ahead.',
  );
  return { ahead, measured, lines };
}

/** bench --tiers --plot: a group per phase, a bar per VM, in % of a CPU per vCPU. */
export function tiersChart(r: TierResult): string {
  return groupedChart(
    `kvmforge bench --tiers ${r.host}: vCPU time alone and beside ${r.hogs} CPU hog(s)`,
    '% of a CPU per vCPU',
    (['alone', 'contended'] as const).map((phase) => ({
      label: phase === 'alone' ? 'alone' : 'under contention',
      values: r.vms.map((v) => ({ name: `${v.name} (${v.tier})`, value: v[phase] * 100 })),
    })),
  );
}
