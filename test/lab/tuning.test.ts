// The four host tuning steps on a real Debian VM: plan changes nothing, apply, plan is empty, the end
// state is read back independently (OpenSSH + /proc, /sys), and again after a reboot (persistence).
import { join } from 'node:path';
import { writeFileSync, readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { kvmforge, LAB_ENV, LAB_INVENTORY, labExec, resetLab } from '../harness/lab.ts';
import { applyThenPlanIsEmpty } from '../harness/converge.ts';

const STEPS = 'virtio-modules,hugepages,ksm,boot-args';
let inv = '';

function state() {
  const out = labExec(
    [
      "cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' '; echo",
      "awk '/^HugePages_Total:/ {print $2}' /proc/meminfo",
      'cat /sys/kernel/mm/ksm/run /sys/kernel/mm/ksm/pages_to_scan',
      'cat /proc/cmdline',
      'findmnt -n -o FSTYPE /dev/hugepages || echo none',
    ].join('; '),
  ).split('\n');
  return {
    modules: out[0].split(' '),
    hugepages: Number(out[1]),
    ksmRun: Number(out[2]),
    ksmScan: Number(out[3]),
    cmdline: out[4],
    hugetlbfs: out[5],
  };
}

describe('host tuning steps on a lab VM', () => {
  beforeAll(async () => {
    await resetLab();
    inv = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, 'tuning.yaml');
    const lab = readFileSync(LAB_INVENTORY, 'utf8');
    expect(lab).toMatch(/hugepages_count: "10%"/);
    writeFileSync(inv, lab.replace(/hugepages_count: "10%".*/, 'hugepages_count: 64\n        ksm_pages_to_scan: 200'));
  }, 120_000);

  it('plan shows every change and changes nothing', async () => {
    const before = state();
    const r = await kvmforge(['plan', '-i', inv, '--steps', STEPS]);
    expect(r.code).toBe(0);
    for (const s of [
      'load modules vhost_net, virtio_balloon',
      'vm.nr_hugepages 0 → 64',
      'ksm run 0 → 1',
      'ksm pages_to_scan 100 → 200',
      'create /etc/default/grub.d/80-kvmforge.cfg',
      'reboot: /proc/cmdline lacks cgroup_disable=cpu,cpuset,memory',
    ]) {
      expect(r.stdout).toContain(s);
    }
    expect(r.stdout).toMatch(/warning: cgroup_disable=cpu,cpuset,memory on a cgroup v2 host/);
    expect(state()).toEqual(before);
    expect(before.hugepages).toBe(0);
  });

  it('apply converges (with the reboot boot-args asks for), and a second plan is empty', async () => {
    await applyThenPlanIsEmpty(inv, STEPS);
  }, 900_000);

  it('the end state holds after that reboot (read independently)', () => {
    const s = state();
    expect(s.cmdline).toContain('cgroup_disable=cpu,cpuset,memory');
    // everything below was applied before the reboot: it came back from the persisted config
    expect(s.modules).toEqual(expect.arrayContaining(['vhost_net', 'virtio_balloon', 'virtio_net']));
    expect(s.hugepages).toBe(64);
    expect(s.hugetlbfs).toBe('hugetlbfs');
    expect(s.ksmRun).toBe(1);
    expect(s.ksmScan).toBe(200);
  });

  it('turning things back off converges too', async () => {
    writeFileSync(
      inv,
      readFileSync(inv, 'utf8')
        .replace('hugepages_count: 64', 'hugepages_count: 0')
        .replace('ksm_pages_to_scan: 200', 'ksm_pages_to_scan: 200\n        ksm_run: 2'),
    );
    const r = await kvmforge(['apply', '-i', inv, '--steps', 'hugepages,ksm', '--verify']);
    expect(r.code).toBe(0);
    const s = state();
    expect(s.hugepages).toBe(0);
    expect([0, 2]).toContain(s.ksmRun); // 2: stopped and unmerged
  }, 300_000);
});
