// One lab VM for the whole lab test project: up once, reset between suites, always torn down. The builds project
// has a lab of its own (KVMFORGE_TEST_LAB_DIR), with its own state, inventories and ports.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT } from '../../src/lab/paths.ts';
import { runAsync } from './nshosts.ts';

/** The lab project's directory; the builds project sets KVMFORGE_TEST_LAB_DIR to a lab of its own, so its VMs run
 * beside the lab project's. */
export const LAB_DIR = process.env.KVMFORGE_TEST_LAB_DIR ?? '/tmp/kvmforge-labtest';
/** The environment kvmforge's lab commands get for the lab in `dir`: its state and its inventories. */
export function labEnvOf(dir: string) {
  return { KVMFORGE_LAB: join(dir, 'state'), KVMFORGE_INVENTORY_DIR: join(dir, 'inventories'), NO_COLOR: '1' };
}
export const LAB_ENV = labEnvOf(LAB_DIR);
export const LAB_INVENTORY = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, 'lab.yaml');

export function kvmforge(args: string[], env: Record<string, string> = {}, timeoutMs = 900_000) {
  return runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), ...args], {
    cwd: LAB_DIR,
    env: { ...process.env, ...LAB_ENV, ...env },
    timeoutMs,
  });
}

export function labState(): { vms: { name: string; port: number; pid: number }[]; accel: string } {
  return JSON.parse(readFileSync(join(LAB_ENV.KVMFORGE_LAB, 'state.json'), 'utf8'));
}

/** OpenSSH's arguments to run `cmd` on a lab VM (an independent check, not kvmforge's own code). `connectTimeoutS`:
 * short while polling a rebooting VM, whose forwarded port accepts and then hangs until sshd answers. */
function opensshArgsFor(cmd: string, vm: string, connectTimeoutS: number): string[] {
  const port = labState().vms.find((v) => v.name === vm)!.port;
  const key = readFileSync(LAB_INVENTORY, 'utf8').match(/ansible_ssh_private_key_file: (\S+)/)![1];
  return [
    '-i',
    key,
    '-p',
    String(port),
    '-o',
    `UserKnownHostsFile=${join(LAB_ENV.KVMFORGE_INVENTORY_DIR, 'lab-known_hosts')}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    `ConnectTimeout=${connectTimeoutS}`,
    'kvmforge@127.0.0.1',
    cmd,
  ];
}

/** Runs `cmd` on a lab VM over OpenSSH and returns its output; rejects if it fails. Always awaited, never a
 * blocking call: vitest's worker must answer its runner within 60 s, and a worker blocked longer loses the run (seen
 * in CI while the bridge test waited synchronously for a VM to reboot). */
export async function labRun(cmd: string, vm = 'lab1', connectTimeoutS = 20, timeoutMs = 120_000): Promise<string> {
  const r = await runAsync('ssh', opensshArgsFor(cmd, vm, connectTimeoutS), { timeoutMs });
  if (r.code !== 0) throw new Error(`ssh ${vm} ${JSON.stringify(cmd)} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `sudo virsh -q -c qemu:///system CMD` on a lab VM, its output trimmed. */
export async function labVirsh(cmd: string, vm = 'lab1', timeoutMs?: number): Promise<string> {
  return (await labRun(`sudo virsh -q -c qemu:///system ${cmd}`, vm, undefined, timeoutMs)).trim();
}

/** The lab VM's boot_id: a new one means it rebooted. */
export async function labBootId(vm = 'lab1', connectTimeoutS?: number): Promise<string> {
  return (await labRun('cat /proc/sys/kernel/random/boot_id', vm, connectTimeoutS)).trim();
}

export async function resetLab(vm = 'lab1') {
  const r = await kvmforge(['lab', 'reset', vm]);
  if (r.code !== 0) throw new Error(`lab reset failed: ${r.stderr}`);
}

/** The lab inventory with the host's hugepages line replaced by these vars, written as NAME.yaml beside it. */
export function labInventoryWith(name: string, vars: string[]): string {
  const file = join(LAB_ENV.KVMFORGE_INVENTORY_DIR, `${name}.yaml`);
  writeFileSync(
    file,
    readFileSync(LAB_INVENTORY, 'utf8').replace(
      /^\s*hugepages_count: "10%".*$/m,
      ['', ...vars.map((v) => `        ${v}`)].join('\n'),
    ),
  );
  return file;
}
