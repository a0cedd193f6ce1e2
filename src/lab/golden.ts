// The golden state: one VM booted cold once, its RAM saved to a file and its disk frozen as an
// overlay of the base image. Every later lab VM is an overlay of that disk resuming from that RAM,
// so it answers SSH in seconds instead of a minute of TCG boot. Keyed by everything that must match
// between saver and restorer: base image, QEMU build, accelerator, memory, CPUs.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  alive,
  hmp,
  labDir,
  labSshArgs,
  overlay,
  startOnFreePort,
  qemuArgs,
  stopQemu,
  waitSsh,
  type Log,
  type Vm,
} from './vm.ts';
import { cacheDir } from './paths.ts';
import { must, run } from './proc.ts';
import { quote } from '../core/sh.ts';

export interface Golden {
  disk: string;
  state: string;
}

export function goldenDir(
  base: string,
  accel: string,
  memory: number,
  cpus: number,
  machineOf: Pick<Vm, 'devices' | 'nics'>,
): string {
  const qemu = must(['qemu-system-x86_64', '--version']);
  // the devices too: a saved state only loads into the machine it was saved from
  const machine = qemuArgs(
    {
      name: 'x',
      port: 1,
      pid: 0,
      overlay: 'x',
      monitor: 'x',
      console: 'x',
      memory,
      cpus,
      pristine: false,
      devices: machineOf.devices,
      nics: machineOf.nics,
    },
    accel === 'kvm' ? 'kvm' : 'tcg',
    'x',
  ).join(' ');
  const key = createHash('sha256')
    .update([basename(base), qemu, accel, memory, cpus, machine].join('\n'))
    .digest('hex')
    .slice(0, 12);
  return join(cacheDir(), `golden-${key}`);
}

/** Runs a command in a lab guest over OpenSSH, host key checked against the image's key. */
export function guestRun(vm: Vm, hostKey: string, command: string, timeoutMs = 60_000): { code: number; out: string } {
  const kh = join(labDir(), `${vm.name}.known_hosts`);
  writeFileSync(kh, `[127.0.0.1]:${vm.port} ${hostKey}\n`);
  const r = run(['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=20', ...labSshArgs(vm.port, kh), command], {
    timeoutMs,
  });
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

async function waitMigration(monitor: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const info = await hmp(monitor, 'info migrate');
    const status = /Migration status:\s*(\S+)/.exec(info)?.[1];
    if (status === 'completed') return;
    if (status === 'failed' || status === 'cancelled') throw new Error(`saving the golden state failed: ${info}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('saving the golden state did not finish in 150 s');
}

/** A VM started with -incoming stays paused (the state was saved paused): continue it once loaded. */
export async function resumeIncoming(vm: Vm): Promise<void> {
  for (let i = 0; i < 240; i++) {
    const status = await hmp(vm.monitor, 'info status').catch(() => '');
    if (/running/.test(status)) return;
    if (
      /paused|postmigrate|prelaunch/.test(status) &&
      /Migration status:\s*completed/.test(await hmp(vm.monitor, 'info migrate'))
    ) {
      await hmp(vm.monitor, 'cont');
      return;
    }
    if (!alive(vm.pid)) throw new Error(`${vm.name}: QEMU exited while loading the golden state`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${vm.name}: the golden state did not load in 60 s`);
}

/** The golden state for these settings: made once (one cold boot), then reused. */
export async function ensureGolden(
  base: string,
  accel: 'kvm' | 'tcg',
  memory: number,
  cpus: number,
  machine: Pick<Vm, 'devices' | 'nics'>,
  hostKey: string,
  log: Log,
): Promise<Golden> {
  const dir = goldenDir(base, accel, memory, cpus, machine);
  const golden = { disk: join(dir, 'disk.qcow2'), state: join(dir, 'ram.state') };
  if (existsSync(golden.state)) return golden;
  for (const f of readdirSync(cacheDir())) {
    const pid = /^golden-\w+\.tmp-(\d+)$/.exec(f)?.[1];
    if (pid && !alive(Number(pid))) rmSync(join(cacheDir(), f), { recursive: true, force: true }); // a killed run's
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const vm: Vm = {
    name: 'golden',
    port: 0, // taken as it starts
    pid: 0,
    overlay: join(tmp, 'disk.qcow2'),
    monitor: join(labDir(), 'golden.mon'),
    console: join(labDir(), 'golden.console.log'),
    memory,
    cpus,
    pristine: false,
    devices: machine.devices,
    nics: machine.nics,
  };
  log(`making the golden state (one cold boot, ~1–2 min under TCG; later VMs resume from it in seconds) in ${dir}`);
  const t0 = Date.now();
  try {
    overlay(base, vm.overlay);
    vm.pid = await startOnFreePort(vm, accel, undefined, 2300);
    await waitSsh(vm, accel === 'kvm' ? 120_000 : 420_000);
    // let boot finish, so resumed guests don't redo its tail
    guestRun(vm, hostKey, 'timeout 120 systemctl is-system-running --wait >/dev/null 2>&1; sync', 150_000);
    // a damaged image boots and answers SSH, then the kernel remounts its root read-only: every later VM from it
    // would fail on its first write, so it is found here, once, and deleted for the next run to rebuild
    const rw = guestRun(vm, hostKey, 'f=/var/tmp/kvmforge-rw-check; touch "$f" && rm "$f"');
    if (rw.code !== 0) {
      rmSync(base, { force: true });
      throw new Error(
        `the lab image ${base} is damaged: its root file system is not writable after boot (${rw.out}; file ` +
          `system errors in ${vm.console}). It was deleted; run again to rebuild it`,
      );
    }
    await hmp(vm.monitor, 'stop');
    const target = join(tmp, 'ram.state');
    if (/["\\\n]/.test(target))
      throw new Error(`the cache path ${target} has a quote, backslash or newline; set KVMFORGE_CACHE`);
    await hmp(vm.monitor, `migrate "exec:cat > ${quote(target)}"`);
    await waitMigration(vm.monitor);
    await hmp(vm.monitor, 'quit', 3000).catch(() => ''); // no prompt comes back after quit
    for (let i = 0; i < 100 && alive(vm.pid); i++) await new Promise((r) => setTimeout(r, 100));
    stopQemu(vm.pid);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another run made it first
    }
    log(`golden state made in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    return golden;
  } catch (e) {
    stopQemu(vm.pid);
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    rmSync(vm.monitor, { force: true });
  }
}
