// The domains step on a real Debian VM with the distro's libvirt: the thesis VM and a tuned VM defined,
// the tuned one started (nested KVM: under TCG with -cpu max the lab guest has SVM and a working
// /dev/kvm), the tuning read back with virsh and /proc, a second plan empty. Also sriov's clean refusal.
import { join } from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { kvmforge, LAB_ENV, LAB_INVENTORY, labRun, resetLab } from '../harness/lab.ts';
import { applyThenPlanIsEmpty } from '../harness/converge.ts';

const STEPS = 'virtio-modules,hugepages,domains';
const TUNED = 'tuned & <fast>'; // XML and shell metacharacters in a name: must arrive as data
let inv = '';
/** The lab inventory without its own VM (this file brings its VMs). */
const labText = () => readFileSync(LAB_INVENTORY, 'utf8').replace(/^\s*domains_vms: .*\n/m, '');

const VMS = `
        hugepages_count: 64
        domains_vms:
          - name: win2008-test3
            profile: thesis
            memory: 512
            nics: [{ bridge: kvfbr0 }]
            disks: [{ path: /var/lib/libvirt/images/win2008-test3.qcow2, size: 1G }]
          - name: "${TUNED}"
            profile: tuned
            tier: fifo99
            memory: 64
            vcpus: 2
            vcpupin: { "0": "0", "1": "1" }
            emulatorpin: "0-1"
            nics: [{ bridge: kvfbr0, vhost: true, queues: 2 }]
            disks: [{ path: /var/lib/libvirt/images/tuned.qcow2, size: 64M }]
            graphics: false
            autostart: true
            start: true`;

describe('domains step on a lab VM (distro libvirt)', () => {
  beforeAll(async () => {
    await resetLab();
    // a bridge for the VMs' NICs (the bridge step's own tests convert eth0; here any bridge will do)
    await labRun('sudo ip link add kvfbr0 type bridge && sudo ip link set kvfbr0 up');
    inv = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, 'domains.yaml');
    writeFileSync(inv, labText().replace(/^\s*hugepages_count: "10%".*$/m, VMS));
  }, 120_000);

  it('plan defines nothing', async () => {
    const r = await kvmforge(['plan', '-i', inv, '--steps', STEPS]);
    expect(r.code).toBe(0);
    for (const s of [
      'define VM win2008-test3',
      `define VM ${TUNED}`,
      `start VM ${TUNED}`,
      'create disk /var/lib/libvirt/images/tuned.qcow2 (qcow2, 64M)',
    ])
      expect(r.stdout).toContain(s);
    // hugepages are reserved by an earlier step of the same run: check mode says so instead of failing
    expect(r.stdout).toMatch(/pre-flight not met before virtio-modules, hugepages run/);
    expect((await labRun('sudo virsh -q list --all --name; sudo ls /var/lib/libvirt/images/')).trim()).toBe('');
  });

  it('apply defines both, starts the tuned VM, and a second plan is empty', async () => {
    await applyThenPlanIsEmpty(inv, STEPS);
  }, 600_000);

  it('libvirt holds the tuning, and the running VM’s vCPU threads are SCHED_FIFO 99', async () => {
    const list = await labRun('sudo virsh -q list --all');
    expect(list).toMatch(/\d+\s+tuned & <fast>\s+running/);
    expect(list).toMatch(/-\s+win2008-test3\s+shut off/);
    const xml = await labRun(`sudo virsh dumpxml --inactive 'tuned & <fast>'`);
    for (const s of [
      '<name>tuned &amp; &lt;fast&gt;</name>',
      '<hugepages/>',
      "<vcpupin vcpu='1' cpuset='1'/>",
      "<emulatorpin cpuset='0-1'/>",
      "<vcpusched vcpus='0' scheduler='fifo' priority='99'/>",
      '<iothreads>1</iothreads>',
      "iothread='1'",
      "<driver name='vhost' queues='2'/>",
      "cache='none'",
    ])
      expect(xml).toContain(s);
    const thesis = await labRun('sudo virsh dumpxml --inactive win2008-test3');
    for (const s of [
      '<emulator>/usr/bin/kvm</emulator>',
      "cache='writeback'",
      "keymap='en-us'",
      "<input type='tablet' bus='usb'",
    ])
      expect(thesis).toContain(s);
    expect(await labRun('sudo virsh dominfo "tuned & <fast>"')).toMatch(/Autostart:\s+enable/);
    const policies = await labRun(
      `pid=$(pgrep -f 'guest=tuned' | head -1); for t in /proc/$pid/task/*; do case $(cat $t/comm) in CPU*) chrt ` +
        `-p \${t##*/};; esac; done`,
    );
    expect(policies.match(/SCHED_FIFO/g)?.length).toBe(2);
    expect(policies).toMatch(/priority: 99/);
    // it really runs: the domain type is kvm, on the guest's own /dev/kvm (nested under TCG)
    expect(xml).toMatch(/<domain type='kvm'>/);
  });

  it('a changed VM is redefined with a diff, and the old definition is kept', async () => {
    writeFileSync(inv, readFileSync(inv, 'utf8').replace('            memory: 512\n', '            memory: 640\n'));
    const p = await kvmforge(['plan', '-i', inv, '--steps', 'domains', '--diff']);
    expect(p.stdout).toContain('redefine VM win2008-test3');
    expect(p.stdout).toMatch(/\/domain\/memory: '524288' → '655360'/);
    const r = await kvmforge(['apply', '-i', inv, '--steps', 'domains']);
    expect(r.code).toBe(0);
    expect(await labRun('sudo virsh dumpxml --inactive win2008-test3')).toContain("<memory unit='KiB'>655360</memory>");
    expect(await labRun('sudo cat /var/lib/kvmforge/domains/win2008-test3.xml.kvmforge.bak')).toContain(
      "<memory unit='KiB'>524288</memory>",
    );
  }, 300_000);

  it('sriov refuses cleanly on a NIC without SR-IOV, and changes nothing', async () => {
    const sriovInv = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, 'sriov.yaml');
    writeFileSync(sriovInv, labText().replace(/^\s*hugepages_count: "10%".*$/m, '\n        sriov_vfs: { eth0: 4 }'));
    const r = await kvmforge(['apply', '-i', sriovInv, '--steps', 'sriov']);
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(/eth0 has no SR-IOV capability \(no sriov_totalvfs/);
    expect((await labRun('ls /etc/udev/rules.d/ /etc/systemd/system/ | grep -c kvmforge-sriov || true')).trim()).toBe(
      '0',
    );
  }, 120_000);
});
