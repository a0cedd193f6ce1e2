// `kvmforge top` driven for real in tmux (send-keys, capture-pane) against this machine's QEMU processes:
// a KVM guest spinning on port I/O (busy vCPU) and one whose firmware halts (idle vCPU).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT } from '../../src/lab/paths.ts';
import { runAsync } from '../harness/nshosts.ts';
import type { TopRow } from '../../src/insight/top.ts';
import { kvmHere } from '../harness/kvm.ts';

const KVM = kvmHere('the `kvmforge top` tests');

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-top-'));
const qemus: ChildProcess[] = [];
const SESSION = `kvmforge-top-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
const screen = () => tmux('capture-pane', '-p', '-t', SESSION);
/** The pane stays after its program exits (remain-on-exit), so its last screen can still be read. */
const alive = () => tmux('display-message', '-p', '-t', SESSION, '#{pane_dead}').trim() !== '1';
async function waitFor(test: (s: string) => boolean, what: string, seconds = 30): Promise<string> {
  let s = '';
  for (let i = 0; i < seconds * 4; i++) {
    s = screen();
    if (test(s)) return s;
    await sleep(250);
  }
  throw new Error(`${what}; the screen:\n${s}`);
}
/** The table's rows as [vm, thread, cpu, mem]. */
const rowsOf = (s: string) =>
  s
    .split('\n')
    .filter((l) => /^top-(busy|idle) /.test(l))
    .map((l) => {
      const m = /^(\S+)\s+\d+\s+\d+\s+(.+?)\s{2,}\S+\s+\S+\s+-?\d+\s+([\d.]+)\s+([\d.]+)\s+\d+\s+\d+$/.exec(l)!;
      return { vm: m[1], thread: m[2], cpu: Number(m[3]), mem: Number(m[4]) };
    });

beforeAll(async () => {
  if (!KVM) return;
  const mbr = Buffer.alloc(1 << 20);
  Buffer.from([0xba, 0xf7, 0x01, 0xec, 0xeb, 0xfd]).copy(mbr); // mov dx,0x1f7; l: in al,dx; jmp l
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  writeFileSync(join(dir, 'pio.img'), mbr);
  const base = [
    '-enable-kvm',
    '-cpu',
    'host,-arch-capabilities',
    '-display',
    'none',
    '-nodefaults',
    '-monitor',
    'none',
  ];
  qemus.push(
    spawn(
      'qemu-system-x86_64',
      [
        ...base,
        '-m',
        '64',
        '-name',
        'guest=top-busy,debug-threads=on',
        '-drive',
        `file=${join(dir, 'pio.img')},format=raw,if=ide,snapshot=on`,
      ],
      { stdio: 'ignore' },
    ),
  );
  qemus.push(
    spawn('qemu-system-x86_64', [...base, '-m', '256', '-name', 'guest=top-idle,debug-threads=on'], {
      stdio: 'ignore',
    }),
  );
  writeFileSync(join(dir, 'inv.yaml'), 'all:\n  hosts:\n    localhost:\n      ansible_connection: local\n');
  // the idle one's firmware gives up and halts: ~10 s on a quiet machine, longer on a loaded one
  await vcpuGoesIdle(qemus[1].pid!, 150);
}, 180_000);

/** CPU ticks (user + system) a QEMU's `CPU 0/KVM` thread has used. */
function vcpuTicks(pid: number): number {
  for (const tid of readdirSync(`/proc/${pid}/task`))
    if (readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === 'CPU 0/KVM') {
      const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]);
    }
  return Number.NaN;
}

/** Waits until the guest's vCPU uses under 10 % of a CPU over 2 s. */
async function vcpuGoesIdle(pid: number, seconds: number) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    const before = vcpuTicks(pid);
    await sleep(2000);
    if (vcpuTicks(pid) - before < 20) return;
  }
  throw new Error(`the idle guest's vCPU still ran after ${seconds} s`);
}
afterAll(() => {
  try {
    tmux('kill-session', '-t', SESSION);
  } catch {
    /* never started */
  }
  for (const q of qemus) q.kill('SIGKILL');
});

