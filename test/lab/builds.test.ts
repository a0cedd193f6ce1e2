// Source builds for real: kernel, QEMU and libvirt built once on this machine (build host `localhost`,
// local transport; started in the background by the lab setup and awaited here), then installed on two
// lab VMs from the artifacts. A broken trial kernel falls back by itself; a good one becomes the default.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILD_DIR, BUILD_ENV, BUILD_LOG, BUILD_OUT, BUILD_RC, BUILDS, buildInventory, versionVars } from '../harness/builds.ts';
import { kvmforge, LAB_INVENTORY, labExec, labState } from '../harness/lab.ts';

const STEPS = 'kernel,qemu,libvirt';
const OLD = 'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-6.1.0-50-amd64-advanced-LABEL=kvmforge-root';
const run = (args: string[], timeoutMs = 1_800_000) => kvmforge([...args, '--journal', join(BUILDS, 'journal')], BUILD_ENV, timeoutMs);

/** Lab VMs as inventory hosts: connection vars from the lab's own inventory. */
function labHosts(vars: Record<string, string[]>): string[] {
  const lab = readFileSync(LAB_INVENTORY, 'utf8');
  const key = /ansible_ssh_private_key_file: (\S+)/.exec(lab)![1];
  const known = join(LAB_INVENTORY, '..', 'lab-known_hosts');
  return labState().vms.flatMap((v) => [
    `    ${v.name}:`,
    '      ansible_host: 127.0.0.1',
    `      ansible_port: ${v.port}`,
    '      ansible_user: kvmforge',
    '      ansible_become: true',
    `      ansible_ssh_private_key_file: ${key}`,
    `      kvmforge_known_hosts_file: ${known}`,
    ...(vars[v.name] ?? []).map((l) => `      ${l}`),
  ]);
}

async function waitForBuild(): Promise<number> {
  const until = Date.now() + 75 * 60_000;
  while (!existsSync(BUILD_RC) && Date.now() < until) await new Promise((r) => setTimeout(r, 5000));
  if (!existsSync(BUILD_RC)) throw new Error(`the background build did not finish in time; log: ${BUILD_LOG}`);
  return Number(readFileSync(BUILD_RC, 'utf8'));
}

