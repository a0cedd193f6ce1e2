// sriov: virtual functions per physical NIC through sysfs (sriov_numvfs), kept across reboots by a udev
// rule; the thesis's way for old drivers (modprobe igb max_vfs=7) as an option. The VFs are then
// passed to VMs by the domains step (nics: [{ vf: … }] or hostdevs).
import { HostError } from '../src/core/errors.ts';
import { planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOf } from '../src/core/vars.ts';
import { strictFact, type Change, type Host, type Step, type VarSpec } from '../src/core/types.ts';

export const UDEV_RULES = '/etc/udev/rules.d/70-kvmforge-sriov.rules';
export const MODPROBE_CONF = '/etc/modprobe.d/kvmforge-sriov.conf';

interface Params {
  vfs: [string, number][];
  maxVfs: [string, number][];
}

export function udevRules(vfs: [string, number][]): string {
  const rules = vfs.map(
    ([nic, n]) => `ACTION=="add", SUBSYSTEM=="net", KERNEL=="${nic}", ATTR{device/sriov_numvfs}="${n}"`,
  );
  return `# kvmforge sriov: virtual functions at every boot\n${rules.join('\n')}\n`;
}

export function modprobeConf(maxVfs: [string, number][]): string {
  return (
    `# kvmforge sriov: VFs for drivers without sriov_numvfs (the thesis: igb max_vfs=7, ixgbe ` +
    `max_vfs=20)\n${maxVfs.map(([mod, n]) => `options ${mod} max_vfs=${n}`).join('\n')}\n`
  );
}

/** One probe: each NIC's current and supported VF count ('missing' / 'no-sriov' when it can't have any). */
export function probeScript(nics: string[]): string {
  return nics
    .map(
      (n) =>
        sh`d=/sys/class/net/${n}/device; if [ ! -e /sys/class/net/${n} ]; then echo ${n} missing; elif [ ! -e ` +
        sh`"$d/sriov_totalvfs" ]; then echo ${n} no-sriov; else echo ${n} "$(cat "$d/sriov_numvfs")" "$(cat ` +
        sh`"$d/sriov_totalvfs")"; fi`,
    )
    .join('\n');
}

/** NIC → [current VFs, supported VFs], or ['missing'] / ['no-sriov']. */
export const vfCounts = (nics: string[]) =>
  strictFact(
    `sriov:${nics.join(',')}`,
    probeScript(nics),
    (out) =>
      new Map(
        out
          .trim()
          .split('\n')
          .map((l) => {
            const [nic, ...rest] = l.split(' ');
            return [nic, rest] as const;
          }),
      ),
  );

const vars: Record<string, VarSpec> = {
  sriov_vfs: {
    schema: {
      type: 'object',
      propertyNames: { pattern: '^[^\\s/]{1,15}$' },
      additionalProperties: { type: 'integer', minimum: 0, maximum: 256 },
    },
    default: {},
    defaultText: '{}: e.g. `{eth1: 7}`',
    description: 'NIC name → number of VFs, e.g. { eth1: 7 }.',
  },
  sriov_max_vfs: {
    schema: {
      type: 'object',
      propertyNames: { pattern: '^[a-z0-9_]+$' },
      additionalProperties: { type: 'integer', minimum: 0, maximum: 256 },
    },
    default: {},
    defaultText: '{}: e.g. `{igb: 7, ixgbe: 20}`',
    description: 'Driver → max_vfs module option, for old drivers (the thesis: { igb: 7, ixgbe: 20 }).',
  },
};

const listed = (host: Host) => ({
  vfs: Object.entries(varOf<Record<string, number>>(host, vars, 'sriov_vfs')),
  maxVfs: Object.entries(varOf<Record<string, number>>(host, vars, 'sriov_max_vfs')),
});

const step: Step<Params> = {
  name: 'sriov',
  description: 'SR-IOV virtual functions per NIC (sysfs now, a udev rule at boot; modprobe max_vfs for old drivers)',
  doc:
    'SR-IOV VFs: `sriov_numvfs` through sysfs now (via 0, as the kernel wants), a udev rule for every boot; the ' +
    "thesis's `modprobe igb max_vfs=7` way for old drivers. A NIC without SR-IOV, a missing NIC or too many VFs fail " +
    'the host before anything changes',
  vars,
  wanted(host) {
    const { vfs, maxVfs } = listed(host);
    return vfs.length || maxVfs.length ? true : 'no VFs asked for (sriov_vfs, sriov_max_vfs)';
  },
  params(host: Host) {
    const { vfs, maxVfs } = listed(host);
    for (const [nic] of vfs)
      if (nic.startsWith('-')) throw badVar(host, `sriov_vfs.${nic}`, `'${nic}' is not a NIC name`);
    return { vfs, maxVfs };
  },
  async plan(ctx, p) {
    const changes: Change[] = [];
    if (p.vfs.length) {
      const [seen] = await ctx.read(vfCounts(p.vfs.map(([n]) => n)));
      const problems: string[] = [];
      for (const [nic, want] of p.vfs) {
        const [cur, total] = seen.get(nic) ?? ['missing'];
        if (cur === 'missing') problems.push(`${nic} does not exist`);
        else if (cur === 'no-sriov')
          problems.push(
            `${nic} has no SR-IOV capability (no sriov_totalvfs in /sys/class/net/${nic}/device): a driver that ` +
              `needs max_vfs goes in sriov_max_vfs`,
          );
        else if (want > Number(total)) problems.push(`${nic} supports at most ${total} VFs, ${want} asked`);
      }
      if (problems.length) throw new HostError(`sriov: ${problems.join('; ')}`);
      for (const [nic, want] of p.vfs) {
        const cur = Number(seen.get(nic)![0]);
        if (cur === want) continue;
        // the kernel only changes a non-zero count by way of 0
        changes.push({
          kind: 'script',
          summary: `${nic}: VFs ${cur} → ${want}`,
          diff: `sriov_numvfs ${cur} → ${want}`,
          script: sh`f=/sys/class/net/${nic}/device/sriov_numvfs; echo 0 > "$f"; echo ${want} > "$f"`,
        });
      }
      const rules = await planFile(ctx, { path: UDEV_RULES, content: udevRules(p.vfs) });
      if (rules) changes.push(rules);
    }
    if (p.maxVfs.length) {
      const conf = await planFile(ctx, { path: MODPROBE_CONF, content: modprobeConf(p.maxVfs) });
      if (conf)
        changes.push({
          ...conf,
          warning:
            `${p.maxVfs.map(([m]) => m).join(', ')}: max_vfs takes effect when the driver is next loaded ` +
            `(reboot, or rmmod/modprobe off the NIC you are connected through)`,
        });
    }
    return changes;
  },
};

export default step;
