// The platform report's model: what each host runs now (kernel, QEMU, libvirt and where each came from,
// bridge, modules, hugepages, KSM, boot args, domains and their tuning), whether each step is converged,
// and the last runs from the journal. The two facts it needs beyond the host facts are here too.
import { fact } from '../core/types.ts';
import type { Facts } from '../facts/host.ts';
import type { VmBench } from './bench.ts';
import type { ExitsRow } from './exits.ts';

export interface DomainInfo {
  name: string;
  state: string;
  vcpus: number;
  memoryMiB: number;
  /** What the definition tunes: hugepages, pinned vCPUs, FIFO priority, virtio disk/NIC, I/O threads … */
  tuning: string[];
}

export interface RunLine {
  run: string;
  mode: string;
  status: string;
  changes: number;
  ms: number;
  /** the failed step and its reason, when the host failed */
  error?: string;
}

export interface HostPlatform {
  host: string;
  /** the host could not be read (unreachable, a refused key …) */
  error?: string;
  os?: string;
  kernel?: { release: string; from: string };
  qemu?: { version?: string; from: string };
  libvirt?: { version?: string; from: string };
  bridges: { name: string; ports: string[]; addresses: string[] }[];
  modules: string[];
  hugepages?: { total: number; free: number; sizeKiB: number };
  ksm?: { run: number; pagesSharing: number };
  cmdline?: string;
  domains: DomainInfo[];
  /** each step's plan now: ok (converged), would change (drift), skipped (with why), failed */
  steps: { step: string; status: string; detail?: string }[];
  runs: RunLine[];
}

export interface PlatformReport {
  generated: string;
  inventory: string;
  journal: string;
  hosts: HostPlatform[];
  /** the newest results kept by `exits --save` and `bench --save` */
  exits?: SavedExits;
  bench?: SavedBench;
}

export interface SavedExits {
  saved: string;
  interval: number;
  hosts: { host: string; vms: ExitsRow[]; error?: string }[];
}

export interface SavedBench {
  saved: string;
  sizeMiB: number;
  blockKiB: number;
  runs: number;
  workloads: Record<string, string>;
  vms: VmBench[];
}

/** Installed packages that can carry the platform's parts: name → version (dpkg or rpm). */
export const platformPackages = fact<Record<string, string>>(
  'platform_packages',
  "if command -v dpkg-query >/dev/null; then dpkg-query -W -f='${Package}\\t${Version}\\t${Status}\\n' " +
    "'kvmforge-*' 'linux-image-*' qemu-system-x86 libvirt-daemon 2>/dev/null; " +
    "elif command -v rpm >/dev/null; then rpm -qa --qf '%{NAME}\\t%{VERSION}-%{RELEASE}\\tinstall ok installed\\n' " +
    "'kvmforge-*' kernel qemu-kvm libvirt-daemon; fi",
  (out) =>
    Object.fromEntries(
      out
        .split('\n')
        .map((l) => l.split('\t'))
        .filter((p) => p.length === 3 && / installed$/.test(p[2]))
        .map(([n, v]) => [n, v]),
    ),
);

/** libvirt's domains (qemu:///system) with their state and definition; none where virsh is missing. */
export const libvirtDomains = fact<DomainInfo[]>(
  'libvirt_domains',
  'command -v virsh >/dev/null || exit 0\n' +
    'timeout 20 virsh -q -c qemu:///system list --all --name | while IFS= read -r d; do\n' +
    '  [ -n "$d" ] || continue\n' +
    '  printf "@@domain %s\\n" "$d"; timeout 20 virsh -c qemu:///system domstate "$d"\n' +
    '  timeout 20 virsh -c qemu:///system dumpxml "$d"\n' +
    'done',
  (out) => parseDomains(out),
);

