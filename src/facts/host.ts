// The host's basic facts, each a named probe (one command + a pure parser). The runner reads them all in
// one round trip when it reaches a host; steps ask for the ones they use by name.
import { fact, type FactValues } from '../core/types.ts';

export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  state?: string;
  master?: string;
  kind?: string;
  addresses: { family: 'inet' | 'inet6'; address: string; prefix: number; dynamic: boolean }[];
}

export interface Facts {
  hostname: string;
  os: {
    id: string;
    versionId: string;
    family: 'debian' | 'rhel' | 'suse' | 'arch' | 'unknown';
    prettyName: string;
    like: string[];
  };
  kernel: string;
  arch: string;
  bootId: string;
  cpu: { count: number; virtFlags: ('vmx' | 'svm')[]; model: string };
  memory: {
    totalKiB: number;
    availableKiB: number;
    hugePagesTotal: number;
    hugePagesFree: number;
    hugePageSizeKiB: number;
  };
  modules: string[];
  builtinModules: string[];
  cmdline: string;
  sysctl: Record<string, string>;
  ksm: Record<string, number>;
  interfaces: Interface[];
  defaultRoute?: { dev: string; gateway?: string };
  init: 'systemd' | 'other';
  packageManager: 'apt' | 'dnf' | 'yum' | 'zypper' | 'unknown';
  bootLoader: 'grub-bls' | 'grub' | 'unknown';
  mounts: { source: string; target: string; fstype: string }[];
  versions: { qemu?: string; libvirt?: string };
  user: { uid: number; name: string };
}

export const SYSCTLS = [
  'vm.nr_hugepages',
  'vm.nr_overcommit_hugepages',
  'vm.swappiness',
  'net.ipv4.ip_forward',
  'kernel.sched_rt_runtime_us',
];
export const KSM_KEYS = [
  'run',
  'pages_to_scan',
  'sleep_millisecs',
  'merge_across_nodes',
  'pages_shared',
  'pages_sharing',
  'pages_unshared',
  'pages_volatile',
  'full_scans',
];

/** Shell helpers every fact command may use (defined once in front of each batch). r FILE: print a file with
 * builtins only; f FILE: its first line (a fork costs ~1 ms on metal and far more under emulation). */
export const FACT_PRELUDE = [
  'export LC_ALL=C',
  'r() { while IFS= read -r l || [ -n "$l" ]; do printf \'%s\\n\' "$l"; done < "$1"; }',
  'f() { IFS= read -r l < "$1" || [ -n "$l" ]; printf \'%s\\n\' "$l"; }',
].join('\n');

