// VMs as inventory data: the JSON Schema of one entry of `domains_vms`, and the resolution of an entry
// (profile → own keys → defaults) into the complete VM the template renders.
import type { Host } from '../core/types.ts';
import { badVar, varOr } from '../core/vars.ts';
import { BUILTIN_PROFILES, TIERS } from './profiles.ts';

const cpuset = {
  type: 'string',
  pattern: '^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$',
  description: 'Host CPUs, like "2" or "0-3,6".',
};
export const PCI_ADDRESS = '^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$';
const pci = { type: 'string', pattern: PCI_ADDRESS, description: 'PCI address, like "0000:03:00.0" (lspci -D).' };
const hex4 = { type: 'string', pattern: '^(0x)?[0-9a-fA-F]{4}$' };
const path = { type: 'string', pattern: '^/[^\\n]*$', description: 'An absolute path.' };
const vcpuMap = { type: 'object', propertyNames: { pattern: '^[0-9]+$' }, additionalProperties: cpuset };

const disk = {
  type: 'object',
  additionalProperties: false,
  properties: {
    path,
    format: { enum: ['qcow2', 'raw'] },
    size: {
      type: 'string',
      pattern: '^[0-9]+[KMGT]?$',
      description: 'Create the image with qemu-img when it is missing, e.g. "20G".',
    },
    bus: { enum: ['virtio', 'scsi', 'sata', 'ide'] },
    dev: { type: 'string', pattern: '^(vd|sd|hd)[a-z]$' },
    cache: { enum: ['none', 'writethrough', 'writeback', 'directsync', 'unsafe', 'default'] },
    io: { enum: ['native', 'threads', 'io_uring'] },
    discard: { enum: ['unmap', 'ignore'] },
    iothread: { type: 'integer', minimum: 1 },
    readonly: { type: 'boolean' },
  },
};

const nic = {
  type: 'object',
  additionalProperties: false,
  properties: {
    bridge: { type: 'string', pattern: '^[^\\s/]{1,15}$', description: 'Host bridge (default br0).' },
    network: {
      type: 'string',
      minLength: 1,
      description: 'A libvirt network instead of a bridge (e.g. an SR-IOV pool with forward mode hostdev).',
    },
    vf: { ...pci, description: 'An SR-IOV virtual function passed through as this NIC (interface type hostdev).' },
    model: { enum: ['virtio', 'e1000', 'e1000e', 'rtl8139'] },
    vhost: {
      type: 'boolean',
      description:
        'true: vhost-net back end (libvirt uses it when present if unset); false: QEMU user-space back end (the ' +
        'thesis: when the guest cannot keep up).',
    },
    queues: { type: 'integer', minimum: 1, maximum: 256 },
    mac: { type: 'string', pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' },
  },
};

export const vmSchema = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[^/\\n]{1,200}$', description: 'Domain name, unique on the host.' },
    profile: {
      type: 'string',
      minLength: 1,
      description: `A preset: ${Object.keys(BUILTIN_PROFILES).join(', ')}, or one of domains_profiles.`,
    },
    tier: { enum: Object.keys(TIERS), description: 'Scheduling tier of the vCPU threads (the thesis, ch. 4).' },
    type: { enum: ['kvm', 'qemu'], description: 'kvm (default) or qemu (software emulation).' },
    memory: { type: 'integer', minimum: 16, description: 'MiB.' },
    current_memory: { type: 'integer', minimum: 16, description: 'MiB at start (balloon), default = memory.' },
    vcpus: { type: 'integer', minimum: 1, maximum: 4096 },
    machine: { type: 'string', minLength: 1 },
    arch: { enum: ['x86_64', 'i686', 'aarch64'] },
    emulator: path,
    boot: { type: 'array', items: { enum: ['hd', 'cdrom', 'network', 'fd'] } },
    disks: { type: 'array', items: disk },
    cdrom: { ...path, description: 'An ISO attached as a CD-ROM, e.g. virtio-win.iso for Windows guests.' },
    nics: { type: 'array', items: nic },
    graphics: {
      oneOf: [
        { const: false },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            type: { enum: ['vnc', 'spice'] },
            listen: { type: 'string', minLength: 1 },
            port: { type: 'integer', minimum: -1, maximum: 65535 },
            keymap: { type: 'string', pattern: '^[a-z]{2}(-[a-z]{2})?$' },
          },
        },
      ],
    },
    inputs: { type: 'boolean', description: 'A PS/2 mouse and a USB tablet (the thesis VM has both).' },
    hugepages: {
      oneOf: [
        { type: 'boolean' },
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            size: { enum: ['2M', '1G'] },
            nodeset: {
              ...cpuset,
              description:
                'Guest NUMA nodes (the thesis: "0"; without guest NUMA cells libvirt folds "0" into the default).',
            },
            immediate: { type: 'boolean' },
          },
        },
      ],
      description: 'Back guest memory with hugepages (true, or page size / nodeset / immediate allocation).',
    },
    memballoon: { enum: ['virtio', 'none', 'default'] },
    vcpupin: { ...vcpuMap, description: 'vCPU number → host CPUs.' },
    emulatorpin: cpuset,
    iothreads: { type: 'integer', minimum: 0, maximum: 64 },
    iothreadpin: { ...vcpuMap, description: 'I/O thread number → host CPUs.' },
    shares: { type: 'integer', minimum: 2, maximum: 262144 },
    period: { type: 'integer', minimum: 1000, maximum: 1000000 },
    quota: { type: 'integer', minimum: -1 },
    numatune: {
      type: 'object',
      additionalProperties: false,
      required: ['nodeset'],
      properties: { mode: { enum: ['strict', 'preferred', 'interleave', 'restrictive'] }, nodeset: cpuset },
    },
    nosharepages: { type: 'boolean', description: 'Keep this VM out of KSM.' },
    hostdevs: {
      type: 'array',
      items: {
        oneOf: [
          { type: 'object', additionalProperties: false, required: ['pci'], properties: { pci } },
          {
            type: 'object',
            additionalProperties: false,
            required: ['usb'],
            properties: {
              usb: {
                type: 'object',
                additionalProperties: false,
                required: ['vendor', 'product'],
                properties: { vendor: hex4, product: hex4 },
              },
            },
          },
        ],
      },
    },
    autostart: { type: 'boolean' },
    start: { type: 'boolean', description: 'Start the VM when it is not running (default false).' },
  },
};

