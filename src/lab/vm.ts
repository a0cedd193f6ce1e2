// Lab VMs: a cached GRUB-booting Debian 12 image, qcow2 overlays, QEMU (KVM if a guest really boots
// with it, else TCG), user-mode networking with SSH forwarded on 127.0.0.1 only.
import { requireTools as requireLabTools } from '../core/deps.ts';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { quote } from '../core/sh.ts';
import { aptMirrors, cacheDir, ensureRootfs, HERE, labKey, rootfsDir, type Flavour } from './paths.ts';
import { agentSocket } from './agent.ts';
import { must, run } from './proc.ts';

export interface Vm {
  name: string;
  port: number;
  pid: number;
  overlay: string;
  monitor: string;
  console: string;
  memory: number;
  cpus: number;
  pristine: boolean;
  /**
   * 'emulated': an IDE disk and an e1000 NIC instead of virtio (to measure what virtio buys, e.g. with kvmforge bench)
   */
  devices?: Devices;
  /** 'plain': a server that never had the distribution's libvirt or QEMU (default 'full': it has them) */
  image?: Flavour;
  /** 2: a second NIC on the same network (eth1), e.g. for a bond */
  nics?: number;
}

export type Devices = 'virtio' | 'emulated';

export interface LabState {
  accel: 'kvm' | 'tcg';
  accelNote: string;
  hostKey: string;
  vms: Vm[];
}

export type Log = (line: string) => void;

export function labDir(): string {
  const d = process.env.KVMFORGE_LAB ?? join(cacheDir(), 'lab');
  mkdirSync(d, { recursive: true });
  return d;
}

const stateFile = () => join(labDir(), 'state.json');

export function readState(): LabState | undefined {
  return existsSync(stateFile()) ? (JSON.parse(readFileSync(stateFile(), 'utf8')) as LabState) : undefined;
}

export function writeState(s: LabState) {
  writeFileSync(stateFile(), JSON.stringify(s, null, 2));
}

export function requireTools() {
  requireLabTools('lab');
}

function hashOf(...files: string[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(f));
  return h.digest('hex').slice(0, 10);
}

export function baseImagePath(flavour: Flavour = 'full'): string {
  const hash = hashOf(join(HERE, 'build-rootfs.sh'), join(HERE, 'build-image.sh'));
  return join(cacheDir(), `base-${flavour === 'plain' ? 'plain-' : ''}${hash}.qcow2`);
}