const trim = (o: string) => o.trim();
export const hostname = fact('hostname', 'f /proc/sys/kernel/hostname', trim);
export const osRelease = fact('os', 'r /etc/os-release', (o) => parseOsRelease(o));
export const kernelRelease = fact('kernel', 'f /proc/sys/kernel/osrelease', trim);
export const arch = fact('arch', 'uname -m', trim);
export const bootId = fact('boot_id', 'f /proc/sys/kernel/random/boot_id', trim);
export const cpu = fact(
  'cpu',
  'n=0; fl=; mo=; while IFS= read -r l; do case $l in processor*) n=$((n+1));; flags*) [ -n "$fl" ] || fl=$l;; ' +
    '\'model name\'*) [ -n "$mo" ] || mo=$l;; esac; done < /proc/cpuinfo; printf \'%s\\n%s\\n%s\\n\' "$n" "$fl" "$mo"',
  (o) => parseCpu(o),
);
export const memory = fact('meminfo', 'r /proc/meminfo', (o) => parseMeminfo(o));
export const loadedModules = fact('modules', 'while read -r m rest; do echo "$m"; done < /proc/modules', (o) =>
  o.split('\n').filter(Boolean).sort(),
);
export const builtinModules = fact(
  'builtin',
  'while IFS= read -r m; do m=${m##*/}; echo "${m%%.ko*}"; done < "/lib/modules/$(f ' +
    '/proc/sys/kernel/osrelease)/modules.builtin"',
  (o) => o.split('\n').filter(Boolean),
);
export const cmdline = fact('cmdline', 'f /proc/cmdline', trim);
// one grep each: /proc/sys integer files answer only a read from offset 0, so no byte-wise `read`
export const sysctl = fact(
  'sysctl',
  `grep -H '' ${SYSCTLS.map((k) => `/proc/sys/${k.replace(/\./g, '/')}`).join(' ')}`,
  (o) => parseGrepH(o, (p) => p.replace('/proc/sys/', '').replace(/\//g, '.')),
);
export const ksm = fact(
  'ksm',
  `grep -H '' ${KSM_KEYS.map((k) => `/sys/kernel/mm/ksm/${k}`).join(' ')}`,
  (o) =>
    Object.fromEntries(
      Object.entries(parseGrepH(o, (p) => p.replace('/sys/kernel/mm/ksm/', ''))).map(([k, v]) => [k, Number(v)]),
    ) as Record<string, number>,
);
export const interfaces = fact('addr', 'ip -j -d addr show', (o) => parseInterfaces(o));
export const defaultRoute = fact('route', 'ip -j route show default', (o) => parseDefaultRoute(o));
export const init = fact(
  'init',
  'if [ -d /run/systemd/system ]; then echo systemd; else echo other; fi',
  (o): Facts['init'] => (o.trim() === 'systemd' ? 'systemd' : 'other'),
);
export const packageManager = fact(
  'pkg',
  'for p in apt-get dnf yum zypper; do command -v $p >/dev/null && { echo $p; break; }; done',
  (o): Facts['packageManager'] => {
    const pkg = o.trim();
    return pkg === 'apt-get' ? 'apt' : pkg === 'dnf' || pkg === 'yum' || pkg === 'zypper' ? pkg : 'unknown';
  },
);
export const bootLoader = fact(
  'boot',
  'for e in /boot/loader/entries/*.conf; do [ -e "$e" ] && echo "bls ${e##*/}"; break; done; [ -e /etc/default/grub ' +
    '] && echo grub; [ -e /boot/grub/grub.cfg ] && echo grub; [ -e /boot/grub2/grub.cfg ] && echo grub',
  (o): Facts['bootLoader'] => (/^bls /m.test(o) ? 'grub-bls' : /^grub$/m.test(o) ? 'grub' : 'unknown'),
);
export const mounts = fact('mounts', 'while read -r a b c rest; do echo "$a $b $c"; done < /proc/mounts', (o) =>
  o
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [source, target, fstype] = l.split(' ');
      return { source, target, fstype };
    }),
);
export const qemuVersion = fact(
  'qemu',
  'command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1',
  (o) => /version (\S+)/.exec(o)?.[1],
);
export const libvirtVersion = fact(
  'libvirt',
  'command -v libvirtd >/dev/null && libvirtd --version',
  (o) => /(\d+\.\d+\.\d+)/.exec(o)?.[1],
);
export const user = fact('user', 'id -u; id -un', (o) => {
  const [uid, name] = o.split('\n');
  return { uid: Number(uid ?? -1), name: name ?? '' };
});

/** Every basic fact: what the runner reads when it reaches a host (one round trip), and `kvmforge facts` shows. */
export const HOST_FACTS = [
  hostname,
  osRelease,
  kernelRelease,
  arch,
  bootId,
  cpu,
  memory,
  loadedModules,
  builtinModules,
  cmdline,
  sysctl,
  ksm,
  interfaces,
  defaultRoute,
  init,
  packageManager,
  bootLoader,
  mounts,
  qemuVersion,
  libvirtVersion,
  user,
] as const;

/** The basic facts as one object (for `kvmforge facts` and its --json). */
export function factsObject(v: FactValues<typeof HOST_FACTS>): Facts {
  const [h, os, kernel, a, boot, c, mem, modules, builtin, cmd, sys, k, ifs, route, i, pm, bl, mnt, q, lv, u] = v;
  return {
    hostname: h,
    os,
    kernel,
    arch: a,
    bootId: boot,
    cpu: c,
    memory: mem,
    modules,
    builtinModules: builtin,
    cmdline: cmd,
    sysctl: sys,
    ksm: k,
    interfaces: ifs,
    defaultRoute: route,
    init: i,
    packageManager: pm,
    bootLoader: bl,
    mounts: mnt,
    versions: { qemu: q, libvirt: lv },
    user: u,
  };
}