describe.skipIf(!KVM)('kvmforge top', () => {
  it('live: refreshes, sorts by CPU then by memory on keys, and quits on q', async () => {
    tmux(
      'new-session',
      '-d',
      '-s',
      SESSION,
      '-x',
      '160',
      '-y',
      '60',
      `cd ${dir} && NO_COLOR=1 ${process.execPath} ${join(PROJECT, 'bin/kvmforge.js')} top -i inv.yaml --host ` +
        `localhost --interval 1; echo "exit $?"`,
      ';',
      'set-option',
      '-t',
      SESSION,
      'remain-on-exit',
      'on',
    );
    let s = await waitFor((x) => /sorted by CPU/.test(x) && rowsOf(x).length >= 4, 'no table sorted by CPU');
    // the busy guest's vCPU thread leads
    s = await waitFor(
      (x) => rowsOf(x)[0]?.vm === 'top-busy' && rowsOf(x)[0]?.thread === 'CPU 0/KVM',
      'the busy vCPU is not on top',
    );
    // busy: it leads, with a real share of a CPU, far above the halted guest's vCPU (~0). Not a fixed share: CI runs
    // this beside three lab VMs and the source builds on 2 cores, where the busy vCPU got 29 % once
    const busy = rowsOf(s)[0].cpu;
    const idle = rowsOf(s).find((r) => r.vm === 'top-idle' && r.thread === 'CPU 0/KVM');
    expect(busy).toBeGreaterThan(5);
    expect(idle, "the idle guest's vCPU is listed").toBeDefined();
    expect(idle!.cpu).toBeLessThan(busy / 5);
    expect(s).toMatch(/VM\s+PID\s+TID\s+THREAD\s+POLICY\s+RTPRIO\s+NICE\s+CPU%\s+MEM%\s+VCSW\s+IVCSW/);
    const cpus = rowsOf(s).map((r) => r.cpu);
    expect(cpus).toEqual([...cpus].sort((a, b) => b - a));
    tmux('send-keys', '-t', SESSION, 'm');
    s = await waitFor((x) => /sorted by memory/.test(x) && rowsOf(x).length >= 4, 'no table sorted by memory', 10);
    const mems = rowsOf(s).map((r) => r.mem);
    expect(mems).toEqual([...mems].sort((a, b) => b - a));
    tmux('send-keys', '-t', SESSION, 'c');
    await waitFor((x) => /sorted by CPU/.test(x), 'c did not sort by CPU again', 10);
    tmux('send-keys', '-t', SESSION, 'q');
    await waitFor(() => !alive(), 'q did not quit', 10);
    expect(screen()).toMatch(/^exit 0$/m);
  });

  it('--once prints one table; --json the rows; a host that is not in the inventory is bad input', async () => {
    const cli = (args: string[]) =>
      runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), 'top', '-i', join(dir, 'inv.yaml'), ...args], {
        cwd: dir,
        env: { ...process.env, NO_COLOR: '1' },
      });
    const once = await cli(['--host', 'localhost', '--once', '--interval', '1']);
    expect(once.code).toBe(0);
    expect(rowsOf(once.stdout).some((r) => r.vm === 'top-idle' && r.thread === 'CPU 0/KVM')).toBe(true);
    const json = await cli(['--host', 'localhost', '--json', '--interval', '1', '--sort', 'mem']);
    const rows = (JSON.parse(json.stdout) as { rows: TopRow[] }).rows.filter((r) => r.vm.startsWith('top-'));
    expect(rows.find((r) => r.vm === 'top-busy' && r.thread === 'CPU 0/KVM')).toMatchObject({
      pid: qemus[0].pid,
      policy: 'other',
      nice: 0,
    });
    expect(rows.every((r) => r.vcs >= 0 && r.ivcs >= 0 && r.mem > 0)).toBe(true);
    const bad = await cli(['--host', 'nowhere']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/nowhere/);
  });
});
