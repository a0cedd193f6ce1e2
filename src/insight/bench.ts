// `kvmforge bench`: the same workloads inside each guest, side by side, so a user sees what virtio,
// vhost, hugepages or a scheduling tier bought them (the thesis benchmarked optimized vs unoptimized VMs).
// Everything runs as the login user with tools every Debian/RHEL guest has (dd, head, sha256sum):
//   disk write  dd of SIZE MiB in BLOCK-sized requests with O_DIRECT + fsync (no guest page cache)
//   disk read   dd of that file back with O_DIRECT
//   network     SIZE MiB from the guest to kvmforge over the guest's SSH connection (through its NIC)
//   cpu         sha256 over SIZE MiB (a fixed compute job)
import { groupedChart } from './plot.ts';
import { columns } from '../core/table.ts';
import { quote } from '../core/sh.ts';

export const WORKLOADS = ['disk-write', 'disk-read', 'network', 'cpu'] as const;
export type Workload = (typeof WORKLOADS)[number];

export const blockText = (blockKiB: number) => (blockKiB % 1024 ? `${blockKiB}k` : `${blockKiB / 1024}M`);

export function label(w: Workload, blockKiB: number): string {
  const bs = blockText(blockKiB);
  return {
    'disk-write': `disk write (dd bs=${bs}, O_DIRECT)`,
    'disk-read': `disk read (dd bs=${bs}, O_DIRECT)`,
    network: 'network (guest → kvmforge, SSH stream)',
    cpu: 'cpu (sha256)',
  }[w];
}

export interface BenchOptions {
  /** Directory in the guest for the disk workload's file (on the disk to measure). */
  dir: string;
  sizeMiB: number;
  /** dd's request size: small requests show a device's per-request cost, large ones its bandwidth. */
  blockKiB: number;
}

export interface VmBench {
  host: string;
  /** Drivers of the disk that holds the bench directory and of the default-route NIC. */
  disk?: string;
  nic?: string;
  /** MB/s (10^6 bytes per second), the median of the runs. */
  results: Partial<Record<Workload, number>>;
  /** the lowest and highest of the runs (MB/s), the spread the median came from */
  spread?: Partial<Record<Workload, [number, number]>>;
  error?: string;
}

/**
 * The driver of the disk under `dir` and of the NIC the SSH session comes in on: walk up sysfs from the
 * block device to the first driver that isn't the generic SCSI disk (virtio_blk, ata_piix, nvme, …).
 */
function driversScript(dir: string): string {
  return `
driver() { d=$1; while [ "$d" != / ] && [ -n "$d" ]; do
  if [ -e "$d/driver" ]; then n=$(basename "$(readlink -f "$d/driver")"); [ "$n" = sd ] || { echo "$n"; return; }; fi
  d=$(dirname "$d"); done; echo unknown; }
src=$(df -P ${quote(dir)} | awk 'NR==2 {print $1}')
dev=$(basename "$(readlink -f "$src")")
if [ -e "/sys/class/block/$dev" ]; then echo "disk $(driver "$(readlink -f "/sys/class/block/$dev")")"
else echo "disk unknown"; fi
# the NIC that carries this SSH session (the network workload's path), else the default route's
dev_of() { awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}'; }
nic=$( { [ -n "\${SSH_CONNECTION:-}" ] && ip route get "\${SSH_CONNECTION%% *}" 2>/dev/null
  ip route show default 2>/dev/null; } | dev_of)
if [ -n "$nic" ] && [ -e "/sys/class/net/$nic/device" ]; then
  echo "nic $(driver "$(readlink -f "/sys/class/net/$nic/device")")"
else echo "nic unknown"; fi
`;
}

const now = 'date +%s%N';

/** Disk and CPU workloads (network is a stream of its own), each timed in the guest; lines `result NAME BYTES NS`. */
export function benchScript({ dir, sizeMiB, blockKiB }: BenchOptions, workloads: Workload[]): string {
  const bytes = sizeMiB * 1048576;
  const count = (sizeMiB * 1024) / blockKiB;
  const parts = [
    `export LC_ALL=C\nf=${quote(dir.replace(/\/+$/, ''))}/.kvmforge-bench.$$\ntrap 'rm -f "$f" "$f.err"' EXIT\n[ ` +
      `-d ${quote(dir)} ] && [ -w ${quote(dir)} ] || { printf 'bench directory %s is missing or not writable\\n' ` +
      `${quote(dir)} >&2; exit 3; }`,
    driversScript(dir),
  ];
  const timed = (name: Workload, cmd: string) =>
    `t0=$(${now}); if ${cmd} 2>"$f.err"; then t1=$(${now}); echo "result ${name} ${bytes} $((t1 - t0))"; else echo ` +
    `"error ${name} $(tail -n 1 "$f.err")"; fi`;
  if (workloads.includes('disk-write') || workloads.includes('disk-read'))
    parts.push(
      timed('disk-write', `dd if=/dev/zero of="$f" bs=${blockKiB}K count=${count} oflag=direct conv=fsync status=none`),
    );
  if (workloads.includes('disk-read'))
    parts.push(timed('disk-read', `dd if="$f" of=/dev/null bs=${blockKiB}K iflag=direct status=none`));
  if (workloads.includes('cpu')) parts.push(timed('cpu', `head -c ${bytes} /dev/zero | sha256sum >/dev/null`));
  return parts.join('\n');
}

export function networkScript(sizeMiB: number): string {
  return `head -c ${sizeMiB * 1048576} /dev/zero`;
}

export interface Parsed {
  disk?: string;
  nic?: string;
  mbps: Partial<Record<Workload, number>>;
  errors: string[];
}

