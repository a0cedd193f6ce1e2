// `kvmforge exits --reasons`: exits broken down by reason with perf, from the tracepoints `perf kvm stat`
// reads: kvm:kvm_exit (every exit, with the hardware's reason: IO_INSTRUCTION, HLT, EPT_VIOLATION, …)
// and kvm:kvm_userspace_exit (the exits KVM passed on to QEMU: KVM_EXIT_IO, KVM_EXIT_MMIO, …).
// Not `perf kvm stat report` itself: it pairs kvm_exit with kvm_entry and shows nothing at all on a
// KVM that doesn't trace those (measured: this machine's nested PVM KVM), where kvm_userspace_exit
// still tells what QEMU had to handle. tracefs is mounted, if needed, in a private mount namespace
// (`unshare -m`): the host's own mounts stay as they are.
import { quote } from '../core/sh.ts';

export interface Reasons {
  /** kvm:kvm_exit by reason: every exit, handled in the kernel or not. */
  exits: Record<string, number>;
  /** kvm:kvm_userspace_exit by reason: what QEMU had to handle. */
  userspace: Record<string, number>;
}

/** Counts `perf script -F pid,event,trace` lines by PID, event and the word after "reason". */
export const COUNT_AWK =
  `{ r = "?"; for (i = 3; i < NF; i++) if ($i == "reason") { r = $(i + 1); break }; n[$1 " ` +
  `" $2 " " r]++ } END { for (k in n) print n[k], k }`;

/** Runs on the host as root: records both tracepoints of `pids` for `intervalS` s; prints `COUNT PID EVENT REASON`. */
export function reasonsScript(pids: number[], intervalS: number): string {
  const awk = COUNT_AWK;
  return `command -v perf >/dev/null 2>&1 || {
  echo 'no perf on this host (Debian/Ubuntu: apt-get install linux-perf; RHEL: dnf install perf)' >&2; exit 3
}
command -v unshare >/dev/null 2>&1 || { echo 'no unshare on this host (util-linux)' >&2; exit 3; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
unshare -m --propagation private sh -c '
  t=/sys/kernel/tracing
  [ -d $t/events/kvm ] || mount -t tracefs nodev $t 2>"$2/err" || {
    echo "cannot mount tracefs: $(cat "$2/err")" >&2; exit 4
  }
  [ -d $t/events/kvm ] || { echo "no kvm tracepoints in tracefs (is the kvm module loaded?)" >&2; exit 4; }
  perf record -q -e kvm:kvm_exit -e kvm:kvm_userspace_exit -p "$1" -o "$2/perf.data" -- sleep "$3" \
    >/dev/null 2>"$2/err" || { echo "perf record failed: $(tail -n 1 "$2/err")" >&2; exit 4; }
  perf script -i "$2/perf.data" -F pid,event,trace 2>/dev/null | awk "$4"
' sh ${quote(pids.join(','))} "$d" ${quote(String(intervalS))} ${quote(awk)}
`;
}

export function parseReasons(out: string): Map<number, Reasons> {
  const byPid = new Map<number, Reasons>();
  for (const line of out.split('\n')) {
    const m = /^(\d+) (\d+) kvm:(kvm_exit|kvm_userspace_exit): (\S+)$/.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    const r = byPid.get(pid) ?? { exits: {}, userspace: {} };
    const into = m[3] === 'kvm_exit' ? r.exits : r.userspace;
    into[m[4]] = (into[m[4]] ?? 0) + Number(m[1]);
    byPid.set(pid, r);
  }
  return byPid;
}

const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

function top(o: Record<string, number>, n = 5): string {
  const sum = total(o);
  const rows = Object.entries(o).sort((a, b) => b[1] - a[1]);
  const shown = rows.slice(0, n).map(([k, v]) => `${k} ${v} (${((100 * v) / sum).toFixed(1)}%)`);
  if (rows.length > n) shown.push(`${rows.length - n} more`);
  return shown.join(', ');
}

/** One line per VM for people. */
export function reasonsLine(name: string, r: Reasons | undefined, intervalS: number): string {
  const head = `${name}: exit reasons over ${intervalS} s (perf)`;
  if (!r || (!total(r.exits) && !total(r.userspace))) return `${head}: no exits traced`;
  const exits = total(r.exits)
    ? `all exits: ${top(r.exits)}`
    : 'all exits: not traced by this KVM (kvm:kvm_exit fired 0 times)';
  const user = total(r.userspace) ? `to user space: ${top(r.userspace)}` : 'to user space: none';
  return `${head}: ${exits}; ${user}`;
}
