// `kvmforge tune`: the thesis's scheduling tiers (ch. 4: ordinary / rr90 / rr99 / fifo99, with nice
// values) applied to the vCPU threads of *running* VMs — what its C tool did with sched_setscheduler —
// using chrt and renice. Idempotent: threads already right are left alone; --plan changes nothing.
import { sh } from '../core/sh.ts';
import { TIERS } from '../domains/profiles.ts';
import { resolveVms } from '../domains/spec.ts';
import type { Host, Transport } from '../core/types.ts';
import { HostError } from '../core/errors.ts';
import { pyScript } from './qemu-procs.ts';

export const POLICY: Record<number, string> = { 0: 'other', 1: 'fifo', 2: 'rr', 3: 'batch', 5: 'idle', 6: 'deadline' };
export interface Sched {
  policy: string;
  rtprio: number;
  nice: number;
}
export interface VcpuThread extends Sched {
  index: number;
  tid: number;
}
export interface RunningVm {
  name: string;
  pid: number;
  via: 'libvirt' | 'qmp' | 'none';
  vcpus: VcpuThread[];
  error?: string;
}
export interface Want {
  vm: string;
  tier: string;
  sched: Sched;
}
export interface ThreadChange {
  vm: string;
  index: number;
  tid: number;
  before: Sched;
  after: Sched;
}

/** The VMs of a host's inventory entry that name a tier. */
export function wantedTiers(host: Host): Want[] {
  if (!host.vars.domains_vms) return [];
  return resolveVms(host)
    .filter((vm) => vm.tier)
    .map((vm) => {
      const t = TIERS[vm.tier!];
      return { vm: vm.name, tier: vm.tier!, sched: { policy: t.scheduler, rtprio: t.priority ?? 0, nice: t.nice } };
    });
}

/** Reads every vCPU thread's policy, RT priority and nice (comm "CPU n/KVM", else QMP query-cpus-fast). */
export function readScript(names: string[]): string {
  return pyScript('-', names, PY);
}

const PY = String.raw`
def thread_stat(pid, tid):
    s = open('/proc/%d/task/%d/stat' % (pid, tid)).read()
    f = s[s.rindex(')') + 2:].split()
    return {'nice': int(f[16]), 'rtprio': int(f[37]), 'policy': int(f[38])}

for vm in vms:
    threads = []
    try:
        for tid in sorted(int(t) for t in os.listdir('/proc/%d/task' % vm['pid'])):
            comm = open('/proc/%d/task/%d/comm' % (vm['pid'], tid)).read().strip()
            m = re.match(r'CPU (\d+)/(KVM|TCG)$', comm)
            if m:
                threads.append(dict(index=int(m.group(1)), tid=tid, **thread_stat(vm['pid'], tid)))
        if not threads and vm['via'] != 'none':
            for c in ask(vm, {'execute': 'query-cpus-fast'}):
                threads.append(dict(index=c['cpu-index'], tid=c['thread-id'], **thread_stat(vm['pid'], c['thread-id'])))
    except Exception as e:
        vm['error'] = 'cannot read its vCPU threads: %s' % ' | '.join(str(e).split('\n'))
    if not threads and not vm.get('error'):
        vm['error'] = 'no vCPU threads found (QEMU without debug-threads=on and without a QMP monitor)'
    vm['vcpus'] = sorted(threads, key=lambda t: t['index'])
    vm.pop('path', None)
rt = open('/proc/sys/kernel/sched_rt_runtime_us').read().strip()
print(json.dumps({'vms': vms, 'missing': sorted(wanted - {v['name'] for v in vms}), 'rtRuntimeUs': int(rt)}))
`;

export function parseRead(stdout: string): { vms: RunningVm[]; missing: string[]; rtRuntimeUs: number } {
  const data = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as {
    vms: (Omit<RunningVm, 'vcpus'> & { vcpus: (Omit<VcpuThread, 'policy'> & { policy: number })[] })[];
    missing: string[];
    rtRuntimeUs: number;
  };
  return {
    ...data,
    vms: data.vms.map((v) => ({
      ...v,
      vcpus: v.vcpus.map((t) => ({ ...t, policy: POLICY[t.policy] ?? String(t.policy) })),
    })),
  };
}

/** The running VMs' vCPU threads read on the host (as root), and what is wrong with the ones asked for: not running,
 * or threads that can't be read. */
export async function readRunning(t: Transport, names: string[]) {
  const r = await t.exec(readScript(names), { sudo: true, timeoutMs: 120_000 });
  if (r.code !== 0) throw new HostError(r.stderr.trim().split('\n').pop() || `exit ${r.code}`);
  const found = parseRead(r.stdout);
  const problems = [
    ...found.missing.map((m) => `${m} is not running`),
    ...found.vms.filter((v) => v.error).map((v) => `${v.name}: ${v.error}`),
  ];
  return { ...found, problems };
}

const same = (a: Sched, b: Sched) => a.policy === b.policy && a.rtprio === b.rtprio && a.nice === b.nice;

/** Threads whose policy, priority or nice differ from their VM's tier. */
export function planTune(want: Want[], running: RunningVm[]): ThreadChange[] {
  return want.flatMap((w) => {
    const vm = running.find((r) => r.name === w.vm);
    if (!vm || vm.error) return [];
    return vm.vcpus
      .filter((t) => !same(t, w.sched))
      .map((t) => ({
        vm: w.vm,
        index: t.index,
        tid: t.tid,
        before: { policy: t.policy, rtprio: t.rtprio, nice: t.nice },
        after: w.sched,
      }));
  });
}

/** chrt then renice for each thread; stops at the first failure (the message names the thread). */
export function applyScript(changes: ThreadChange[]): string {
  const flag: Record<string, string> = { other: '-o', fifo: '-f', rr: '-r', batch: '-b', idle: '-i' };
  return changes
    .map((c) => {
      const id = String(c.tid);
      const why = `vCPU ${c.index} of ${c.vm} (thread ${c.tid})`;
      return (
        sh`chrt ${flag[c.after.policy]} -p ${String(c.after.rtprio)} ${id} && renice -n ` +
        sh`${String(c.after.nice)} -p ${id} >/dev/null || { echo ${`cannot set ${why}`} >&2; exit 1; }`
      );
    })
    .join('\n');
}

export const fmt = (s: Sched) =>
  `${s.policy}${s.policy === 'fifo' || s.policy === 'rr' ? ` ${s.rtprio}` : ''} nice ${s.nice}`;
