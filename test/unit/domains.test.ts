// Domain XML: profiles, tiers and every option rendered, validated by libvirt's schema and parser on this
// machine, compared with what libvirt's test driver keeps; the step's plan from fixtures.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { parseInv } from '../harness/fake-host.ts';
import { resolveParams } from '../../src/runner/run.ts';
import { renderDomain, validateDomains } from '../../src/domains/render.ts';
import { BUILTIN_PROFILES, TIERS } from '../../src/domains/profiles.ts';
import { resolveVms, type Vm } from '../../src/domains/spec.ts';
import { covers, differences, extras, matches, parseXml } from '../../src/domains/xml.ts';
import domains, { parseProbe, preflight, probeScript } from '../../steps/domains.ts';
import sriov, { MODPROBE_CONF, modprobeConf, UDEV_RULES, udevRules } from '../../steps/sriov.ts';
import { debianFacts, fakeCtx, loose } from '../harness/fake-host.ts';

/** An inventory of one host whose domains_vms is the given YAML block (indented under the key). */
const inv = (vms: string, extra = '') =>
  parseInv(`all:\n  hosts:\n    h1:\n${extra}      domains_vms:\n${vms}`, 'inv.yaml');
const vmsOf = (vms: string, extra = '') => resolveVms(inv(vms, extra).hosts[0]);
const one = (yaml: string) => vmsOf(yaml)[0];

const KITCHEN_SINK = `        - name: sink
          memory: 4096
          current_memory: 2048
          vcpus: 4
          machine: q35
          boot: [cdrom, hd]
          disks:
            - { path: /var/lib/libvirt/images/sink.qcow2, size: 20G, cache: none,
                io: native, discard: unmap, iothread: 2 }
            - { path: /dev/vg0/data, format: raw, bus: scsi, cache: directsync }
            - { path: /srv/ro.img, format: raw, bus: sata, readonly: true }
          cdrom: /srv/iso/virtio-win.iso
          nics:
            - { bridge: br0, vhost: false, queues: 4, mac: "52:54:00:AA:BB:CC" }
            - { network: sriov-pool }
            - { vf: "0000:03:10.1" }
          graphics: { type: spice, listen: 0.0.0.0, port: 5901 }
          inputs: true
          hugepages: { size: 1G, nodeset: "0", immediate: true }
          memballoon: none
          vcpupin: { "0": "2", "1": "3", "2": "4-5", "3": "6,7" }
          emulatorpin: "0-1"
          iothreads: 2
          iothreadpin: { "1": "0", "2": "1" }
          shares: 2048
          period: 100000
          quota: 50000
          numatune: { mode: strict, nodeset: "0" }
          nosharepages: true
          tier: fifo99
          hostdevs:
            - pci: "03:00.0"
            - usb: { vendor: "0x046d", product: c077 }
          autostart: true
`;

/** Defines the XML in libvirt's test driver and returns what `dumpxml --inactive` gives back. */
function testDriverRoundTrip(xml: string, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kvmforge-dom-'));
  const f = join(dir, 'd.xml');
  writeFileSync(f, xml);
  return execFileSync('virsh', ['-q', '-c', 'test:///default', `define --validate ${f}; dumpxml --inactive ${name}`], {
    encoding: 'utf8',
  }).replace(/^Domain .* defined from .*\n/m, '');
}

