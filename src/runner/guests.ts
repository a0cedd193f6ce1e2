// Reboots with running VMs: before kvmforge reboots a host it lists the host's running libvirt domains, and
// `reboot_running_vms` says what happens to them — refuse (default: the host fails before anything is
// changed), shutdown (ACPI, then fail — never destroy — for guests that don't stop), managedsave (saved to
// disk, restored after the boot) or migrate (live, to `reboot_migrate_to`, and back afterwards). After the
// reboot every guest that was running runs again, or the step fails naming the ones that don't.
import { ConfigError, HostError, type Problem } from '../core/errors.ts';
import { quote } from '../core/sh.ts';
import { fact, type Host, type Transport } from '../core/types.ts';
import { qemuVersion } from '../facts/host.ts';
import type { HostSession } from './session.ts';

export const POLICIES = ['refuse', 'shutdown', 'managedsave', 'migrate'] as const;
export type Policy = (typeof POLICIES)[number];

const VIRSH = 'virsh -q -c qemu:///system';

/** The host's running libvirt domains (none when there is no libvirt). */
export const runningGuests = fact(
  'running-guests',
  `if command -v virsh >/dev/null 2>&1; then ${VIRSH} list --name --state-running 2>/dev/null; fi; true`,
  (o) =>
    o
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
);

export interface GuestPolicy {
  policy: Policy;
  shutdownTimeoutS: number;
  migrateTo?: string;
  migrateBack: boolean;
}

export function policyOf(host: Host): GuestPolicy {
  return {
    policy: (host.vars.reboot_running_vms as Policy | undefined) ?? 'refuse',
    shutdownTimeoutS: Number(host.vars.reboot_vm_shutdown_timeout ?? 120),
    migrateTo: host.vars.reboot_migrate_to as string | undefined,
    migrateBack: host.vars.reboot_migrate_back !== false,
  };
}

/** Bad input before any connection: a migrate target that is not in the inventory, or is the host itself. */
export function checkPolicies(hosts: Host[], inventory: Host[]): Problem[] {
  const problems: Problem[] = [];
  for (const h of hosts) {
    const p = policyOf(h);
    const at = (k: string) => ({ ...(h.varPos[k] ?? h.pos), key: `${h.name}.${k}` });
    if (p.policy === 'migrate' && !p.migrateTo)
      problems.push({ ...at('reboot_running_vms'), message: 'migrate needs reboot_migrate_to: an inventory host' });
    if (p.migrateTo !== undefined) {
      if (!inventory.some((x) => x.name === p.migrateTo))
        problems.push({ ...at('reboot_migrate_to'), message: `'${p.migrateTo}' is not a host of the inventory` });
      else if (p.migrateTo === h.name)
        problems.push({ ...at('reboot_migrate_to'), message: 'a host cannot migrate its guests to itself' });
    }
  }
  return problems;
}

/** One line for the plan and for a refusal: the guests and what the policy does to them. */
export function describeGuests(guests: string[], p: GuestPolicy): string {
  const list = guests.join(', ');
  switch (p.policy) {
    case 'refuse':
      return (
        `running VMs would be stopped by the reboot: ${list} — refused (reboot_running_vms: refuse). Choose ` +
        'reboot_running_vms: shutdown, managedsave or migrate (with reboot_migrate_to), or stop them first'
      );
    case 'shutdown':
      return `running VMs ${list}: shut down (ACPI, up to ${p.shutdownTimeoutS} s) before the reboot, started after it`;
    case 'managedsave':
      return `running VMs ${list}: saved to disk (managedsave) before the reboot, restored after it`;
    case 'migrate':
      return (
        `running VMs ${list}: migrated live to ${p.migrateTo} before the reboot` +
        (p.migrateBack ? ', and back after it' : '')
      );
  }
}

/** What to undo after the reboot. */
export interface Parked {
  policy: GuestPolicy;
  guests: string[];
}

async function must(t: Transport, script: string, what: string, timeoutMs = 300_000): Promise<string> {
  const r = await t.exec(script, { sudo: true, timeoutMs });
  if (r.code !== 0) throw new HostError(`${what}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}`);
  return r.stdout;
}

function migrateScript(guests: string[], uri: string): string {
  return guests
    .map((g) => `${VIRSH} migrate --live --persistent --undefinesource ${quote(g)} ${quote(uri)}`)
    .join('\n');
}

/** The libvirt URI a host's guests migrate to: qemu+ssh to the target as the inventory reaches it. */
export function migrateUri(target: Host): string {
  const port = target.conn.port !== 22 ? `:${target.conn.port}` : '';
  return `qemu+ssh://${target.conn.user}@${target.conn.address}${port}/system`;
}

