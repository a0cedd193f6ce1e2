// `kvmforge top`: a host's VM processes and their threads — policy, RT priority, nice, CPU%, memory%,
// voluntary / involuntary context switches — like the thesis's VM process monitor, without its C.
import { pyScript } from './qemu-procs.ts';
import { POLICY } from './tune.ts';

export interface TopRow {
  vm: string;
  pid: number;
  tid: number;
  thread: string;
  policy: string;
  rtprio: number;
  nice: number;
  /** Percent of one CPU over the sample. */
  cpu: number;
  /** The process's resident memory, percent of the host's. */
  mem: number;
  vcs: number;
  ivcs: number;
}

export type SortKey = 'cpu' | 'mem';

/** One sample: every thread of every QEMU process, CPU% over `intervalS`. */
export function topScript(intervalS: number): string {
  return pyScript(String(intervalS), [], PY);
}

const PY = String.raw`
interval = float(sys.argv[1])
tick = os.sysconf('SC_CLK_TCK')
page = os.sysconf('SC_PAGE_SIZE')
total = int(open('/proc/meminfo').read().split('\n')[0].split()[1]) * 1024

def threads():
    out = {}
    for vm in vms:
        try:
            rss = int(open('/proc/%d/statm' % vm['pid']).read().split()[1]) * page
            for tid in os.listdir('/proc/%d/task' % vm['pid']):
                base = '/proc/%d/task/%s/' % (vm['pid'], tid)
                s = open(base + 'stat').read()
                f = s[s.rindex(')') + 2:].split()
                st = dict(l.split(':\t', 1) for l in open(base + 'status').read().splitlines() if ':\t' in l)
                out[(vm['pid'], int(tid))] = dict(
                    vm=vm['name'], pid=vm['pid'], tid=int(tid), thread=open(base + 'comm').read().strip(),
                    policy=int(f[38]), rtprio=int(f[37]), nice=int(f[16]), ticks=int(f[11]) + int(f[12]),
                    mem=100.0 * rss / total, vcs=int(st.get('voluntary_ctxt_switches', 0)),
                    ivcs=int(st.get('nonvoluntary_ctxt_switches', 0)))
        except (OSError, ValueError, IndexError):
            continue
    return out

a = threads()
time.sleep(interval)
b = threads()
rows = []
for k, t in b.items():
    now = t.pop('ticks')
    t['cpu'] = 100.0 * (now - a[k]['ticks']) / tick / interval if k in a else 0.0
    rows.append(t)
print(json.dumps(rows))
`;

export function parseTop(stdout: string): TopRow[] {
  const rows = JSON.parse(stdout.trim().split('\n').pop() ?? '[]') as (Omit<TopRow, 'policy'> & { policy: number })[];
  return rows.map((r) => ({ ...r, cpu: Math.max(0, r.cpu), policy: POLICY[r.policy] ?? String(r.policy) }));
}

export function sortRows(rows: TopRow[], key: SortKey): TopRow[] {
  return [...rows].sort((a, b) => b[key] - a[key] || b.cpu - a.cpu || a.tid - b.tid);
}

export function topTable(rows: TopRow[], key: SortKey, limit = Infinity): string {
  const header = ['VM', 'PID', 'TID', 'THREAD', 'POLICY', 'RTPRIO', 'NICE', 'CPU%', 'MEM%', 'VCSW', 'IVCSW'];
  const body = sortRows(rows, key)
    .slice(0, limit)
    .map((r) => [
      r.vm,
      String(r.pid),
      String(r.tid),
      r.thread,
      r.policy,
      r.policy === 'fifo' || r.policy === 'rr' ? String(r.rtprio) : '-',
      String(r.nice),
      r.cpu.toFixed(1),
      r.mem.toFixed(1),
      String(r.vcs),
      String(r.ivcs),
    ]);
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i].length)));
  const line = (row: string[]) =>
    row
      .map((c, i) => (i >= 1 && i !== 3 && i !== 4 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...body.map(line)].join('\n');
}