describe('domain profiles', () => {
  it('the thesis profile renders the thesis VM verbatim (§5, win2008-test3.xml)', () => {
    const vm = one(`        - { name: win2008-test3, profile: thesis }\n`);
    const thesis = parseXml(readFileSync('test/fixtures/domains/thesis-win2008-test3.xml', 'utf8'));
    const ours = parseXml(renderDomain(vm));
    expect(covers(thesis, ours)).toBe(true);
    expect(covers(ours, thesis)).toBe(true);
  });

  it('a tier is all a user writes: the four tiers become vcpusched on every vCPU', () => {
    const want = {
      ordinary: undefined,
      rr90: "scheduler='rr' priority='90'",
      rr99: "scheduler='rr' priority='99'",
      fifo99: "scheduler='fifo' priority='99'",
    };
    for (const [tier, attrs] of Object.entries(want)) {
      const xml = renderDomain(one(`        - { name: t, profile: thesis, tier: ${tier} }\n`));
      if (attrs) for (const v of [0, 1]) expect(xml).toContain(`<vcpusched vcpus='${v}' ${attrs}/>`);
      else expect(xml).not.toContain('vcpusched');
    }
    expect(Object.keys(TIERS)).toEqual(['ordinary', 'rr90', 'rr99', 'fifo99']);
  });

  it('every profile × tier, and every option at once, passes virt-xml-validate and virsh define --validate', () => {
    const vms: Vm[] = [];
    for (const profile of Object.keys(BUILTIN_PROFILES)) {
      for (const tier of Object.keys(TIERS))
        vms.push(
          one(
            `        - { name: ${profile}-${tier}, profile: ${profile}, tier: ${tier}, disks: [{ path: ` +
              `/var/lib/libvirt/images/${profile}.qcow2 }] }\n`,
          ),
        );
    }
    vms.push(one(KITCHEN_SINK));
    vms.push(one(`        - { name: bare }\n`));
    vms.push(
      one(
        `        - { name: small, vcpus: 1, tier: rr99, hugepages: { size: 2M }, graphics: false, nics: [{ bridge: ` +
          `br1, model: e1000 }] }\n`,
      ),
    );
    expect(() => validateDomains(vms.map((vm) => ({ label: vm.name, xml: renderDomain(vm) })))).not.toThrow();
    const sink = renderDomain(vms.find((v) => v.name === 'sink')!);
    for (const s of [
      "<vcpupin vcpu='3' cpuset='6-7'/>",
      "<emulatorpin cpuset='0-1'/>",
      "<iothreadpin iothread='2' cpuset='1'/>",
      '<nosharepages/>',
      "<allocation mode='immediate'/>",
      "<page size='1048576' unit='KiB'/>",
      "<memory mode='strict' nodeset='0'/>",
      "<address domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>",
      "<vendor id='0x046d'/>",
      "<product id='0xc077'/>",
      "<interface type='hostdev' managed='yes'>",
      "<source network='sriov-pool'/>",
      "<driver name='qemu' queues='4'/>",
      "<target dev='sdc' bus='sata'/>",
      "<memballoon model='none'/>",
      '<shares>2048</shares>',
    ]) {
      expect(sink).toContain(s);
    }
  });

  it('a render that libvirt rejects is refused with libvirt’s own words', () => {
    const vm = one(`        - { name: bad }\n`);
    vm.machine = 'pc"><evil/>'; // cannot come from the inventory; proves the check runs
    expect(() =>
      validateDomains([
        { label: 'h1/bad.xml', xml: renderDomain(vm).replace('<vcpu>1</vcpu>', '<vcpu>1</vcpu><bogus/>') },
      ]),
    ).toThrow(/h1\/bad.xml: libvirt rejects the rendered XML/);
  });

  it('names and paths with & < > quotes are escaped by ejs, and arrive as data', () => {
    const vm = one(`        - name: "a&b<c>'d\\"e"\n          disks: [{ path: "/srv/x&y <z>'.qcow2" }]\n`);
    const xml = renderDomain(vm);
    expect(xml).toContain('<name>a&amp;b&lt;c&gt;&#39;d&#34;e</name>');
    expect(parseXml(xml).children.find((c) => c.tag === 'name')!.text).toBe(`a&b<c>'d"e`);
    expect(() => validateDomains([{ label: 'esc', xml }])).not.toThrow();
  });
});

describe('comparing a render with what libvirt keeps', () => {
  it('libvirt’s test driver adds uuid, addresses, controllers…: the render still matches', () => {
    for (const yaml of [
      `        - { name: win2008-test3, profile: thesis }\n`,
      KITCHEN_SINK,
      `        - { name: tuned, profile: tuned, tier: rr90, disks: [{ path: /var/lib/libvirt/images/t.qcow2 }] }\n`,
    ]) {
      const vm = one(yaml);
      const xml = renderDomain(vm);
      const dumped = testDriverRoundTrip(xml, vm.name);
      expect(dumped).toContain('<uuid>');
      expect(extras(parseXml(xml), parseXml(dumped))).toEqual([]);
      expect(differences(parseXml(xml), parseXml(dumped))).toEqual([]);
      expect(matches(parseXml(xml), parseXml(dumped))).toBe(true);
    }
  });

  it('a changed value, a removed tuning and an extra disk are all differences', () => {
    const base = one(`        - { name: v, profile: tuned, disks: [{ path: /var/lib/libvirt/images/v.qcow2 }] }\n`);
    const dumped = parseXml(testDriverRoundTrip(renderDomain(base), 'v'));
    const moreMemory = parseXml(
      renderDomain({ ...base, memoryKiB: base.memoryKiB * 2, currentMemoryKiB: base.currentMemoryKiB * 2 }),
    );
    expect(matches(moreMemory, dumped)).toBe(false);
    expect(differences(moreMemory, dumped).join('\n')).toMatch(/\/domain\/memory: '2097152' → '4194304'/);
    const noHugepages = parseXml(renderDomain({ ...base, hugepages: undefined }));
    expect(matches(noHugepages, dumped)).toBe(false);
    expect(extras(noHugepages, dumped).join('\n')).toMatch(/remove <memoryBacking>/);
    const oneDiskLess = parseXml(renderDomain({ ...base, disks: [] }));
    expect(extras(oneDiskLess, dumped).join('\n')).toMatch(/remove <disk/);
  });
});