export function ensureImage(log: Log, flavour: Flavour = 'full'): string {
  const img = baseImagePath(flavour);
  if (existsSync(img)) return img;
  const tree = ensureRootfs(log, flavour);
  log(`building the lab disk image ${img} (~20 s)`);
  const t0 = Date.now();
  must(['sh', join(HERE, 'build-image.sh'), tree, img], { inherit: true });
  log(`image built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return img;
}

export function hostKeyOfImage(): string {
  return readFileSync(join(rootfsDir('plain'), 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8')
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function pickPorts(n: number, start = 2222, taken: number[] = []): Promise<number[]> {
  const out: number[] = [];
  for (let p = start; out.length < n && p < 65000; p++) if (!taken.includes(p) && (await portFree(p))) out.push(p);
  return out;
}

/** True once the guest's sshd sends its banner through the forwarded port. */
export function sshBanner(port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('SSH-')));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

export function consoleTail(file: string, lines = 15): string {
  if (!existsSync(file)) return '(no console log)';
  const text = readFileSync(file, 'utf8');
  if (!text.trim()) return '(console empty: the guest never reached GRUB)';
  return text
    .replace(/\r/g, '')
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .trim()
    .split('\n')
    .slice(-lines)
    .join('\n');
}

export async function waitSsh(vm: Vm, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (!alive(vm.pid)) throw new Error(`${vm.name}: QEMU exited. Console tail:\n${consoleTail(vm.console)}`);
    if (await sshBanner(vm.port)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(
    `${vm.name}: no SSH on 127.0.0.1:${vm.port} after ${Math.round(timeoutMs / 1000)} s. Console ` +
      `tail:\n${consoleTail(vm.console)}`,
  );
}

/** One command on the QEMU human monitor (unix socket). */
export function hmp(socket: string, command: string, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(socket);
    let buf = '';
    let sent = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`monitor command '${command}' timed out`));
    }, timeoutMs);
    s.on('data', (d) => {
      buf += d.toString();
      if (!sent && buf.includes('(qemu)')) {
        sent = true;
        buf = '';
        s.write(`${command}\n`);
      } else if (sent && buf.includes('(qemu)')) {
        clearTimeout(timer);
        s.end();
        resolve(
          buf
            .replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
            .replace(/\(qemu\)\s*$/, '')
            .replace(command, '')
            .trim(),
        );
      }
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// One MAC for every lab VM: each sits alone on its own user-mode network, and a VM restored from the
// golden state must keep the device it was saved with. A second NIC gets the next one.
export const LAB_MAC = '52:54:00:6b:66:01';
export const LAB_MAC2 = '52:54:00:6b:66:02';
/** Where lab VMs find their apt proxy: QEMU forwards it to the relay, which serves only this machine's mirrors. */
export const RELAY = { address: '10.0.2.100', port: 3142 };

/** The relay QEMU runs for each connection a guest makes to RELAY (no daemon; ends with the connection). */
function relayCommand(): string {
  return [process.execPath, join(HERE, 'mirror-relay.mjs'), ...aptMirrors()].map((w) => quote(w)).join(' ');
}

export function qemuArgs(vm: Vm, accel: 'kvm' | 'tcg', pidfile: string, incoming?: string): string[] {
  return [
    '-name',
    `kvmforge-${vm.name}`,
    '-machine',
    'pc',
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi', '-cpu', 'max']),
    '-smp',
    String(vm.cpus),
    '-m',
    String(vm.memory),
    '-drive',
    `file=${vm.overlay},if=${vm.devices === 'emulated' ? 'ide' : 'virtio'},format=qcow2,cache=unsafe,discard=unmap`,
    ...netArgs(vm),
    '-display',
    'none',
    '-serial',
    `file:${vm.console}`,
    '-monitor',
    `unix:${vm.monitor},server,nowait`,
    '-chardev',
    `socket,id=qga0,path=${agentSocket(vm)},server=on,wait=off`,
    '-device',
    'virtio-serial-pci',
    '-device',
    'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
    '-pidfile',
    pidfile,
    ...(incoming ? ['-incoming', `exec:cat ${quote(incoming)}`] : []),
    '-daemonize',
  ];
}

/** User-mode networking, restricted: SSH forwarded on 127.0.0.1 only, apt through the relay; with two NICs
 * both sit on one hub in front of it (one segment, as two ports of a switch). */
function netArgs(vm: Vm): string[] {
  const nic = vm.devices === 'emulated' ? 'e1000' : 'virtio-net-pci';
  const user =
    `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${vm.port}-:22,` +
    `guestfwd=tcp:${RELAY.address}:${RELAY.port}-cmd:${relayCommand()}`;
  if ((vm.nics ?? 1) < 2) return ['-netdev', user, '-device', `${nic},netdev=net0,mac=${LAB_MAC}`];
  return [
    '-netdev',
    user,
    '-netdev',
    'hubport,id=hub0,hubid=0,netdev=net0',
    '-netdev',
    'hubport,id=nic0,hubid=0',
    '-netdev',
    'hubport,id=nic1,hubid=0',
    '-device',
    `${nic},netdev=nic0,mac=${LAB_MAC}`,
    '-device',
    `${nic},netdev=nic1,mac=${LAB_MAC2}`,
  ];
}

/** Starts QEMU daemonized; with `incoming`, the guest resumes from that saved state instead of booting. */
export function startQemu(vm: Vm, accel: 'kvm' | 'tcg', incoming?: string): number {
  const pidfile = join(labDir(), `${vm.name}.pid`);
  rmSync(pidfile, { force: true });
  rmSync(vm.console, { force: true });
  const errFile = join(labDir(), `${vm.name}.qemu.log`);
  const r = run(['qemu-system-x86_64', ...qemuArgs(vm, accel, pidfile, incoming)]);
  if (r.code !== 0) {
    const msg = r.stderr.trim() || `exit ${r.code}`;
    writeFileSync(errFile, msg);
    throw new Error(`QEMU did not start ${vm.name} (${accel}): ${msg.split('\n').slice(-3).join(' | ')}`);
  }
  return Number(readFileSync(pidfile, 'utf8').trim());
}

/** Starts a VM's QEMU with its SSH on the first free port from `from` (sets vm.port) and returns QEMU's pid. A
 * port free when looked at may be another lab's a moment later (two labs coming up at once, as the test suite's two
 * processes do): QEMU then refuses the forwarding rule, and the VM tries the next free port. */
export async function startOnFreePort(vm: Vm, accel: 'kvm' | 'tcg', incoming?: string, from = 2222): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    vm.port = (await pickPorts(1, from))[0];
    try {
      return startQemu(vm, accel, incoming);
    } catch (e) {
      if (attempt >= 5 || !/Could not set up host forwarding rule/.test((e as Error).message)) throw e;
    }
  }
}

export function stopQemu(pid: number) {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(pid); i++) run(['sleep', '0.1']);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function overlay(base: string, file: string) {
  rmSync(file, { force: true });
  must(['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, file]);
}

/** KVM is used only if a guest really boots with it; the verdict is cached per kernel and CPU. */
export async function chooseAccel(base: string, log: Log): Promise<{ accel: 'kvm' | 'tcg'; note: string }> {
  if (process.env.KVMFORGE_ACCEL === 'tcg') return { accel: 'tcg', note: 'TCG (forced by KVMFORGE_ACCEL=tcg)' };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', note: 'TCG software emulation: no /dev/kvm' };
  const key = createHash('sha256')
    .update(must(['uname', '-r']))
    .update(
      readFileSync('/proc/cpuinfo', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('model name')) ?? '',
    )
    .digest('hex')
    .slice(0, 12);
  const cache = join(cacheDir(), `accel-${key}.json`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8'));
  log('probing KVM: booting a guest with it');
  const probe: Vm = {
    name: 'kvm-probe',
    port: 0, // taken as it starts
    pid: 0,
    overlay: join(labDir(), 'kvm-probe.qcow2'),
    monitor: join(labDir(), 'kvm-probe.mon'),
    console: join(labDir(), 'kvm-probe.console'),
    memory: 1024,
    cpus: 1,
    pristine: false,
  };
  overlay(base, probe.overlay);
  let verdict: { accel: 'kvm' | 'tcg'; note: string };
  try {
    probe.pid = await startOnFreePort(probe, 'kvm', undefined, 2400);
    await new Promise((r) => setTimeout(r, 3000));
    if (!alive(probe.pid)) throw new Error('QEMU exited at once');
    await waitSsh(probe, 40_000);
    verdict = { accel: 'kvm', note: 'KVM: a guest booted with it' };
  } catch (e) {
    verdict = {
      accel: 'tcg',
      note:
        `TCG software emulation: /dev/kvm exists but a guest does not boot with it ` +
        `(${(e as Error).message.replace(/\s*\n\s*/g, ' ').slice(0, 200)})`,
    };
  } finally {
    stopQemu(probe.pid);
    rmSync(probe.overlay, { force: true });
  }
  writeFileSync(cache, JSON.stringify(verdict));
  return verdict;
}

export function checkResources(n: number, memory: number, flavours: Flavour[] = ['full']) {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const avail = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)?.[1] ?? 0) / 1024;
  const need = n * (memory + 256);
  if (avail < need)
    throw new Error(
      `not enough memory: ${n} VM(s) × ${memory} MiB need about ${need} MiB, ${Math.floor(avail)} MiB are ` +
        `available (use --hosts or --memory)`,
    );
  const fs = statfsSync(labDir());
  const freeGiB = (fs.bavail * fs.bsize) / 2 ** 30;
  const needGiB = flavours.every((f) => existsSync(baseImagePath(f))) ? n * 1 : 4 * flavours.length + n;
  if (freeGiB < needGiB)
    throw new Error(`not enough disk in ${labDir()}: ${freeGiB.toFixed(1)} GiB free, need about ${needGiB} GiB`);
}

/** OpenSSH arguments that reach a lab VM as the lab user, its host key checked against `knownHosts`. */
export function labSshArgs(port: number, knownHosts: string): string[] {
  return [
    '-i',
    labKey(),
    '-p',
    String(port),
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'IdentitiesOnly=yes',
    'kvmforge@127.0.0.1',
  ];
}

export { labKey };
