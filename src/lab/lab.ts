// `kvmforge lab`: up, status, ssh, reset, down — disposable Debian VMs and the inventory that reaches them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from './proc.ts';
import { ensureGolden, resumeIncoming, type Golden } from './golden.ts';
import type { Flavour } from './paths.ts';
import { syncClock } from './agent.ts';
import {
  alive,
  chooseAccel,
  checkResources,
  ensureImage,
  hmp,
  hostKeyOfImage,
  labDir,
  labKey,
  labSshArgs,
  overlay,
  readState,
  requireTools,
  startOnFreePort,
  stopQemu,
  waitSsh,
  writeState,
  type Devices,
  type LabState,
  type Log,
  type Vm,
} from './vm.ts';

export interface UpOptions {
  hosts: number;
  memory: number;
  cpus: number;
  inventoryDir: string;
  bootTimeoutMs?: number;
  /** false: every VM boots cold (no golden state) */
  golden?: boolean;
  /** VMs (lab2, …) that get an emulated IDE disk and e1000 NIC instead of virtio */
  emulated?: string[];
  /** VMs made from the plain image: a server that never had the distribution's libvirt or QEMU */
  plain?: string[];
  /** VMs with a second NIC on the same network (eth1), e.g. for a bond */
  secondNic?: string[];
}

/** The lab inventory's VM, one line (the tests that bring their own domains_vms drop this line): a small tuned
 * guest on br0 that really starts under the lab VM's libvirt (software-emulated there), so the quick start's
 * `apply` renders, validates, defines and starts a domain. */
const LAB_GUEST =
  'domains_vms: [{ name: lab-vm, profile: tuned, memory: 64, vcpus: 1, graphics: false, start: true, ' +
  'nics: [{ bridge: br0 }], disks: [{ path: /var/lib/libvirt/images/lab-vm.qcow2, size: 64M }] }]';

const devicesOf = (o: UpOptions, name: string): Devices => (o.emulated?.includes(name) ? 'emulated' : 'virtio');
const imageOf = (o: UpOptions, name: string): Flavour => (o.plain?.includes(name) ? 'plain' : 'full');
const nicsOf = (o: UpOptions, name: string) => (o.secondNic?.includes(name) ? 2 : 1);
/** What a VM is made of: a golden state is per machine, and a running lab is reused only when every VM matches. */
const machineOf = (v: Pick<Vm, 'devices' | 'image' | 'nics'>) =>
  `${v.devices ?? 'virtio'}/${v.image ?? 'full'}/${v.nics ?? 1}`;

export async function labUp(o: UpOptions, log: Log): Promise<LabState> {
  requireTools();
  const old = readState();
  const running = old?.vms.filter((v) => alive(v.pid)) ?? [];
  const sameDevices = old?.vms.every(
    (v) =>
      machineOf(v) === machineOf({ devices: devicesOf(o, v.name), image: imageOf(o, v.name), nics: nicsOf(o, v.name) }),
  );
  if (old && running.length === old.vms.length && old.vms.length >= o.hosts && sameDevices) {
    log(`lab already up: ${old.vms.map((v) => `${v.name} (127.0.0.1:${v.port})`).join(', ')}`);
    writeInventory(old, o.inventoryDir);
    return old;
  }
  if (old) labDown(log);
  const names = Array.from({ length: o.hosts }, (_, i) => `lab${i + 1}`);
  const flavours = [...new Set(names.map((n) => imageOf(o, n)))];
  checkResources(o.hosts, o.memory, flavours);
  const bases = new Map(flavours.map((f) => [f, ensureImage(log, f)]));
  const { accel, note } = await chooseAccel(bases.values().next().value!, log);
  log(note);
  const dir = labDir();
  // ports are picked as each VM starts (startOnFreePort), not before the golden states: another lab coming up at
  // the same time must not be handed the same ones
  const vms: Vm[] = names.map((_, i) => ({
    name: `lab${i + 1}`,
    port: 0,
    pid: 0,
    overlay: join(dir, `lab${i + 1}.qcow2`),
    monitor: join(dir, `lab${i + 1}.mon`),
    console: join(dir, `lab${i + 1}.console.log`),
    memory: o.memory,
    cpus: o.cpus,
    pristine: false,
    devices: devicesOf(o, `lab${i + 1}`),
    image: imageOf(o, `lab${i + 1}`),
    nics: nicsOf(o, `lab${i + 1}`),
  }));
  const state: LabState = { accel, accelNote: note, hostKey: hostKeyOfImage(), vms };
  // one golden state per machine (a saved state only loads into the same devices, from the same image)
  const goldens = new Map<string, Golden | undefined>();
  for (const vm of vms) {
    const m = machineOf(vm);
    if (o.golden === false || goldens.has(m)) continue;
    try {
      goldens.set(
        m,
        await ensureGolden(bases.get(vm.image ?? 'full')!, accel, o.memory, o.cpus, vm, state.hostKey, log),
      );
    } catch (e) {
      goldens.set(m, undefined);
      log(`no golden state for ${m} (${(e as Error).message.split('\n')[0]}); booting cold`);
    }
  }
  for (const vm of vms) {
    const golden = goldens.get(machineOf(vm));
    overlay(golden?.disk ?? bases.get(vm.image ?? 'full')!, vm.overlay);
    vm.pid = await startOnFreePort(vm, accel, golden?.state);
    writeState(state);
  }
  const timeout = o.bootTimeoutMs ?? (accel === 'kvm' ? 120_000 : 420_000);
  try {
    await Promise.all(
      vms.map(async (vm) => {
        const golden = goldens.get(machineOf(vm));
        const t0 = Date.now();
        if (golden) await resumeIncoming(vm);
        await Promise.all([waitSsh(vm, timeout), golden && syncClock(vm)]);
        const ms = Date.now() - t0;
        const how = [
          golden ? 'resumed from the golden state' : 'cold boot',
          vm.devices === 'emulated' && 'emulated IDE disk and e1000 NIC',
          vm.image === 'plain' && 'plain image (no distro libvirt/QEMU)',
          (vm.nics ?? 1) > 1 && 'two NICs',
        ];
        log(
          `${vm.name}: SSH up after ${(ms / 1000).toFixed(1)} s ` +
            `(${[`127.0.0.1:${vm.port}`, ...how].filter(Boolean).join(', ')})`,
        );
        await hmp(vm.monitor, 'savevm pristine');
        vm.pristine = true;
      }),
    );
  } finally {
    writeState(state);
  }
  writeInventory(state, o.inventoryDir);
  return state;
}

