// domains: the inventory's VMs rendered (templates/domain.xml.ejs), validated by libvirt on this machine,
// pre-flighted on the host, disk images created, defined with virsh when the definition differs,
// autostart and start as asked.
import { HostError } from '../src/core/errors.ts';
import { sh } from '../src/core/sh.ts';
import { badVar } from '../src/core/vars.ts';
import { strictFact, type Change, type Host, type Step, type VarSpec } from '../src/core/types.ts';
import { cpu, memory, type Facts } from '../src/facts/host.ts';
import { renderDomain, validateDomains } from '../src/domains/render.ts';
import { cpusOf, resolveVms, vmSchema, type Vm } from '../src/domains/spec.ts';
import { differences, extras, matches, parseXml } from '../src/domains/xml.ts';
import { posix } from 'node:path';

export const BACKUP_DIR = '/var/lib/kvmforge/domains';

interface Planned {
  vm: Vm;
  xml: string;
}

/** What the host has for the VMs, from one probe. */
export interface HostView {
  virsh: boolean;
  hugepagesFreeKiB: Record<number, number>;
  vhostNet: boolean;
  bridges: string[];
  networks: string[];
  pci: Record<string, { iommuGroup: boolean }>;
  paths: Record<string, 'file' | 'creatable' | 'no-dir'>;
  domains: Record<string, { xml: string; state: string; autostart: boolean }>;
}

export function probeScript(vms: Vm[]): string {
  const paths = [...new Set(vms.flatMap((v) => [...v.disks.map((d) => d.path), ...(v.cdrom ? [v.cdrom.path] : [])]))];
  const pcis = [
    ...new Set(
      vms.flatMap((v) => [
        ...v.hostdevs.flatMap((h) => ('pci' in h ? [h.pci.text] : [])),
        ...v.nics.flatMap((n) => (n.vf ? [n.vf.text] : [])),
      ]),
    ),
  ];
  const lines = [
    'export LC_ALL=C',
    "if command -v virsh >/dev/null 2>&1; then echo '@@virsh yes'; else echo '@@virsh no'; fi",
    'for d in /sys/kernel/mm/hugepages/hugepages-*kB; do [ -d "$d" ] && echo "@@hugepages ${d##*hugepages-} $(cat ' +
      '"$d/free_hugepages")"; done',
    "[ -c /dev/vhost-net ] && echo '@@vhost yes'",
    'for b in /sys/class/net/*/bridge; do [ -d "$b" ] && { b=${b%/bridge}; echo "@@bridge ${b##*/}"; }; done',
    ...pcis.map(
      (p) =>
        sh`[ -e /sys/bus/pci/devices/${p} ] && { if [ -e /sys/bus/pci/devices/${p}/iommu_group ]; then echo ` +
        sh`${`@@pci ${p} iommu`}; else echo ${`@@pci ${p} no-iommu`}; fi; }`,
    ),
    ...paths.map(
      (p) =>
        sh`if [ -e ${p} ]; then echo ${`@@path file ${p}`}; elif [ -d ${posix.dirname(p)} ] && [ -w ` +
        sh`${posix.dirname(p)} ]; then echo ${`@@path creatable ${p}`}; else echo ${`@@path no-dir ${p}`}; fi`,
    ),
    'command -v virsh >/dev/null 2>&1 || exit 0',
    'virsh -q net-list --all --name 2>/dev/null | while read -r n; do [ -n "$n" ] && echo "@@network $n"; done',
    ...vms.map(
      (v) =>
        sh`if virsh -q dominfo --domain ${v.name} >/dev/null 2>&1; then echo ${`@@domain ${v.name}`}; echo ` +
        sh`"@@state $(virsh -q domstate --domain ${v.name})"; echo "@@autostart $(virsh -q dominfo --domain ` +
        sh`${v.name} | sed -n 's/^Autostart: *//p')"; echo '@@xml'; virsh -q dumpxml --inactive --domain ` +
        sh`${v.name}; echo '@@end'; fi`,
    ),
  ];
  return lines.join('\n');
}

/** What the host has for these VMs (one probe). */
export const hostView = (vms: Vm[]) =>
  strictFact(`domains:${vms.map((v) => v.name).join('\u0000')}`, probeScript(vms), parseProbe);