export function splitSections(out: string): Record<string, string> {
  const res: Record<string, string> = {};
  let cur = '';
  for (const line of out.split('\n')) {
    const m = /^@@([a-z_]+)$/.exec(line);
    if (m) {
      cur = m[1];
      res[cur] = '';
    } else if (cur) res[cur] += (res[cur] ? '\n' : '') + line;
  }
  for (const k of Object.keys(res)) res[k] = res[k].trimEnd();
  return res;
}

export function parseOsRelease(text: string): Facts['os'] {
  const kv: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv[m[1]] = m[2].replace(/^["']|["']$/g, '');
  }
  const id = kv.ID ?? 'unknown';
  const like = (kv.ID_LIKE ?? '').split(/\s+/).filter(Boolean);
  const all = [id, ...like];
  const family = all.some((x) => ['debian', 'ubuntu'].includes(x))
    ? 'debian'
    : all.some((x) => ['rhel', 'centos', 'fedora', 'rocky', 'almalinux'].includes(x))
      ? 'rhel'
      : all.some((x) => x.includes('suse'))
        ? 'suse'
        : all.includes('arch')
          ? 'arch'
          : 'unknown';
  return { id, versionId: kv.VERSION_ID ?? '', family, prettyName: kv.PRETTY_NAME ?? id, like };
}

export function parseMeminfo(text: string): Facts['memory'] {
  const kv: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_()0-9]+):\s+(\d+)/.exec(line);
    if (m) kv[m[1]] = Number(m[2]);
  }
  return {
    totalKiB: kv.MemTotal ?? 0,
    availableKiB: kv.MemAvailable ?? kv.MemFree ?? 0,
    hugePagesTotal: kv.HugePages_Total ?? 0,
    hugePagesFree: kv.HugePages_Free ?? 0,
    hugePageSizeKiB: kv.Hugepagesize ?? 2048,
  };
}

/** `grep -H '' FILES` output (path:value per line) → key → value. */
export function parseGrepH(text: string, key: (path: string) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line.slice(i + 1) !== '') out[key(line.slice(0, i))] = line.slice(i + 1);
  }
  return out;
}

interface IpAddr {
  ifname: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  master?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: { family: string; local: string; prefixlen: number; dynamic?: boolean }[];
}

export function parseInterfaces(json: string): Interface[] {
  if (!json.trim()) return [];
  const list = JSON.parse(json) as IpAddr[];
  return list.map((i) => ({
    name: i.ifname,
    mac: i.address,
    mtu: i.mtu,
    state: i.operstate,
    master: i.master,
    kind: i.linkinfo?.info_kind,
    addresses: (i.addr_info ?? [])
      .filter((a) => a.family === 'inet' || a.family === 'inet6')
      .map((a) => ({
        family: a.family as 'inet' | 'inet6',
        address: a.local,
        prefix: a.prefixlen,
        dynamic: Boolean(a.dynamic),
      })),
  }));
}

export function parseDefaultRoute(json: string): Facts['defaultRoute'] {
  if (!json.trim()) return undefined;
  const r = (JSON.parse(json) as { dev: string; gateway?: string }[])[0];
  return r ? { dev: r.dev, gateway: r.gateway } : undefined;
}

/** The basic facts from a captured batch (`@@name` sections, as the fixtures hold them). */
export function parseFacts(out: string): Facts {
  const s = splitSections(out);
  return factsObject(HOST_FACTS.map((f) => f.parse(s[f.name] ?? '', 0, '')) as never);
}

export function parseCpu(o: string): Facts['cpu'] {
  const cpuLines = o.split('\n');
  const flags = (cpuLines.find((l) => l.startsWith('flags')) ?? '').split(/\s+/);
  return {
    count: Number(cpuLines[0]) || 1,
    virtFlags: (['vmx', 'svm'] as const).filter((f) => flags.includes(f)),
    model: (cpuLines.find((l) => l.startsWith('model name')) ?? '').replace(/^model name\s*:\s*/, ''),
  };
}
