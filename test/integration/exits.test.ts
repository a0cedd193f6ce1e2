// `kvmforge exits` for real, on this machine (local transport): QEMU processes with KVM — one whose
// firmware boots into a port-I/O loop, one with nothing to boot (it idles) — and one without KVM (TCG),
// plus an inventory host that is down. Counters come from QEMU's query-stats over each QMP socket.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT } from '../../src/lab/paths.ts';
import type { ExitsRow } from '../../src/insight/exits.ts';
import { runAsync } from '../harness/nshosts.ts';
import { kvmHere } from '../harness/kvm.ts';

const KVM = kvmHere('the `kvmforge exits` tests');

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-exits-'));
const qemus: Record<string, ChildProcess> = {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function qemu(name: string, args: string[]) {
  qemus[name] = spawn(
    'qemu-system-x86_64',
    [
      '-m',
      '64',
      '-display',
      'none',
      '-nodefaults',
      '-monitor',
      'none',
      '-qmp',
      `unix:${join(dir, `${name}.qmp`)},server=on,wait=off`,
      ...args,
    ],
    { stdio: 'ignore' },
  );
}
const cli = (args: string[]) =>
  runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), ...args, '-i', join(dir, 'inv.yaml')], {
    cwd: dir,
    env: { ...process.env, NO_COLOR: '1' },
    timeoutMs: 120_000,
  });

beforeAll(async () => {
  if (!KVM) return;
  // a boot sector that reads an I/O port forever: mov dx,0x1f7; l: in al,dx; jmp l
  const mbr = Buffer.alloc(1 << 20);
  Buffer.from([0xba, 0xf7, 0x01, 0xec, 0xeb, 0xfd]).copy(mbr);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  writeFileSync(join(dir, 'pio.img'), mbr);
  const kvm = ['-enable-kvm', '-cpu', 'host,-arch-capabilities']; // this machine's nested KVM needs the flag off
  qemu('exits-pio', [
    ...kvm,
    '-name',
    'exits-pio',
    '-drive',
    `file=${join(dir, 'pio.img')},format=raw,if=ide,snapshot=on`,
  ]);
  qemu('exits-idle', [...kvm, '-name', 'guest=exits-idle,debug-threads=on']);
  qemu('exits-tcg', ['-accel', 'tcg', '-name', 'exits-tcg']);
  writeFileSync(
    join(dir, 'inv.yaml'),
    [
      'all:',
      '  hosts:',
      '    localhost:',
      '      ansible_connection: local',
      '    down:',
      '      ansible_host: 127.0.0.1',
      '      ansible_port: 9',
      '',
    ].join('\n'),
  );
  await sleep(10_000); // firmware reaches its boot sector, or gives up and halts (measured: 5–8 s here)
}, 60_000);
afterAll(() => {
  for (const q of Object.values(qemus)) q.kill('SIGKILL');
});