export function parseBench(out: string): Parsed {
  const p: Parsed = { mbps: {}, errors: [] };
  for (const line of out.split('\n')) {
    const [kind, name, ...rest] = line.trim().split(' ');
    if (kind === 'disk' || kind === 'nic') p[kind] = name;
    else if (kind === 'result' && (WORKLOADS as readonly string[]).includes(name)) {
      const [bytes, ns] = rest.map(Number);
      if (bytes > 0 && ns > 0) p.mbps[name as Workload] = bytes / 1e6 / (ns / 1e9);
    } else if (kind === 'error') {
      const why = rest.join(' ') || 'failed';
      const hint =
        name.startsWith('disk') && /Invalid argument/.test(why)
          ? ' (no O_DIRECT here: is it a tmpfs? choose a directory on the disk to measure with --dir)'
          : '';
      p.errors.push(`${name}: ${why}${hint}`);
    }
  }
  return p;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (v: number | undefined) => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));

/** Workloads down, VMs across; a last column compares each VM after the first with the first. */
export function benchTable(vms: VmBench[], workloads: Workload[], o: BenchOptions, runs: number): string {
  const ok = vms.filter((v) => !v.error);
  const head = ['MB/s', ...ok.map((v) => v.host)];
  const ratio = ok.length >= 2;
  if (ratio) head.push(...ok.slice(1).map((v) => `${v.host} ÷ ${ok[0].host}`));
  const rows = [head, ['disk driver', ...ok.map((v) => v.disk ?? '-')], ['NIC driver', ...ok.map((v) => v.nic ?? '-')]];
  if (ratio) for (const r of rows.slice(1)) r.push(...ok.slice(1).map(() => ''));
  for (const w of workloads) {
    const row = [label(w, o.blockKiB), ...ok.map((v) => fmt(v.results[w]))];
    if (ratio) {
      const base = ok[0].results[w];
      row.push(
        ...ok.slice(1).map((v) => (base && v.results[w] !== undefined ? `${(v.results[w]! / base).toFixed(2)}×` : '-')),
      );
    }
    rows.push(row);
  }
  const out = [`${o.sizeMiB} MiB per workload, median of ${runs} run${runs > 1 ? 's' : ''}; higher is better`];
  if (ok.length) out.push(...columns(rows, rows[0].map((_, i) => i).slice(1)));
  for (const v of vms) if (v.error) out.push(`${v.host}: FAILED: ${v.error}`);
  return out.join('\n');
}

/** The bench chart (bench --plot and the report): a group per workload, a bar per guest, the runs' spread. */
export function benchChart(title: string, vms: VmBench[], workloads: Workload[]): string {
  const ok = vms.filter((v) => !v.error);
  return groupedChart(
    title,
    'MB/s',
    workloads.map((w) => ({
      label: w,
      values: ok.map((v) => ({
        name: v.host,
        value: v.results[w] ?? 0,
        min: v.spread?.[w]?.[0],
        max: v.spread?.[w]?.[1],
      })),
    })),
  );
}

/** The thesis's chapter 7 figures (KVM on hardware, MB/s): its optimized VM against an unoptimized twin. */
export const THESIS_CH7 = {
  disk: { optimized: 40.3, unoptimized: 27.8, how: 'cp loop of a 7 GB file ×6, table 7-3' },
  network: { optimized: 49.9, unoptimized: 26.6, how: 'scp of a 7 GB file to the host' },
  /** super-pi 2M digits, seconds: the same guest as SCHED_OTHER and as SCHED_FIFO 99 (table 7-2). */
  tiers: { ordinary: 40.86, fifo99: 39.83 },
} as const;

/**
 * `bench --thesis`: the second guest (unoptimized) against the first (optimized) beside the thesis's own
 * unoptimized ÷ optimized ratio, and whether the direction holds (the optimized guest ahead). The absolute
 * numbers are not comparable (here often software emulation, there KVM on hardware); the direction is.
 */
export function thesisComparison(vms: VmBench[], workloads: Workload[]): string[] {
  const [opt, un] = vms;
  if (!opt || !un || opt.error || un.error) return ['thesis comparison: needs both guests’ results'];
  const rows = [['workload', `${un.host} ÷ ${opt.host}`, 'thesis unoptimized ÷ optimized', 'optimized ahead']];
  for (const w of workloads) {
    const a = opt.results[w];
    const b = un.results[w];
    const measured = a && b !== undefined ? b / a : undefined;
    const ratio = measured === undefined ? '-' : `${measured.toFixed(2)}×`;
    const ref = w === 'network' ? THESIS_CH7.network : w === 'cpu' ? undefined : THESIS_CH7.disk;
    const name = w.replace('-', ' ');
    const t = THESIS_CH7.tiers;
    rows.push(
      ref
        ? [
            name,
            ratio,
            `${(ref.unoptimized / ref.optimized).toFixed(2)}× (${ref.unoptimized} / ${ref.optimized} MB/s, ${ref.how})`,
            measured === undefined ? '-' : measured < 1 ? 'yes, as in the thesis' : 'NO',
          ]
        : [name, ratio, `- (it compared tiers: super-pi ${t.ordinary} s ordinary vs ${t.fifo99} s fifo99)`, '-'],
    );
  }
  return [
    `the thesis's chapter 7, ${opt.host} as its optimized VM and ${un.host} as the unoptimized twin:`,
    ...columns(rows, [1]),
    'Absolute figures differ (the thesis ran KVM on hardware; lab guests here run under software emulation): ' +
      'what must hold is the direction, the optimized guest ahead.',
  ];
}