export function parseProbe(out: string): HostView {
  const view: HostView = {
    virsh: false,
    hugepagesFreeKiB: {},
    vhostNet: false,
    bridges: [],
    networks: [],
    pci: {},
    paths: {},
    domains: {},
  };
  let dom: string | undefined;
  let xml: string[] | undefined;
  for (const line of out.split('\n')) {
    if (xml) {
      if (line === '@@end') {
        view.domains[dom!].xml = xml.join('\n');
        xml = undefined;
      } else xml.push(line);
      continue;
    }
    const [tag, ...rest] = line.split(' ');
    const arg = rest.join(' ');
    if (tag === '@@virsh') view.virsh = arg === 'yes';
    else if (tag === '@@hugepages') view.hugepagesFreeKiB[parseInt(rest[0], 10)] = Number(rest[1]);
    else if (tag === '@@vhost') view.vhostNet = true;
    else if (tag === '@@bridge') view.bridges.push(arg);
    else if (tag === '@@network') view.networks.push(arg);
    else if (tag === '@@pci') view.pci[rest[0]] = { iommuGroup: rest[1] === 'iommu' };
    else if (tag === '@@path') view.paths[rest.slice(1).join(' ')] = rest[0] as 'file' | 'creatable' | 'no-dir';
    else if (tag === '@@domain') {
      dom = arg;
      view.domains[dom] = { xml: '', state: '', autostart: false };
    } else if (tag === '@@state') view.domains[dom!].state = arg;
    else if (tag === '@@autostart') view.domains[dom!].autostart = arg === 'enable';
    else if (tag === '@@xml') xml = [];
  }
  return view;
}

/** Host facts every VM needs; one message per VM and missing resource. */
export function preflight(vms: Vm[], view: HostView, facts: Pick<Facts, 'memory' | 'cpu'>): string[] {
  const problems: string[] = [];
  if (!view.virsh)
    problems.push('virsh is not installed (install libvirt: the distro packages or the libvirt build step)');
  const hugeWant: Record<number, number> = {};
  for (const vm of vms) {
    const p = (msg: string) => problems.push(`VM ${vm.name}: ${msg}`);
    if (vm.memoryKiB > facts.memory.totalKiB)
      p(`memory ${vm.memoryKiB / 1024} MiB is more than the host's ${Math.floor(facts.memory.totalKiB / 1024)} MiB`);
    if (vm.hugepages) {
      const size = vm.hugepages.sizeKiB ?? facts.memory.hugePageSizeKiB ?? 2048;
      hugeWant[size] = (hugeWant[size] ?? 0) + vm.memoryKiB;
    }
    for (const [vcpu, set] of vm.vcpupin)
      for (const c of cpusOf(set))
        if (c >= facts.cpu.count) p(`vcpupin ${vcpu} → CPU ${c}, but the host has CPUs 0-${facts.cpu.count - 1}`);
    for (const set of [vm.emulatorpin, ...vm.iothreadpin.map((x) => x[1])])
      for (const c of set ? cpusOf(set) : [])
        if (c >= facts.cpu.count) p(`pinned to CPU ${c}, but the host has CPUs 0-${facts.cpu.count - 1}`);
    for (const n of vm.nics) {
      if (n.bridge && !view.bridges.includes(n.bridge))
        p(`bridge ${n.bridge} does not exist (the bridge step makes br0)`);
      if (n.network && view.virsh && !view.networks.includes(n.network))
        p(`libvirt network ${n.network} does not exist`);
      if (n.bridge && n.vhost === true && n.model === 'virtio' && !view.vhostNet)
        p('vhost is on but /dev/vhost-net is missing (load vhost_net, or set vhost: false)');
    }
    for (const pci of [
      ...vm.hostdevs.flatMap((h) => ('pci' in h ? [h.pci] : [])),
      ...vm.nics.flatMap((n) => (n.vf ? [n.vf] : [])),
    ]) {
      const f = view.pci[pci.text];
      if (!f) p(`PCI device ${pci.text} does not exist on the host`);
      else if (!f.iommuGroup) p(`PCI device ${pci.text} is in no IOMMU group (enable VT-d/AMD-Vi: intel_iommu=on)`);
    }
    for (const d of vm.disks) {
      const s = view.paths[d.path];
      if (s === 'no-dir') p(`disk ${d.path}: its directory is missing or not writable`);
      else if (s === 'creatable' && !d.size) p(`disk ${d.path} does not exist and has no size to create it with`);
    }
    if (vm.cdrom && view.paths[vm.cdrom.path] !== 'file') p(`CD-ROM image ${vm.cdrom.path} does not exist`);
  }
  for (const [size, kib] of Object.entries(hugeWant)) {
    const free = (view.hugepagesFreeKiB[Number(size)] ?? 0) * Number(size);
    // a defined VM that runs already holds its pages
    const running = vms
      .filter(
        (v) =>
          v.hugepages && view.domains[v.name]?.state === 'running' && (v.hugepages.sizeKiB ?? 2048) === Number(size),
      )
      .reduce((a, v) => a + v.memoryKiB, 0);
    if (kib - running > free)
      problems.push(
        `hugepages: the VMs need ${(kib - running) / 1024} MiB of ${Number(size) / 1024} MiB pages, ${free / 1024} ` +
          `MiB are free (raise hugepages_count)`,
      );
  }
  return problems;
}