export function writeInventory(state: LabState, dir: string) {
  mkdirSync(dir, { recursive: true });
  const kh = state.vms.map((v) => `[127.0.0.1]:${v.port} ${state.hostKey}`).join('\n') + '\n';
  writeFileSync(join(dir, 'lab-known_hosts'), kh);
  const lines = [
    '# yaml-language-server: $schema=schema.json',
    '# Generated by `kvmforge lab up`; rewritten on every lab up. Put your own vars in another inventory.',
    'all:',
    '  children:',
    '    lab:',
    '      vars:',
    '        ansible_user: kvmforge',
    '        ansible_become: true',
    `        ansible_ssh_private_key_file: ${labKey()}`,
    '        kvmforge_known_hosts_file: lab-known_hosts',
    '        hugepages_count: "10%"    # lab VMs are small; the thesis default (1024 pages) needs more than 3 GiB',
    `        ${LAB_GUEST}`,
    '      hosts:',
    ...state.vms.flatMap((v) => [
      `        ${v.name}:`,
      '          ansible_host: 127.0.0.1',
      `          ansible_port: ${v.port}`,
    ]),
  ];
  writeFileSync(join(dir, 'lab.yaml'), lines.join('\n') + '\n');
}

export function labDown(log: Log) {
  const dir = labDir();
  const state = readState();
  const pids = new Set<number>(state?.vms.map((v) => v.pid) ?? []);
  // stale VMs of a killed run: their pid files, checked against the command line
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.pid'))) {
    const pid = Number(readFileSync(join(dir, f), 'utf8').trim());
    if (pid && alive(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) pids.add(pid);
  }
  for (const pid of pids) {
    if (alive(pid)) {
      stopQemu(pid);
      log(`stopped QEMU pid ${pid}`);
    }
  }
  for (const f of readdirSync(dir)) {
    if (/\.(qcow2|pid|mon|console\.log|qemu\.log|known_hosts)$/.test(f) || f === 'state.json')
      rmSync(join(dir, f), { force: true });
  }
  log('lab down');
}

export function labStatus(): string {
  const s = readState();
  if (!s) return 'no lab (kvmforge lab up starts one)';
  const rows = s.vms.map(
    (v) =>
      `${v.name.padEnd(6)} ${alive(v.pid) ? 'running' : 'stopped'}  pid ${v.pid}  ssh 127.0.0.1:${v.port}  ` +
      `${v.memory} MiB × ${v.cpus} CPU  ` +
      `${v.devices === 'emulated' ? 'IDE disk + e1000 NIC' : 'virtio disk + NIC'}${(v.nics ?? 1) > 1 ? ' ×2' : ''} ` +
      ` ${v.image === 'plain' ? 'plain image' : 'image with libvirt+QEMU'}  ` +
      `${v.pristine ? 'pristine snapshot saved' : 'no snapshot'}`,
  );
  return [`accelerator: ${s.accelNote}`, ...rows].join('\n');
}

function findVm(name: string): { state: LabState; vm: Vm } {
  const state = readState();
  const vm = state?.vms.find((v) => v.name === name);
  if (!state || !vm) throw new Error(`no lab VM '${name}' (kvmforge lab status lists them)`);
  if (!alive(vm.pid)) throw new Error(`lab VM '${name}' is not running (kvmforge lab up)`);
  return { state, vm };
}

/** Back to the state saved right after first boot, without a cold boot. */
export async function labReset(name: string, log: Log): Promise<number> {
  const { vm } = findVm(name);
  if (!vm.pristine) throw new Error(`${name} has no pristine snapshot`);
  const t0 = Date.now();
  const out = await hmp(vm.monitor, 'loadvm pristine');
  if (/Error|error/.test(out)) throw new Error(`loadvm failed on ${name}: ${out}`);
  await Promise.all([waitSsh(vm, 60_000), syncClock(vm)]);
  const ms = Date.now() - t0;
  log(`${name}: reset to pristine in ${(ms / 1000).toFixed(1)} s`);
  return ms;
}

export function sshArgs(name: string, inventoryDir: string): string[] {
  const { vm } = findVm(name);
  return labSshArgs(vm.port, resolve(inventoryDir, 'lab-known_hosts'));
}

export function labSsh(name: string, inventoryDir: string, command: string[]): number {
  if (!existsSync(join(inventoryDir, 'lab-known_hosts'))) writeInventory(readState()!, inventoryDir);
  return run(['ssh', ...sshArgs(name, inventoryDir), ...command], { interactive: true }).code;
}
