// `kvmforge exits`: per running VM, KVM's own exit counters, no kernel patch (the thesis patched KVM for
// /proc/kvminfo). Source: QEMU's `query-stats` (KVM's binary statistics, read by QEMU for us) over QMP —
// through `virsh qemu-monitor-command` for libvirt's VMs, over the QMP socket for others. debugfs
// (/sys/kernel/debug/kvm/PID-FD) is not needed: kernels in lockdown refuse to read it, and the stats
// ioctl only answers the process that owns the VM.
import { barChart } from './plot.ts';
import { pyScript } from './qemu-procs.ts';
import { columns } from '../core/table.ts';

/** The counters we read, summed over a VM's vCPUs. */
export const COUNTERS = [
  'exits',
  'io_exits',
  'mmio_exits',
  'halt_exits',
  'irq_exits',
  'irq_window_exits',
  'signal_exits',
  'insn_emulation',
  'hypercalls',
] as const;
export type Counters = Record<(typeof COUNTERS)[number], number>;

export interface VmSample {
  pid: number;
  name: string;
  via: 'libvirt' | 'qmp' | 'none';
  kvm: boolean;
  vcpus: number;
  first?: Counters;
  second?: Counters;
  error?: string;
  /** Not a failure: the VM has no counters to read (it runs without KVM). */
  note?: string;
}

/** Runs on the host (python3, as root): finds QEMU processes, reads query-stats twice, `interval` s apart. */
export function exitsScript(intervalS: number, names: string[] = []): string {
  return pyScript(String(intervalS), names, PY);
}

const PY = String.raw`
import time
interval = float(sys.argv[1])
COUNTERS = ${JSON.stringify(COUNTERS)}

def stats(vm):
    command = {'execute': 'query-stats', 'arguments': {'target': 'vcpu', 'providers': [{'provider': 'kvm'}]}}
    cpus = ask(vm, command)
    total = dict.fromkeys(COUNTERS, 0)
    for cpu in cpus:
        for s in cpu.get('stats', []):
            if s['name'] in total and isinstance(s['value'], int) and not isinstance(s['value'], bool):
                total[s['name']] += s['value']
    return total, len(cpus)

def sample(key):
    for vm in vms:
        if vm.get('error'):
            continue
        if not vm['kvm']:
            vm['note'] = vm['error'] = 'runs without KVM (software emulation): no exit counters'
        elif vm['via'] == 'none':
            vm['error'] = ('no QMP monitor to ask (start QEMU with -qmp unix:PATH,server,wait=off,'
                           ' or let libvirt run it)')
        else:
            try:
                vm[key], vm['vcpus'] = stats(vm)
            except Exception as e:
                vm['error'] = 'query-stats failed: %s' % ' | '.join(str(e).split('\n'))

sample('first')
if any(not vm.get('error') for vm in vms):
    time.sleep(interval)
sample('second')
for vm in vms:
    vm.pop('path', None)
    vm.setdefault('vcpus', 0)
print(json.dumps({'vms': vms, 'missing': sorted(wanted - {vm['name'] for vm in vms})}))
`;

export interface ExitsRow {
  name: string;
  pid: number;
  via: VmSample['via'];
  vcpus: number;
  total: number;
  rate: number;
  io: number;
  ioRate: number;
  /** Share of exits KVM handled itself (the rest went to QEMU in user space: port and MMIO I/O). */
  inKernel: number;
  /** Share of exits that were I/O (port I/O + MMIO). Over 0.5: I/O-bound. */
  ioShare: number;
  /** Over the interval (rates), or since the VM started when nothing moved. */
  basis: 'interval' | 'since start';
  verdict: string;
  counters: Counters;
  error?: string;
  note?: string;
}

export const IO_BOUND = 0.5;