/** A --json report, or an error that shows what the run printed on stderr. */
function report(r: { code: number | null; stdout: string; stderr: string }) {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON report (exit ${r.code}); stderr:\n${r.stderr.slice(-3000)}`);
  }
}

const artifacts = () => JSON.parse(readFileSync(BUILD_OUT, 'utf8'));
const buildLogs = (journalDir: string) => readdirSync(journalDir).filter((f) => /\.build-/.test(f));

describe.skipIf(process.env.KVMFORGE_SKIP_BUILDS)('source builds: kernel, QEMU, libvirt', () => {
  let release = '';
  let firstInv = '';
  let secondInv = '';

  beforeAll(async () => {
    const rc = await waitForBuild();
    if (rc !== 0) throw new Error(`kvmforge build exited ${rc}:\n${readFileSync(BUILD_LOG, 'utf8').slice(-3000)}\n${existsSync(BUILD_OUT) ? readFileSync(BUILD_OUT, 'utf8').slice(-3000) : ''}`);
    const up = await kvmforge(['lab', 'up', '--hosts', '2', '--memory', '2048'], {}, 1_200_000);
    if (up.code !== 0) throw new Error(`lab up --hosts 2 failed: ${up.stderr}`);
    // lab1 gets the kernel with a trial command line that cannot boot; lab2 gets QEMU and libvirt
    firstInv = buildInventory('first.yaml', labHosts({ lab1: [...versionVars(['kernel']), 'kernel_trial_args: root=/dev/kvmforge-missing rootdelay=1'], lab2: versionVars(['qemu', 'libvirt']) }));
    secondInv = buildInventory('second.yaml', labHosts({ lab1: versionVars(['kernel']), lab2: versionVars(['qemu', 'libvirt']) }));
  }, 80 * 60_000);

  // this file is sorted last, but should it ever run earlier, leave the lab as the others expect it:
  // one pristine VM (from the golden state, in seconds)
  afterAll(async () => {
    await kvmforge(['lab', 'down']);
    const up = await kvmforge(['lab', 'up', '--hosts', '1', '--memory', '2048'], {}, 1_200_000);
    if (up.code !== 0) throw new Error(`lab up --hosts 1 failed: ${up.stderr}`);
  }, 1_200_000);

  it('built all three once on the build host, from verified sources (libvirt also by its signature)', async () => {
    const report = artifacts();
    const steps = report.hosts[0].steps.filter((s: { status: string }) => s.status !== 'skipped');
    expect(steps.map((s: { step: string; status: string }) => s.step)).toEqual(['kernel', 'qemu', 'libvirt']);
    for (const s of steps) expect(s.changes[0].summary).toMatch(/artifact [0-9a-f]{12} (ready \(built on localhost in \d+ s\)|already in the local cache)/);
    const list = await run(['artifacts', '--json']);
    const metas = JSON.parse(list.stdout) as { component: string; files: { name: string }[]; builtOn: string; dropped: string[]; buildSeconds: number }[];
    const by = (c: string) => metas.find((m) => m.component === c)!;
    expect(by('kernel').files.map((f) => f.name)).toContainEqual(expect.stringMatching(/^linux-image-\d+\.\d+\.\d+-kvmforge-[0-9a-f]{8}_.*\.deb$/));
    expect(by('qemu').files.map((f) => f.name)).toEqual([expect.stringMatching(/^kvmforge-qemu_.*_amd64\.deb$/)]);
    expect(by('libvirt').files.map((f) => f.name)).toEqual([expect.stringMatching(/^kvmforge-libvirt_.*_amd64\.deb$/)]);
    expect(by('kernel').dropped).toEqual([]);
    expect(metas.every((m) => m.builtOn === 'localhost')).toBe(true);
    release = /^linux-image-(\S+?)_/.exec(by('kernel').files.find((f) => f.name.startsWith('linux-image-'))!.name)![1];
    // the build host keeps the artifacts; its build directories are gone after success
    expect(readdirSync(join(BUILD_DIR, 'artifacts')).filter((d) => !d.endsWith('.part'))).toHaveLength(3);
    process.stderr.write(`[builds] build seconds: ${metas.map((m) => `${m.component} ${m.buildSeconds}`).join(', ')}\n`);
  });

  it('building again finds everything cached', async () => {
    const r = await run(['build', '-i', firstInv, '--limit', 'localhost', '--json']);
    expect(r.code).toBe(0);
    const steps = report(r).hosts[0].steps.filter((s: { status: string }) => s.status !== 'skipped');
    expect(steps.map((s: { status: string }) => s.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it('plan on fresh VMs lists the installs and the trial, and changes nothing', async () => {
    const r = await run(['plan', '-i', firstInv, '--limit', 'lab1,lab2', '--steps', STEPS]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`lab1 kernel: install kernel ${release}; 6.1.0-50-amd64 stays the default`);
    expect(r.stdout).toContain(`lab1 kernel: trial boot of ${release} (panic=5 root=/dev/kvmforge-missing rootdelay=1); default only if healthy`);
    expect(r.stdout).toMatch(/lab2 qemu: install QEMU 7\.2\.\d+/);
    expect(r.stdout).toMatch(/lab2 libvirt: install libvirt 9\.0\.0/);
    expect(labExec('dpkg -l "linux-image-*kvmforge*" 2>/dev/null | grep -c ^ii || true', 'lab1').trim()).toBe('0');
    expect(labExec('ls /usr/local/bin', 'lab2').trim()).toBe('');
  });

  it('a trial kernel that cannot boot falls back by itself; the old kernel stays the default; lab2 gets QEMU and libvirt from the artifacts', async () => {
    const r = await run(['apply', '-i', firstInv, '--limit', 'lab1,lab2', '--steps', STEPS, '--json']);
    const rep = report(r);
    const lab1 = rep.hosts.find((h: { host: string }) => h.host === 'lab1');
    const lab2 = rep.hosts.find((h: { host: string }) => h.host === 'lab2');
    expect(r.code).toBe(1);
    expect(lab1.status).toBe('failed');
    expect(lab1.error).toMatch(new RegExp(`came back on 6\\.1\\.0-50-amd64, not ${release.replace(/\./g, '\\.')}: the trial boot failed`));
    expect(lab2.status).toBe('changed');
    // installs only: nothing was built in this run
    expect(buildLogs(rep.journal)).toEqual([]);
    // independent checks over OpenSSH
    expect(labExec('uname -r', 'lab1').trim()).toBe('6.1.0-50-amd64');
    expect(labExec('sudo grub-editenv list', 'lab1')).toContain(`saved_entry=${OLD}`);
    expect(labExec(`dpkg-query -W -f '\${Status}' linux-image-${release}`, 'lab1')).toBe('install ok installed');
    expect(labExec('kvm --version', 'lab2')).toMatch(/QEMU emulator version 7\.2\.\d+/);
    expect(labExec('readlink /usr/local/bin/kvm', 'lab2').trim()).toBe('qemu-system-x86_64');
    expect(labExec('systemctl is-enabled libvirtd', 'lab2').trim()).toBe('enabled');
    const v = labExec('sudo virsh -c qemu:///system version', 'lab2');
    expect(v).toMatch(/Using library: libvirt 9\.0\.0/);
    expect(v).toMatch(/Running hypervisor: QEMU 7\.2\.\d+/);
    expect(labExec('systemctl is-active libvirtd', 'lab2').trim()).toBe('active');
    expect(labExec('dpkg -S /usr/sbin/libvirtd', 'lab2')).toMatch(/^kvmforge-libvirt: /);
  }, 40 * 60_000);

  it('a good trial kernel becomes the default', async () => {
    const t0 = Date.now();
    const r = await run(['apply', '-i', secondInv, '--limit', 'lab1', '--steps', STEPS, '--json']);
    const rep = report(r);
    expect(rep.hosts[0].error ?? '').toBe('');
    expect(r.code).toBe(0);
    expect(buildLogs(rep.journal)).toEqual([]);
    expect(labExec('uname -r', 'lab1').trim()).toBe(release);
    expect(labExec('sudo grub-editenv list', 'lab1')).toContain(`saved_entry=${OLD.replace(/6\.1\.0-50-amd64/g, release)}`);
    expect(labExec('sudo grep -c kvmforge-trial /boot/grub/custom.cfg || true', 'lab1').trim()).toBe('0');
    expect(labExec('ls /dev/kvm; grep -oE "^kvm[a-z_]*" /proc/modules | sort', 'lab1')).toMatch(/\/dev\/kvm\nkvm\nkvm_amd/);
    process.stderr.write(`[builds] lab1 good trial boot (kernel already installed): ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }, 40 * 60_000);

  it('a second apply on both hosts changes nothing', async () => {
    const t0 = Date.now();
    const r = await run(['apply', '-i', secondInv, '--limit', 'lab1,lab2', '--steps', STEPS, '--json']);
    expect(r.code).toBe(0);
    const rep = report(r);
    expect(rep.hosts.flatMap((h: { steps: { changes: unknown[] }[] }) => h.steps.flatMap((s) => s.changes))).toEqual([]);
    process.stderr.write(`[builds] no-op apply, 2 hosts: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }, 600_000);
});