describe.skipIf(!KVM)('kvmforge exits', () => {
  it(
    'reads each KVM VM’s counters by name and PID, with rates over the interval; a VM without KVM is noted; a host ' +
      'that is down is one line',
    async () => {
      type Out = { interval: number; hosts: { host: string; vms: ExitsRow[]; error?: string }[] };
      const rate = (o: Out, n: string) =>
        o.hosts.find((h) => h.host === 'localhost')!.vms.find((v) => v.name === n)?.rate ?? 0;
      const svg = join(dir, 'exits.svg');
      let r = await cli(['exits', '--interval', '2', '--json', '--plot', svg]);
      // a slow firmware start may still be busy in the first interval: look again, a few times at most
      for (
        let i = 0;
        i < 4 && rate(JSON.parse(r.stdout), 'exits-pio') <= 10 * rate(JSON.parse(r.stdout), 'exits-idle');
        i++
      )
        r = await cli(['exits', '--interval', '2', '--json', '--plot', svg]);
      expect(r.code, r.stderr).toBe(1); // the host that is down
      const out = JSON.parse(r.stdout) as Out;
      expect(out.hosts.find((h) => h.host === 'down')!.error).toMatch(/refused|connect/i);
      const vms = out.hosts.find((h) => h.host === 'localhost')!.vms;
      const vm = (n: string) => vms.find((v) => v.name === n)!;
      for (const n of ['exits-pio', 'exits-idle']) {
        expect(vm(n).pid).toBe(qemus[n].pid);
        expect(vm(n).error).toBeUndefined();
        expect(vm(n).via).toBe('qmp');
        expect(vm(n).vcpus).toBe(1);
        expect(vm(n).counters.exits).toBeGreaterThan(0);
        expect(vm(n).inKernel + vm(n).ioShare).toBeCloseTo(1, 6);
      }
      expect(vm('exits-tcg').note).toMatch(/without KVM/);
      // the port-I/O loop exits far more often than a vCPU that halts
      expect(vm('exits-pio').rate).toBeGreaterThan(10 * vm('exits-idle').rate);
      // the plot: valid SVG, one stacked bar per KVM VM, of the same rates
      expect(spawnSync('xmllint', ['--noout', svg]).status).toBe(0);
      const bars = [
        ...readFileSync(svg, 'utf8').matchAll(/data-label="([^"]+)" data-part="([^"]+)" data-value="([^"]+)"/g),
      ].map((m) => ({ vm: m[1], part: m[2], value: Number(m[3]) }));
      const pio = bars.filter((b) => b.vm === 'localhost/exits-pio'); // host/VM: the inventory has two hosts
      expect(pio.map((b) => b.part)).toEqual(['I/O exits/s (port I/O + MMIO)', 'other exits/s']);
      expect(pio[0].value + pio[1].value).toBeCloseTo(vm('exits-pio').rate, 6);
      expect(bars.some((b) => b.vm.endsWith('exits-tcg'))).toBe(false);
      // --save keeps the same result for kvmforge report, under the journal root
      const saved = await cli(['exits', '--interval', '1', '--json', '--save']);
      const file = /saved: (\S+)/.exec(saved.stderr)?.[1];
      expect(file, saved.stderr).toMatch(/^\.kvmforge\/insight\/exits-[0-9TZ-]+\.json$/);
      const kept = JSON.parse(readFileSync(join(dir, file!), 'utf8'));
      expect(kept.hosts.map((h: { host: string }) => h.host)).toEqual(
        JSON.parse(saved.stdout).hosts.map((h: { host: string }) => h.host),
      );
      expect(kept.interval).toBe(1);
      process.stderr.write(
        `[exits] over 2 s: port-I/O loop ${vm('exits-pio').rate.toFixed(0)} exits/s (io_exits ` +
          `${vm('exits-pio').counters.io_exits}, insn_emulation ${vm('exits-pio').counters.insn_emulation}, I/O ` +
          `share ${(vm('exits-pio').ioShare * 100).toFixed(1)}%); idle ${vm('exits-idle').rate.toFixed(0)} exits/s ` +
          `(halt_exits ${vm('exits-idle').counters.halt_exits})\n`,
      );
    },
  );

  it('the table names each VM and its verdict; a VM that is not running is one line and exit 1', async () => {
    const r = await cli([
      'exits',
      '--limit',
      'localhost',
      '--interval',
      '1',
      '--vm',
      'exits-idle',
      '--vm',
      'no-such-vm',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^vm +pid +vcpus +exits +exits\/s +I\/O exits +I\/O\/s +in kernel +I\/O share +verdict$/m);
    expect(r.stdout).toMatch(
      new RegExp(`^exits-idle +${qemus['exits-idle'].pid} +1 +\\S+ .*(compute-bound|I/O-bound|idle)`, 'm'),
    );
    expect(r.stdout).not.toContain('exits-pio');
    expect(r.stdout).toContain('localhost: no running VM named no-such-vm');
    const badPlot = await cli(['exits', '--plot', 'x.png']);
    expect(badPlot.code).toBe(2);
    expect(badPlot.stderr).toMatch(/--plot 'x.png': expected a file name ending in .svg/);
    const bad = await cli(['exits', '--interval', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--interval '0': expected seconds/);
  });

  it('--reasons: perf breaks the exits down by reason; the port-I/O loop is all KVM_EXIT_IO to QEMU', async () => {
    const r = await cli([
      'exits',
      '--limit',
      'localhost',
      '--interval',
      '2',
      '--vm',
      'exits-pio',
      '--vm',
      'exits-idle',
      '--reasons',
      '--json',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const vms = JSON.parse(r.stdout).hosts[0].vms as (ExitsRow & {
      reasons: { exits: Record<string, number>; userspace: Record<string, number> };
    })[];
    const pio = vms.find((v) => v.name === 'exits-pio')!.reasons;
    const idle = vms.find((v) => v.name === 'exits-idle')!.reasons;
    const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);
    // `in al, dx` on an emulated port: every iteration goes to QEMU (tens of thousands per second on an idle
    // machine; the floor leaves room for CI, which runs this beside the lab VM)
    expect(pio.userspace.KVM_EXIT_IO).toBeGreaterThan(5_000);
    expect(pio.userspace.KVM_EXIT_IO / sum(pio.userspace)).toBeGreaterThan(0.99);
    expect(sum(idle.userspace)).toBeLessThan(pio.userspace.KVM_EXIT_IO / 10);
    // this machine's nested PVM KVM doesn't fire kvm:kvm_exit; a KVM that does gets its reasons counted
    for (const v of [pio, idle]) for (const k of Object.keys(v.exits)) expect(k).toMatch(/^[A-Z_]+$/);
    process.stderr.write(
      `[exits --reasons] over 2 s: port-I/O loop ${JSON.stringify(pio)}; idle ${JSON.stringify(idle)}\n`,
    );
    const text = await cli(['exits', '--limit', 'localhost', '--interval', '1', '--vm', 'exits-pio', '--reasons']);
    expect(text.stdout).toMatch(
      /^exits-pio: exit reasons over 1 s \(perf\): all exits: .*; to user space: KVM_EXIT_IO \d+ \(100\.0%\)$/m,
    );
  });

  // A CI run here once failed `exits` at once: QEMU's monitor serves one client and queues one more, and a VM
  // busy with port I/O had not yet let go of the previous run's clients, so the next connect got EAGAIN
  it('a monitor still busy with other clients is waited for (EAGAIN), not reported as a failed VM', async () => {
    const qmpPath = join(dir, 'exits-idle.qmp');
    // clients until the next connect gets EAGAIN: the one served and the ones queued
    const held: Socket[] = [];
    for (let full = false; !full && held.length < 8; ) {
      const c = await new Promise<Socket | undefined>((resolve, reject) => {
        const c = connect(qmpPath, () => resolve(c)).on('error', (e: NodeJS.ErrnoException) =>
          e.code === 'EAGAIN' ? resolve(undefined) : reject(e),
        );
      });
      if (c) held.push(c);
      else full = true;
    }
    expect(held.length).toBeLessThan(8);
    const run = cli(['exits', '--limit', 'localhost', '--interval', '1', '--vm', 'exits-idle', '--json']);
    // let go of the monitor 1 s after kvmforge's python has started (it connects at once)
    const until = Date.now() + 60_000;
    while (spawnSync('pgrep', ['-f', 'python3 - 1 exits-idle$']).status !== 0 && Date.now() < until) await sleep(50);
    await sleep(1000);
    for (const c of held) c.destroy();
    const r = await run;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const vm = JSON.parse(r.stdout).hosts[0].vms[0] as ExitsRow & { error?: string };
    expect(vm).toMatchObject({ name: 'exits-idle', vcpus: 1 });
    expect(vm.error).toBeUndefined();
  });
});