/** Before a reboot: the running guests parked as the policy says; throws (nothing rebooted) when it can't. */
export async function parkGuests(s: HostSession): Promise<Parked | undefined> {
  const [guests] = await s.read(runningGuests);
  if (!guests.length) return undefined;
  const p = policyOf(s.host);
  const t = s.transport;
  s.log(describeGuests(guests, p));
  if (p.policy === 'refuse') throw new HostError(describeGuests(guests, p));
  if (p.policy === 'shutdown') {
    await must(t, guests.map((g) => `${VIRSH} shutdown ${quote(g)}`).join('\n'), 'virsh shutdown');
    const left = (
      await must(
        t,
        `end=$(( $(date +%s) + ${p.shutdownTimeoutS} ))\n` +
          `while [ "$(date +%s)" -lt "$end" ]; do left=; for g in ${guests.map(quote).join(' ')}; do ` +
          `[ "$(${VIRSH} domstate "$g" 2>/dev/null)" = "shut off" ] || left="$left $g"; done; ` +
          '[ -z "$left" ] && break; sleep 2; done; echo "$left"',
        'waiting for the guests to shut down',
        (p.shutdownTimeoutS + 60) * 1000,
      )
    ).trim();
    if (left) {
      // never destroyed: the ones that stopped come back, the host is not rebooted
      const stopped = guests.filter((g) => !left.split(/\s+/).includes(g));
      if (stopped.length) await must(t, stopped.map((g) => `${VIRSH} start ${quote(g)}`).join('\n'), 'virsh start');
      throw new HostError(
        `guests did not shut down within ${p.shutdownTimeoutS} s: ${left.split(/\s+/).join(', ')} — not destroyed; ` +
          'the host was not rebooted (the others were started again)',
      );
    }
  } else if (p.policy === 'managedsave') {
    await must(t, guests.map((g) => `${VIRSH} managedsave ${quote(g)}`).join('\n'), 'virsh managedsave', 600_000);
  } else {
    const target = s.o.inventory?.find((h) => h.name === p.migrateTo);
    if (!target) throw new ConfigError([{ message: `reboot_migrate_to '${p.migrateTo}' is not in the inventory` }]);
    await must(t, migrateScript(guests, migrateUri(target)), `live migration to ${target.name}`, 1_800_000);
  }
  return { policy: p, guests };
}

/** After the reboot: the parked guests run again (started, restored, or migrated back), checked. */
export async function unparkGuests(s: HostSession, parked: Parked): Promise<void> {
  const { policy: p, guests } = parked;
  const t = s.transport;
  if (p.policy === 'migrate') {
    if (!p.migrateBack) return;
    const target = s.o.inventory!.find((h) => h.name === p.migrateTo)!;
    const back = await s.open(target);
    try {
      await must(back, migrateScript(guests, migrateUri(s.host)), `live migration back from ${target.name}`, 1_800_000);
    } finally {
      await back.close().catch(() => undefined);
    }
  } else {
    // autostart may have started some already; the others are started (a managed save is restored by start)
    await must(
      t,
      guests.map((g) => `[ "$(${VIRSH} domstate ${quote(g)})" = running ] || ${VIRSH} start ${quote(g)}`).join('\n'),
      'starting the guests again',
      600_000,
    );
  }
  s.facts.forget();
  const [now] = await s.read(runningGuests);
  const missing = guests.filter((g) => !now.includes(g));
  if (missing.length) throw new HostError(`after the reboot these guests do not run again: ${missing.join(', ')}`);
  s.log(`guests running again after the reboot: ${guests.join(', ')}`);
}

/** For migrate: the target must run the same QEMU (a migration between versions may fail or lose state). */
export async function checkMigrateTarget(s: HostSession): Promise<void> {
  const p = policyOf(s.host);
  if (p.policy !== 'migrate') return;
  const target = s.o.inventory?.find((h) => h.name === p.migrateTo);
  if (!target) throw new HostError(`reboot_migrate_to ${p.migrateTo} is not a host of this inventory`);
  const [mine] = await s.read(qemuVersion);
  const t = await s.open(target);
  try {
    const r = await t.exec('command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | head -1');
    const theirs = /version (\S+)/.exec(r.stdout)?.[1];
    if (theirs !== mine)
      throw new HostError(
        `reboot_migrate_to ${target.name} runs QEMU ${theirs ?? '(none)'}, this host ${mine ?? '(none)'}: ` +
          'live migration needs the same version; nothing was changed',
      );
  } finally {
    await t.close().catch(() => undefined);
  }
}