export function parseDomains(out: string): DomainInfo[] {
  return out
    .split(/^@@domain /m)
    .slice(1)
    .map((chunk) => {
      const [name, state = '', ...xmlLines] = chunk.split('\n');
      const xml = xmlLines.join('\n');
      const memKiB = Number(/<memory unit='KiB'>(\d+)</.exec(xml)?.[1] ?? 0);
      const tuning: string[] = [];
      if (/<hugepages\s*\/?>/.test(xml)) tuning.push('hugepages');
      const pins = (xml.match(/<vcpupin /g) ?? []).length;
      if (pins) tuning.push(`${pins} vCPU(s) pinned`);
      if (/<emulatorpin /.test(xml)) tuning.push('emulator pinned');
      const sched = /<vcpusched [^>]*scheduler='(\w+)'(?: priority='(\d+)')?/.exec(xml);
      if (sched) tuning.push(`${sched[1]}${sched[2] ? ` ${sched[2]}` : ''}`);
      if (/<target [^>]*bus='virtio'/.test(xml)) tuning.push('virtio disk');
      if (/<model type='virtio'\/>/.test(xml)) tuning.push('virtio NIC');
      const io = /<iothreads>(\d+)</.exec(xml)?.[1];
      if (io) tuning.push(`${io} I/O thread(s)`);
      return {
        name: name.trim(),
        state: state.trim(),
        vcpus: Number(/<vcpu[^>]*>(\d+)</.exec(xml)?.[1] ?? 0),
        memoryMiB: Math.round(memKiB / 1024),
        tuning,
      };
    });
}

/** Where a part came from: kvmforge's own package, the distribution's, or neither. */
function origin(pkgs: Record<string, string>, ours: string, distro: string): string {
  if (pkgs[ours]) return `kvmforge build (${ours} ${pkgs[ours]})`;
  if (pkgs[distro]) return `distribution (${distro} ${pkgs[distro]})`;
  return 'not from a package';
}

const PLATFORM_MODULES = /^(kvm|kvm_intel|kvm_amd|vhost|vhost_net|vhost_vsock|tun|bridge|virtio\w*|vfio\w*)$/;

/** One host's platform from its facts, packages and domains (pure). */
export function hostPlatform(
  host: string,
  f: Facts,
  pkgs: Record<string, string>,
  domains: DomainInfo[],
): Omit<HostPlatform, 'steps' | 'runs'> {
  const kernelPkg = Object.keys(pkgs).find((p) => p === `linux-image-${f.kernel}`);
  const kernelFrom = /kvmforge/.test(f.kernel)
    ? `kvmforge build${kernelPkg ? ` (${kernelPkg} ${pkgs[kernelPkg]})` : ''}`
    : kernelPkg
      ? `distribution (${kernelPkg} ${pkgs[kernelPkg]})`
      : pkgs.kernel
        ? `distribution (kernel ${pkgs.kernel})`
        : 'not from a package';
  const bridges = f.interfaces
    .filter((i) => i.kind === 'bridge')
    .map((b) => ({
      name: b.name,
      ports: f.interfaces.filter((i) => i.master === b.name).map((i) => i.name),
      addresses: b.addresses.map((a) => `${a.address}/${a.prefix}`),
    }));
  return {
    host,
    os: f.os.prettyName,
    kernel: { release: f.kernel, from: kernelFrom },
    qemu: { version: f.versions.qemu, from: origin(pkgs, 'kvmforge-qemu', 'qemu-system-x86') },
    libvirt: { version: f.versions.libvirt, from: origin(pkgs, 'kvmforge-libvirt', 'libvirt-daemon') },
    bridges,
    modules: [...f.modules, ...f.builtinModules].filter((m) => PLATFORM_MODULES.test(m)).sort(),
    hugepages: {
      total: f.memory.hugePagesTotal,
      free: f.memory.hugePagesFree,
      sizeKiB: f.memory.hugePageSizeKiB,
    },
    ksm: { run: f.ksm.run ?? 0, pagesSharing: f.ksm.pages_sharing ?? 0 },
    cmdline: f.cmdline,
    domains,
  };
}
