// Reboots with running VMs, on a lab VM that runs a small guest under libvirt (firmware only, software
// emulation inside the VM): refuse leaves it running and the host unchanged; shutdown never destroys a
// guest that doesn't stop. managedsave, which needs a real reboot, rides on tuning.test.ts's boot-args
// reboot (one reboot fewer in CI): saved before it, restored after it, the plan saying so ahead.
import { afterAll, describe, expect, it } from 'vitest';
import {
  kvmforge,
  labBootId as bootId,
  labRun,
  labVirsh as virsh,
  resetLab,
  labInventoryWith,
} from '../harness/lab.ts';

const GUEST = `<domain type='qemu'><name>tiny</name><memory unit='MiB'>48</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><features><acpi/></features>
<devices><serial type='pty'/></devices></domain>`;

const inventory = labInventoryWith;

async function withGuest() {
  await resetLab();
  await labRun(`echo ${Buffer.from(GUEST).toString('base64')} | base64 -d > /tmp/tiny.xml`);
  // the first virsh call after a reset waits for libvirtd and its QEMU driver: in a cold run beside the builds,
  // this one was still waiting when the default 120 s killed it
  await virsh('define /tmp/tiny.xml', 'lab1', 600_000);
  await virsh('start tiny');
  expect(await virsh('domstate tiny')).toBe('running');
}

afterAll(async () => {
  await resetLab();
}, 600_000);

describe('reboots with running VMs', () => {
  it('refuse (the default): the host fails before anything is changed, naming the VM; it keeps running', async () => {
    await withGuest();
    const inv = inventory('guests-refuse', ['boot_args_add: [kvmforge.guests=1]']);
    const plan = await kvmforge(['plan', '-i', inv, '--steps', 'boot-args']);
    expect(plan.stdout.replace(/\n {4}/g, ' ')).toMatch(/running VMs would be stopped by the reboot: tiny — refused/);
    const before = await bootId();
    const r = await kvmforge(['apply', '-i', inv, '--steps', 'boot-args']);
    expect(r.code).toBe(1);
    expect(r.stdout.replace(/\n {4}/g, ' ')).toMatch(
      /lab1: FAILED: step boot-args would reboot the host: running VMs would be stopped by the reboot: tiny .* nothing/,
    );
    expect(await bootId()).toBe(before);
    expect(await virsh('domstate tiny')).toBe('running');
    // nothing changed: the plan still has the same change to make
    expect((await kvmforge(['plan', '-i', inv, '--steps', 'boot-args'])).stdout).toMatch(
      /boot-args: .*kvmforge\.guests=1/,
    );
  }, 900_000);

  it('shutdown: a guest that does not stop is never destroyed; the host is not rebooted', async () => {
    await withGuest();
    const inv = inventory('guests-shutdown', [
      'boot_args_add: [kvmforge.guests=1]',
      'reboot_running_vms: shutdown',
      'reboot_vm_shutdown_timeout: 10',
    ]);
    const before = await bootId();
    const r = await kvmforge(['apply', '-i', inv, '--steps', 'boot-args']);
    expect(r.code).toBe(1);
    expect(r.stdout.replace(/\n {4}/g, ' ')).toMatch(/guests did not shut down within 10 s: tiny — not destroyed/);
    expect(await bootId()).toBe(before);
    expect(await virsh('domstate tiny')).toBe('running');
  }, 900_000);
});