export interface Disk {
  path: string;
  format: 'qcow2' | 'raw';
  size?: string;
  bus: string;
  dev: string;
  cache?: string;
  io?: string;
  discard?: string;
  iothread?: number;
  readonly?: boolean;
}
export interface Nic {
  bridge?: string;
  network?: string;
  vf?: Pci;
  model: string;
  vhost?: boolean;
  queues?: number;
  mac?: string;
}
export interface Pci {
  domain: string;
  bus: string;
  slot: string;
  function: string;
  text: string;
}
export interface Vm {
  name: string;
  type: 'kvm' | 'qemu';
  memoryKiB: number;
  currentMemoryKiB: number;
  vcpus: number;
  machine: string;
  arch: string;
  emulator?: string;
  boot: string[];
  disks: Disk[];
  cdrom?: { path: string; bus: 'ide' | 'sata'; dev: string };
  nics: Nic[];
  graphics?: { type: string; listen?: string; port: number; keymap?: string };
  inputs: boolean;
  hugepages?: { sizeKiB?: number; nodeset?: string; immediate: boolean };
  memballoon: string;
  vcpupin: [number, string][];
  emulatorpin?: string;
  iothreads: number;
  iothreadpin: [number, string][];
  vcpusched?: { scheduler: string; priority?: number };
  tier?: string;
  shares?: number;
  period?: number;
  quota?: number;
  numatune?: { mode: string; nodeset: string };
  nosharepages: boolean;
  hostdevs: ({ pci: Pci } | { usb: { vendor: string; product: string } })[];
  autostart?: boolean;
  start: boolean;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** Profile under entry: maps merge key by key, lists of maps merge item by item, anything else is replaced. */
export function overlay(base: unknown, top: unknown): unknown {
  if (top === undefined) return base;
  if (isObj(base) && isObj(top)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(top)) out[k] = overlay(base[k], v);
    return out;
  }
  if (Array.isArray(base) && Array.isArray(top) && top.every(isObj) && base.every(isObj)) {
    return top.map((t, i) => overlay(base[i], t));
  }
  return top;
}

export function parsePci(text: string): Pci {
  const full = text.length === 7 ? `0000:${text}` : text;
  const [domain, bus, rest] = full.toLowerCase().split(':');
  const [slot, fn] = rest.split('.');
  return { domain: `0x${domain}`, bus: `0x${bus}`, slot: `0x${slot}`, function: `0x${fn}`, text: full.toLowerCase() };
}

const hex = (s: string) => `0x${s.toLowerCase().replace(/^0x/, '')}`;