/** The thesis's derived columns and classification, over the interval when anything happened in it. */
export function derive(v: VmSample, intervalS: number): ExitsRow {
  const base = { name: v.name, pid: v.pid, via: v.via, vcpus: v.vcpus };
  if (v.error || !v.first || !v.second) {
    return {
      ...base,
      total: 0,
      rate: 0,
      io: 0,
      ioRate: 0,
      inKernel: 0,
      ioShare: 0,
      basis: 'interval',
      verdict: '-',
      counters: v.second ?? v.first ?? zero(),
      error: v.error ?? 'no sample',
      note: v.note,
    };
  }
  const delta = Object.fromEntries(COUNTERS.map((k) => [k, v.second![k] - v.first![k]])) as Counters;
  const moved = delta.exits > 0;
  const c = moved ? delta : v.second;
  const io = c.io_exits + c.mmio_exits;
  const ioShare = c.exits ? io / c.exits : 0;
  const verdict = !c.exits
    ? 'idle (no exits)'
    : ioShare > IO_BOUND
      ? 'I/O-bound: use virtio (with vhost), or PCI passthrough / SR-IOV for the busiest device'
      : 'compute-bound';
  return {
    ...base,
    total: v.second.exits,
    rate: delta.exits / intervalS,
    io: v.second.io_exits + v.second.mmio_exits,
    ioRate: (delta.io_exits + delta.mmio_exits) / intervalS,
    inKernel: c.exits ? 1 - io / c.exits : 0,
    ioShare,
    basis: moved ? 'interval' : 'since start',
    verdict,
    counters: v.second,
  };
}

const zero = (): Counters => Object.fromEntries(COUNTERS.map((k) => [k, 0])) as Counters;

export function parseExits(stdout: string): { vms: VmSample[]; missing: string[] } {
  const last = stdout.trim().split('\n').pop() ?? '';
  const data = JSON.parse(last) as { vms: VmSample[]; missing: string[] };
  return data;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const num = (x: number) =>
  x >= 1e6 ? `${(x / 1e6).toFixed(1)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(x % 1 ? 1 : 0);

/** One table per host, for people. */
export function exitsTable(host: string, rows: ExitsRow[], intervalS: number): string {
  if (!rows.length) return `${host}: no running QEMU processes`;
  const header = ['vm', 'pid', 'vcpus', 'exits', 'exits/s', 'I/O exits', 'I/O/s', 'in kernel', 'I/O share', 'verdict'];
  const body = rows.map((r) =>
    r.error
      ? [r.name, String(r.pid), String(r.vcpus), '-', '-', '-', '-', '-', '-', r.error]
      : [
          r.name,
          String(r.pid),
          String(r.vcpus),
          num(r.total),
          num(r.rate),
          num(r.io),
          num(r.ioRate),
          pct(r.inKernel),
          pct(r.ioShare),
          `${r.verdict}${r.basis === 'since start' ? ' (since start: nothing moved in the interval)' : ''}`,
        ],
  );
  return [`${host} (rates over ${intervalS} s; shares over the interval)`, ...columns([header, ...body])].join('\n');
}

/** The exits chart (here and in the report): per VM, I/O exits and the others, stacked. */
export function exitsChart(interval: number, bars: { label: string; parts: { name: string; value: number }[] }[]) {
  return barChart(`KVM exits per VM over ${interval} s (I/O share: the lower part)`, 'exits per second', bars, {
    'I/O exits/s (port I/O + MMIO)': '#e45756',
    'other exits/s': '#4c78a8',
  });
}

export function exitsBars(results: { host: string; vms: ExitsRow[] }[]) {
  return results.flatMap((r) =>
    r.vms
      .filter((v) => !v.error)
      .map((v) => ({
        label: results.length > 1 ? `${r.host}/${v.name}` : v.name,
        parts: [
          { name: 'I/O exits/s (port I/O + MMIO)', value: v.ioRate },
          { name: 'other exits/s', value: v.rate - v.ioRate },
        ],
      })),
  );
}