describe('domains_vms: bad input is exit 2 with file:line, before any host', () => {
  const problem = (vms: string, extra = '') => {
    try {
      resolveParams(inv(vms, extra).hosts, [domains]);
    } catch (e) {
      if (e instanceof ConfigError) return e.problems[0];
      throw e;
    }
    throw new Error('expected a ConfigError');
  };
  it.each([
    [
      'memory not a number',
      `        - name: a\n          memory: lots\n`,
      6,
      /domains_vms\.0\.memory|expected integer/,
    ],
    [
      'a PCI address of the wrong form',
      `        - name: a\n          hostdevs: [{ pci: "3:0.0" }]\n`,
      6,
      /pattern|PCI|expected/,
    ],
    [
      'an unknown profile',
      `        - name: a\n          profile: gaming\n`,
      6,
      /unknown profile 'gaming': expected one of thesis, tuned/,
    ],
    ['a duplicate name', `        - name: a\n        - name: a\n`, 6, /duplicate VM name on host h1/],
    [
      'a vcpupin of a vCPU the VM lacks',
      `        - name: a\n          vcpus: 2\n          vcpupin: { "2": "0" }\n`,
      7,
      /vCPU 2 does not exist \(the VM has 2\)/,
    ],
    ['an unknown key', `        - name: a\n          memroy: 1024\n`, 6, /memroy/],
    ['an unknown tier', `        - name: a\n          tier: fifo98\n`, 6, /ordinary/],
  ])('%s', (_what, vms, line, message) => {
    const p = problem(vms);
    expect(p.file).toBe('inv.yaml');
    expect(p.line).toBe(line);
    expect(`${p.key} ${p.message}`).toMatch(message);
  });
});

const probeOut = (extra = '') => `@@virsh yes\n@@hugepages 2048kB 512\n@@vhost yes\n@@bridge br0\n${extra}`;

describe('pre-flight and plan (fixtures)', () => {
  const facts = debianFacts();
  it('names the VM and the missing resource', () => {
    const vms = vmsOf(KITCHEN_SINK);
    const problems = preflight(
      vms,
      parseProbe(probeOut('@@path file /srv/iso/virtio-win.iso\n@@path no-dir /var/lib/libvirt/images/sink.qcow2\n')),
      facts,
    );
    const text = problems.join('\n');
    expect(text).toMatch(/VM sink: vcpupin 2 → CPU 4, but the host has CPUs 0-1/);
    expect(text).toMatch(/VM sink: PCI device 0000:03:00.0 does not exist/);
    expect(text).toMatch(/VM sink: PCI device 0000:03:10.1 does not exist/);
    expect(text).toMatch(/VM sink: libvirt network sriov-pool does not exist/);
    expect(text).toMatch(/VM sink: disk \/var\/lib\/libvirt\/images\/sink.qcow2: its directory is missing/);
    expect(text).toMatch(/hugepages: the VMs need 4096 MiB of 1024 MiB pages, 0 MiB are free/);
    expect(text).toMatch(/memory 4096 MiB is more than the host's/);
  });

  it('no bridge, no vhost-net, no IOMMU group', () => {
    const vms = vmsOf(
      `        - { name: a, nics: [{ bridge: br9, vhost: true }], hostdevs: [{ pci: "0000:00:1f.0" }] }\n`,
    );
    const text = preflight(vms, parseProbe('@@virsh yes\n@@pci 0000:00:1f.0 no-iommu\n'), facts).join('\n');
    expect(text).toMatch(/bridge br9 does not exist/);
    expect(text).toMatch(/\/dev\/vhost-net is missing/);
    expect(text).toMatch(/0000:00:1f.0 is in no IOMMU group/);
  });

  it('plans disk creation and a define; nothing once libvirt has it; a redefine with a diff if changed', async () => {
    const yaml =
      `        - { name: web, memory: 512, disks: [{ path: /var/lib/libvirt/images/web.qcow2, size: 2G ` +
      `}], autostart: true }\n`;
    const h = inv(yaml).hosts[0];
    const [planned] = domains.params(h)!;
    const script = probeScript([planned.vm]);
    const fresh = fakeCtx(
      facts,
      { outputs: { 'domains:*': probeOut('@@path creatable /var/lib/libvirt/images/web.qcow2\n') } },
      h,
    );
    const first = loose(await domains.plan(fresh, [planned]));
    expect(first.map((c) => c.summary)).toEqual([
      'create disk /var/lib/libvirt/images/web.qcow2 (qcow2, 2G)',
      'define VM web',
      'autostart web on',
    ]);
    expect(first[0].script).toBe('qemu-img create -q -f qcow2 /var/lib/libvirt/images/web.qcow2 2G');
    expect(script).toContain('virsh -q dumpxml --inactive --domain web');
    const dumped = testDriverRoundTrip(planned.xml, 'web');
    const defined = probeOut(
      `@@path file /var/lib/libvirt/images/web.qcow2\n@@domain web\n@@state shut off\n@@autostart ` +
        `enable\n@@xml\n${dumped}\n@@end\n`,
    );
    expect(await domains.plan(fakeCtx(facts, { outputs: { 'domains:*': defined } }, h), [planned])).toEqual([]);
    const bigger = domains.params(inv(yaml.replace('memory: 512', 'memory: 1024')).hosts[0])!;
    const changes = loose(await domains.plan(fakeCtx(facts, { outputs: { 'domains:*': defined } }, h), bigger));
    expect(changes.map((c) => c.summary)).toEqual(['redefine VM web']);
    expect(changes[0].diff).toMatch(/\/domain\/memory: '524288' → '1048576'/);
    expect(changes[0].script).toMatch(
      /virsh -q dumpxml --inactive --domain web > \/var\/lib\/kvmforge\/domains\/web.xml.kvmforge.bak/,
    );
    const uuid = /<uuid>(.*)<\/uuid>/.exec(dumped)![1];
    const sent = Buffer.from(/printf '%s' '([^']+)'/.exec(changes[0].script!)![1], 'base64').toString();
    expect(sent).toContain(`<name>web</name>\n  <uuid>${uuid}</uuid>`); // or libvirt refuses the name as taken
  });

  it('a failed pre-flight fails the host and defines nothing', async () => {
    const h = inv(`        - { name: web, nics: [{ bridge: br7 }] }\n`).hosts[0];
    await expect(
      domains.plan(fakeCtx(facts, { outputs: { 'domains:*': probeOut() } }, h), domains.params(h)!),
    ).rejects.toThrow(/pre-flight failed, nothing defined:\n {2}VM web: bridge br7 does not exist/);
  });
});

