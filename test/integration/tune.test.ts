// `kvmforge tune` for real on this machine (local transport): two idle KVM QEMU processes — one with
// named vCPU threads (debug-threads=on, as libvirt starts QEMU), one found through QMP query-cpus-fast —
// get their tiers; each thread's policy, RT priority and nice are read back from /proc independently.
// The guests only run firmware that halts: real-time priorities on them cannot starve the machine, and
// RT throttling stays on.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT } from '../../src/lab/paths.ts';
import { runAsync } from '../harness/nshosts.ts';
import { kvmHere } from '../harness/kvm.ts';

const KVM = kvmHere('the `kvmforge tune` tests');

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-tune-'));
const qemus: ChildProcess[] = [];
const cli = (args: string[]) =>
  runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), ...args, '-i', join(dir, 'inv.yaml')], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1' },
    timeoutMs: 120_000,
  });

/** Every thread of a process: name, policy (0 other, 2 rr), RT priority, nice — straight from /proc. */
function threads(pid: number) {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      tid: Number(tid),
      comm: readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(),
      nice: Number(f[16]),
      rtprio: Number(f[37]),
      policy: Number(f[38]),
    };
  });
}

beforeAll(async () => {
  if (!KVM) return;
  const base = [
    '-enable-kvm',
    '-cpu',
    'host,-arch-capabilities',
    '-m',
    '64',
    '-display',
    'none',
    '-nodefaults',
    '-monitor',
    'none',
  ];
  qemus.push(
    spawn('qemu-system-x86_64', [...base, '-smp', '2', '-name', 'guest=tune-a,debug-threads=on'], { stdio: 'ignore' }),
  );
  qemus.push(
    spawn('qemu-system-x86_64', [...base, '-name', 'tune-b', '-qmp', `unix:${join(dir, 'b.qmp')},server=on,wait=off`], {
      stdio: 'ignore',
    }),
  );
  writeFileSync(
    join(dir, 'inv.yaml'),
    [
      'all:',
      '  hosts:',
      '    localhost:',
      '      ansible_connection: local',
      '      domains_vms:',
      '        - { name: tune-a, tier: rr90 }',
      '        - { name: tune-b, tier: rr99 }',
      '    other:',
      '      ansible_connection: local',
      '      domains_vms:',
      '        - { name: not-running, tier: fifo99 }',
      '',
    ].join('\n'),
  );
  await new Promise((r) => setTimeout(r, 2000));
});
afterAll(() => {
  for (const q of qemus) q.kill('SIGKILL');
});

describe.skipIf(!KVM)('kvmforge tune', () => {
  it('plan lists each vCPU thread’s change and changes nothing', async () => {
    const r = await cli(['tune', '--plan', '--limit', 'localhost']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^localhost: tune-a vCPU 0 \(thread \d+\): other nice 0 → rr 90 nice 0$/m);
    expect(r.stdout).toMatch(/^localhost: tune-a vCPU 1 \(thread \d+\): other nice 0 → rr 90 nice 0$/m);
    expect(r.stdout).toMatch(/^localhost: tune-b vCPU 0 \(thread \d+\): other nice 0 → rr 99 nice -10$/m);
    expect(r.stdout).toContain('3 change(s) would be made (plan: nothing changed)');
    for (const q of qemus) for (const t of threads(q.pid!)) expect([t.policy, t.nice]).toEqual([0, 0]);
  });

  it('apply sets the tiers on the vCPU threads only, reports before → after; a second run changes none', async () => {
    const r = await cli(['tune', '--limit', 'localhost']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('3 change(s) made');
    const a = threads(qemus[0].pid!);
    expect(a.filter((t) => /^CPU \d+\/KVM$/.test(t.comm)).map((t) => [t.policy, t.rtprio, t.nice])).toEqual([
      [2, 90, 0],
      [2, 90, 0],
    ]);
    // main loop, I/O threads: untouched
    expect(a.filter((t) => !/^CPU \d+\/KVM$/.test(t.comm)).every((t) => t.policy === 0 && t.nice === 0)).toBe(true);
    const b = threads(qemus[1].pid!);
    // its one vCPU, found through QMP
    expect(b.filter((t) => t.policy === 2).map((t) => [t.rtprio, t.nice])).toEqual([[99, -10]]);
    expect(b.filter((t) => t.policy !== 2).every((t) => t.policy === 0 && t.nice === 0)).toBe(true);
    expect(r.stdout).toContain("note: tune-b is not libvirt's: its tier lasts until its QEMU restarts");
    const again = await cli(['tune', '--limit', 'localhost', '--json']);
    expect(again.code).toBe(0);
    const rep = JSON.parse(again.stdout) as { hosts: { changes: unknown[]; inStep: string[] }[] };
    expect(rep.hosts[0].changes).toEqual([]);
    expect(rep.hosts[0].inStep).toEqual(['tune-a', 'tune-b']);
    expect(readFileSync('/proc/sys/kernel/sched_rt_runtime_us', 'utf8').trim()).not.toBe('-1'); // throttling still on
  });

  it('a VM that is not running: one line for its host, the others still tuned, exit 1', async () => {
    const r = await cli(['tune']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('other: FAILED: not-running is not running');
    expect(r.stdout).toContain('localhost: tune-a: vCPU threads already as its tier wants');
    writeFileSync(join(dir, 'none.yaml'), 'all:\n  hosts:\n    h:\n      ansible_connection: local\n');
    const none = await runAsync(
      process.execPath,
      [join(PROJECT, 'bin/kvmforge.js'), 'tune', '-i', join(dir, 'none.yaml')],
      { cwd: dir, env: process.env, input: '' },
    );
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no VM in .*none\.yaml names a tier/);
  });
});