/** Resolves every VM of a host; errors point at the entry's file:line. */
export function resolveVms(host: Host): Vm[] {
  const entries = varOr<Obj[]>(host, 'domains_vms', []);
  const userProfiles = varOr<Record<string, Obj>>(host, 'domains_profiles', {});
  const names = new Map<string, number>();
  return entries.map((entry, i) => {
    const at = (k?: string) => `domains_vms.${i}${k ? `.${k}` : ''}`;
    const bad = (k: string | undefined, msg: string) => badVar(host, at(k), `VM '${String(entry.name)}': ${msg}`);
    // the profile, and the profiles a user profile builds on
    let merged: Obj = entry;
    const seen: string[] = [];
    for (let prof = entry.profile as string | undefined; prof; ) {
      if (seen.includes(prof))
        throw bad('profile', `profile '${prof}' builds on itself (${[...seen, prof].join(' → ')})`);
      seen.push(prof);
      const user = userProfiles[prof];
      const p = user ?? BUILTIN_PROFILES[prof];
      if (!p)
        throw bad(
          'profile',
          `unknown profile '${prof}': expected one of ` +
            `${[...Object.keys(BUILTIN_PROFILES), ...Object.keys(userProfiles)].join(', ')}`,
        );
      merged = overlay(p, merged) as Obj;
      prof = user?.profile as string | undefined;
    }
    const name = String(entry.name);
    if (names.has(name))
      throw bad('name', `duplicate VM name on host ${host.name} (also entry ${names.get(name)! + 1} of domains_vms)`);
    names.set(name, i);
    const memory = Number(merged.memory ?? 1024);
    const vcpus = Number(merged.vcpus ?? 1);
    const current = Number(merged.current_memory ?? memory);
    if (current > memory)
      throw bad('current_memory', `current_memory ${current} MiB is more than memory ${memory} MiB`);

    const busPrefix: Record<string, string> = { virtio: 'vd', scsi: 'sd', sata: 'sd', ide: 'hd' };
    const used = new Set<string>();
    const disks: Disk[] = ((merged.disks as Obj[] | undefined) ?? []).map((d, j) => {
      if (!d.path) throw bad(`disks.${j}`, `disk ${j + 1} has no path`);
      const bus = String(d.bus ?? 'virtio');
      let dev = d.dev as string | undefined;
      if (!dev) for (let c = 0; !dev || used.has(dev); c++) dev = `${busPrefix[bus]}${String.fromCharCode(97 + c)}`;
      if (used.has(dev)) throw bad(`disks.${j}.dev`, `disk device ${dev} is used twice`);
      used.add(dev);
      if (d.iothread !== undefined && Number(d.iothread) > Number(merged.iothreads ?? 0))
        throw bad(
          `disks.${j}.iothread`,
          `I/O thread ${String(d.iothread)} does not exist: iothreads is ${String(merged.iothreads ?? 0)}`,
        );
      return {
        path: String(d.path),
        format: (d.format ?? (String(d.path).endsWith('.qcow2') ? 'qcow2' : 'raw')) as 'qcow2' | 'raw',
        size: d.size as string | undefined,
        bus,
        dev,
        cache: d.cache as string | undefined,
        io: d.io as string | undefined,
        discard: d.discard as string | undefined,
        iothread: d.iothread as number | undefined,
        readonly: d.readonly as boolean | undefined,
      };
    });
    const nics: Nic[] = ((merged.nics as Obj[] | undefined) ?? [{}]).map((n, j) => {
      const kinds = ['bridge', 'network', 'vf'].filter((k) => n[k] !== undefined);
      if (kinds.length > 1)
        throw bad(`nics.${j}`, `a NIC takes one of bridge, network or vf, not ${kinds.join(' and ')}`);
      const vhost = n.vhost as boolean | undefined;
      if (n.queues !== undefined && Number(n.queues) > vcpus)
        throw bad(`nics.${j}.queues`, `${String(n.queues)} queues is more than the VM's ${vcpus} vCPUs`);
      return {
        bridge: kinds.length ? (n.bridge as string | undefined) : 'br0',
        network: n.network as string | undefined,
        vf: n.vf ? parsePci(String(n.vf)) : undefined,
        model: String(n.model ?? 'virtio'),
        vhost,
        queues: n.queues as number | undefined,
        mac: (n.mac as string | undefined)?.toLowerCase(),
      };
    });
    const pins = (key: 'vcpupin' | 'iothreadpin', max: number, what: string): [number, string][] =>
      Object.entries((merged[key] as Record<string, string> | undefined) ?? {}).map(([k, v]) => {
        if (Number(k) >= max + (key === 'iothreadpin' ? 1 : 0) || (key === 'iothreadpin' && Number(k) < 1))
          throw bad(`${key}.${k}`, `${what} ${k} does not exist (the VM has ${max})`);
        return [Number(k), canonicalCpuset(v)];
      });
    const hp = merged.hugepages;
    const g = merged.graphics as Obj | false | undefined;
    const tier = merged.tier as string | undefined;
    const t = tier ? TIERS[tier] : undefined;
    return {
      name,
      type: (merged.type ?? 'kvm') as 'kvm' | 'qemu',
      memoryKiB: memory * 1024,
      currentMemoryKiB: current * 1024,
      vcpus,
      machine: String(merged.machine ?? 'pc'),
      arch: String(merged.arch ?? 'x86_64'),
      emulator: merged.emulator as string | undefined,
      boot: (merged.boot as string[] | undefined) ?? ['hd'],
      disks,
      cdrom: merged.cdrom ? cdromOn(String(merged.machine ?? 'pc'), String(merged.cdrom), used) : undefined,
      nics,
      graphics:
        g === false || g === undefined
          ? undefined
          : {
              type: String(g.type ?? 'vnc'),
              listen: g.listen as string | undefined,
              port: Number(g.port ?? -1),
              keymap: g.keymap as string | undefined,
            },
      inputs: Boolean(merged.inputs),
      hugepages:
        hp === true
          ? { immediate: false }
          : isObj(hp)
            ? {
                sizeKiB: hp.size === '1G' ? 1048576 : hp.size === '2M' ? 2048 : undefined,
                nodeset:
                  hp.nodeset && canonicalCpuset(String(hp.nodeset)) !== '0'
                    ? canonicalCpuset(String(hp.nodeset))
                    : undefined,
                immediate: Boolean(hp.immediate),
              }
            : undefined,
      memballoon: String(merged.memballoon ?? 'virtio'),
      vcpupin: pins('vcpupin', vcpus, 'vCPU'),
      emulatorpin: merged.emulatorpin ? canonicalCpuset(String(merged.emulatorpin)) : undefined,
      iothreads: Number(merged.iothreads ?? 0),
      iothreadpin: pins('iothreadpin', Number(merged.iothreads ?? 0), 'I/O thread'),
      vcpusched: t && t.scheduler !== 'other' ? { scheduler: t.scheduler, priority: t.priority } : undefined,
      tier,
      shares: merged.shares as number | undefined,
      period: merged.period as number | undefined,
      quota: merged.quota as number | undefined,
      numatune: isObj(merged.numatune)
        ? { mode: String(merged.numatune.mode ?? 'strict'), nodeset: canonicalCpuset(String(merged.numatune.nodeset)) }
        : undefined,
      nosharepages: Boolean(merged.nosharepages),
      hostdevs: ((merged.hostdevs as Obj[] | undefined) ?? []).map((h) =>
        h.pci
          ? { pci: parsePci(String(h.pci)) }
          : { usb: { vendor: hex(String((h.usb as Obj).vendor)), product: hex(String((h.usb as Obj).product)) } },
      ),
      autostart: merged.autostart as boolean | undefined,
      start: Boolean(merged.start),
    };
  });
}

/** i440fx ('pc') machines have IDE, q35 only SATA. */
function cdromOn(machine: string, path: string, used: Set<string>): { path: string; bus: 'ide' | 'sata'; dev: string } {
  const bus = /q35/.test(machine) ? 'sata' : 'ide';
  const prefix = bus === 'ide' ? 'hd' : 'sd';
  let c = 2;
  while (used.has(`${prefix}${String.fromCharCode(97 + c)}`)) c++;
  return { path, bus, dev: `${prefix}${String.fromCharCode(97 + c)}` };
}

/** The cpuset as libvirt writes it back: sorted, runs as ranges ("6,7,2" → "2,6-7"). */
export function canonicalCpuset(set: string): string {
  const cpus = [...new Set(cpusOf(set))].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < cpus.length; ) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    out.push(j > i ? `${cpus[i]}-${cpus[j]}` : String(cpus[i]));
    i = j + 1;
  }
  return out.join(',');
}

/** Host CPUs a cpuset names ("0-3,6" → [0,1,2,3,6]). */
export function cpusOf(set: string): number[] {
  return set.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}