const vars: Record<string, VarSpec> = {
  domains_vms: { schema: { type: 'array', items: vmSchema }, default: [], description: 'The VMs of this host.' },
  domains_profiles: {
    schema: { type: 'object', additionalProperties: { ...vmSchema, required: [] } },
    default: {},
    description: 'Your own presets; a VM names one with profile:.',
  },
};

const step: Step<Planned[]> = {
  name: 'domains',
  description: 'Define the inventory’s VMs with libvirt (rendered, validated, pre-flighted, idempotent)',
  doc:
    "the inventory's VMs, rendered from `templates/domain.xml.ejs`, validated by libvirt on this machine, " +
    'pre-flighted on the host, disks created with qemu-img, `virsh define` when the definition differs, ' +
    'autostart/start. See *VMs* below',
  vars,
  wanted: (host) => (host.vars.domains_vms ? true : 'no VMs (domains_vms)'),
  params(host: Host) {
    const vms = resolveVms(host);
    const planned = vms.map((vm) => ({ vm, xml: renderDomain(vm) }));
    try {
      validateDomains(planned.map((p) => ({ label: `${host.name}/${p.vm.name}.xml`, xml: p.xml })));
    } catch (e) {
      const i = planned.findIndex((p) => (e as Error).message.startsWith(`${host.name}/${p.vm.name}.xml`));
      throw badVar(host, `domains_vms.${Math.max(0, i)}`, (e as Error).message);
    }
    return planned;
  },
  async plan(ctx, planned) {
    if (!planned.length) return [];
    const vms = planned.map((p) => p.vm);
    const [view, mem, c] = await ctx.read(hostView(vms), memory, cpu);
    const problems = preflight(vms, view, { memory: mem, cpu: c });
    const changes: Change[] = [];
    if (problems.length && !ctx.pendingSteps?.length)
      throw new HostError(`pre-flight failed, nothing defined:\n  ${problems.join('\n  ')}`);
    // check mode, with earlier steps still to change the host (hugepages, a bridge…): apply re-checks after them
    if (problems.length)
      changes.push({
        kind: 'note',
        summary: 'pre-flight not met yet',
        warning:
          `pre-flight not met before ${ctx.pendingSteps!.join(', ')} run; apply checks again after them:\n  ` +
          `${problems.join('\n  ')}`,
      });
    for (const { vm, xml } of planned) {
      for (const d of vm.disks) {
        if (view.paths[d.path] === 'creatable')
          changes.push({
            kind: 'script',
            summary: `create disk ${d.path} (${d.format}, ${d.size})`,
            script: sh`qemu-img create -q -f ${d.format} ${d.path} ${d.size!}`,
          });
      }
      const cur = view.domains[vm.name];
      const want = parseXml(xml);
      const have = cur ? parseXml(cur.xml) : undefined;
      if (!have || !matches(want, have)) {
        const diff = have ? [...differences(want, have), ...extras(want, have)].join('\n') : xml;
        // a redefinition keeps the domain's uuid, or libvirt refuses the name as taken
        const uuid = have?.children.find((c) => c.tag === 'uuid')?.text;
        const b64 = Buffer.from(
          uuid && /^[0-9a-f-]{36}$/.test(uuid) ? xml.replace(/(<\/name>\n)/, `$1  <uuid>${uuid}</uuid>\n`) : xml,
        ).toString('base64');
        // the definition being replaced is kept, like every file kvmforge replaces
        const backup = cur
          ? sh`mkdir -p ${BACKUP_DIR} && virsh -q dumpxml --inactive --domain ${vm.name} > ` +
            sh`${`${BACKUP_DIR}/${vm.name.replace(/[^A-Za-z0-9._-]/g, '_')}.xml.kvmforge.bak`}`
          : '';
        changes.push({
          kind: 'script',
          summary: cur ? `redefine VM ${vm.name}` : `define VM ${vm.name}`,
          diff,
          script: [
            backup,
            'f=$(mktemp)',
            `printf '%s' '${b64}' | base64 -d > "$f"`,
            'virsh -q define --validate "$f" >/dev/null; rc=$?; rm -f "$f"; exit $rc',
          ]
            .filter(Boolean)
            .join('\n'),
        });
      }
      if (vm.autostart !== undefined && (cur?.autostart ?? false) !== vm.autostart) {
        changes.push({
          kind: 'script',
          summary: `autostart ${vm.name} ${vm.autostart ? 'on' : 'off'}`,
          script: vm.autostart
            ? sh`virsh -q autostart --domain ${vm.name}`
            : sh`virsh -q autostart --disable --domain ${vm.name}`,
        });
      }
      if (vm.start && cur?.state !== 'running')
        changes.push({
          kind: 'script',
          summary: `start VM ${vm.name}`,
          script: sh`virsh -q start --domain ${vm.name}`,
        });
    }
    return changes;
  },
};

export default step;