describe('sriov (fixtures: no SR-IOV hardware here)', () => {
  const facts = debianFacts();
  const sriovHost = (vars: string) => parseInv(`all:\n  hosts:\n    h1:\n${vars}`, 'inv.yaml').hosts[0];
  it('plans VFs through 0, a udev rule for boot, and max_vfs for old drivers; nothing when done', async () => {
    const h = sriovHost('      sriov_vfs: { eth1: 7, eth2: 4 }\n      sriov_max_vfs: { igb: 7 }\n');
    const p = sriov.params(h)!;
    const changes = loose(await sriov.plan(fakeCtx(facts, { outputs: { 'sriov:*': 'eth1 0 7\neth2 4 8\n' } }, h), p));
    expect(changes.map((c) => c.summary)).toEqual([
      'eth1: VFs 0 → 7',
      `create ${UDEV_RULES}`,
      `create ${MODPROBE_CONF}`,
    ]);
    expect(changes[0].script).toBe('f=/sys/class/net/eth1/device/sriov_numvfs; echo 0 > "$f"; echo 7 > "$f"');
    expect(changes[1].file!.content).toContain(
      'ACTION=="add", SUBSYSTEM=="net", KERNEL=="eth1", ATTR{device/sriov_numvfs}="7"',
    );
    expect(changes[2].file!.content).toContain('options igb max_vfs=7');
    expect(changes[2].warning).toMatch(/takes effect when the driver is next loaded/);
    const done = await sriov.plan(
      fakeCtx(
        facts,
        {
          outputs: { 'sriov:*': 'eth1 7 7\neth2 4 8\n' },
          files: { [UDEV_RULES]: udevRules(p.vfs), [MODPROBE_CONF]: modprobeConf(p.maxVfs) },
        },
        h,
      ),
      p,
    );
    expect(done).toEqual([]);
  });
  it('refuses a NIC without SR-IOV, a missing NIC, and more VFs than the NIC has', async () => {
    const h = sriovHost('      sriov_vfs: { eth0: 2, eth5: 1, eth1: 9 }\n');
    await expect(
      sriov.plan(
        fakeCtx(facts, { outputs: { 'sriov:*': 'eth0 no-sriov\neth5 missing\neth1 0 7\n' } }, h),
        sriov.params(h)!,
      ),
    ).rejects.toThrow(/eth0 has no SR-IOV capability.*; eth5 does not exist; eth1 supports at most 7 VFs, 9 asked/);
  });
  it('a count that is not a number is exit 2 with file:line', () => {
    try {
      sriovHost('      sriov_vfs: { eth1: many }\n');
      throw new Error('expected a ConfigError');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).problems[0]).toMatchObject({ file: 'inv.yaml', line: 4 });
    }
  });
});
