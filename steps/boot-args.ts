// boot-args: kernel command-line arguments, written the way each boot loader wants them, then a
// reboot; /proc/cmdline is the proof (the runner re-plans after the reboot and fails on a mismatch).
import { HostError } from '../src/core/errors.ts';
import { compareFile, parseFileProbe, fileProbe } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOr } from '../src/core/vars.ts';
import type { Change, Host, Step, StepContext } from '../src/core/types.ts';

export const THESIS_ARGS = ['cgroup_disable=cpu,cpuset,memory'];
export const DROPIN = '/etc/default/grub.d/80-kvmforge.cfg';
const ARG = /^[A-Za-z0-9_.,:=/+@-]+$/;

interface Params {
  add: string[];
  remove: string[];
}

const keyOf = (a: string) => a.split('=')[0];

export function dropinText(p: Params): string {
  const lines = ['# kvmforge boot-args: sourced by update-grub after /etc/default/grub', `GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${p.add.join(' ')}"`];
  for (const r of p.remove) lines.push(`GRUB_CMDLINE_LINUX="$(echo " $GRUB_CMDLINE_LINUX " | sed 's| ${r} | |g; s|^ *||; s| *$||')"`);
  return lines.join('\n') + '\n';
}

/** What /proc/cmdline still lacks or still has. */
export function cmdlineGaps(cmdline: string, p: Params): { missing: string[]; extra: string[] } {
  const words = cmdline.split(/\s+/);
  return { missing: p.add.filter((a) => !words.includes(a)), extra: p.remove.filter((r) => words.includes(r)) };
}

export function cgroupWarning(p: Params, cgroup2: boolean): string | undefined {
  const cg = p.add.find((a) => a.startsWith('cgroup_disable='));
  if (!cg || !cgroup2 || !/memory/.test(cg)) return undefined;
  return `${cg} on a cgroup v2 host turns off memory (and CPU) accounting that systemd and libvirt rely on (memory limits, <memtune>, CPUWeight). cgroup-v2-friendly alternative: keep cgroups and set the VM's priority with the domains step (<vcpusched>, <shares>) or the tune command; or remove this arg with boot_args_add: [].`;
}

async function planGrubDefault(ctx: StepContext, p: Params): Promise<Change[]> {
  // CentOS 7 style: edit GRUB_CMDLINE_LINUX in /etc/default/grub itself, then grub2-mkconfig
  const state = parseFileProbe(await ctx.probe(fileProbe('/etc/default/grub')));
  if (!state.exists) throw new HostError('boot-args: /etc/default/grub not found');
  const text = state.content!;
  const m = /^GRUB_CMDLINE_LINUX="([^"]*)"$/m.exec(text);
  const words = (m?.[1] ?? '').split(/\s+/).filter(Boolean).filter((w) => !p.remove.includes(w) && !p.add.some((a) => keyOf(a) === keyOf(w) && a !== w));
  for (const a of p.add) if (!words.includes(a)) words.push(a);
  const line = `GRUB_CMDLINE_LINUX="${words.join(' ')}"`;
  const next = m ? text.replace(m[0], line) : `${text.trimEnd()}\n${line}\n`;
  const c = compareFile({ path: '/etc/default/grub', content: next, mode: state.mode, owner: state.owner }, state);
  if (!c) return [];
  const cfg = (await ctx.probe('for f in /boot/efi/EFI/*/grub.cfg /boot/grub2/grub.cfg; do [ -e "$f" ] && { echo "$f"; break; }; done; true')).trim() || '/boot/grub2/grub.cfg';
  return [c, { summary: `grub2-mkconfig -o ${cfg}`, script: sh`grub2-mkconfig -o ${cfg}` }];
}

const step: Step<Params | undefined> = {
  name: 'boot-args',
  description: 'Kernel command-line arguments (GRUB drop-in, grubby on BLS, /etc/default/grub on CentOS 7); reboots and checks /proc/cmdline',
  vars: {
    boot_args_enabled: { type: 'boolean', description: 'Run this step (default true).' },
    boot_args_add: { type: 'array', items: { type: 'string', pattern: ARG.source }, description: `Arguments to add (default: ${THESIS_ARGS.join(' ')}, the thesis's).` },
    boot_args_remove: { type: 'array', items: { type: 'string', pattern: ARG.source }, description: 'Arguments to remove (default none).' },
    boot_args_iommu: { type: 'boolean', description: 'Add intel_iommu=on iommu=pt for PCI passthrough (default false).' },
  },
  params(host: Host) {
    if (!varOr(host, 'boot_args_enabled', true)) return undefined;
    const add = [...varOr<string[]>(host, 'boot_args_add', THESIS_ARGS)];
    const remove = varOr<string[]>(host, 'boot_args_remove', []);
    for (const [name, list] of [['boot_args_add', add], ['boot_args_remove', remove]] as const) {
      for (const a of list) if (!ARG.test(a)) throw badVar(host, name, `'${a}' is not one kernel argument (no spaces, quotes or shell characters)`);
    }
    if (varOr(host, 'boot_args_iommu', false)) add.push('intel_iommu=on', 'iommu=pt');
    const gib = varOr(host, 'hugepages_1g_count', 0);
    if (gib > 0) add.push('hugepagesz=1G', `hugepages=${gib}`);
    const both = add.filter((a) => remove.includes(a));
    if (both.length) throw badVar(host, 'boot_args_remove', `'${both[0]}' is both added and removed`);
    const uniq = [...new Set(add)];
    return uniq.length || remove.length ? { add: uniq, remove } : undefined;
  },
  async plan(ctx, p) {
    const { os, bootLoader, cmdline, mounts } = ctx.facts;
    const params = p!;
    let changes: Change[];
    if (bootLoader === 'grub-bls' && os.family === 'rhel') {
      const info = await ctx.probe('grubby --info=DEFAULT');
      const args = (/^args="([^"]*)"/m.exec(info)?.[1] ?? '').split(/\s+/);
      const add = params.add.filter((a) => !args.includes(a));
      const remove = params.remove.filter((r) => args.includes(r));
      changes = [];
      if (add.length || remove.length) {
        changes.push({
          summary: `grubby: ${[...add.map((a) => `+${a}`), ...remove.map((r) => `-${r}`)].join(' ')}`,
          diff: [...add.map((a) => `+ ${a}`), ...remove.map((r) => `- ${r}`)].join('\n'),
          script: sh`grubby --update-kernel=ALL ${add.length ? [`--args=${add.join(' ')}`] : []} ${remove.length ? [`--remove-args=${remove.join(' ')}`] : []}`,
        });
      }
    } else if (bootLoader === 'grub' && os.family === 'debian') {
      const state = parseFileProbe(await ctx.probe(fileProbe(DROPIN)));
      const file = compareFile({ path: DROPIN, content: dropinText(params) }, state);
      changes = file ? [file, { summary: 'update-grub', script: 'update-grub 2>&1' }] : [];
    } else if (bootLoader === 'grub' && os.family === 'rhel') {
      changes = await planGrubDefault(ctx, params);
    } else {
      throw new HostError(`boot-args: unsupported boot set-up (${os.prettyName}, boot loader ${bootLoader}): supported are Debian/Ubuntu GRUB, RHEL 8/9 BLS (grubby), CentOS 7 GRUB`);
    }
    const gaps = cmdlineGaps(cmdline, params);
    if (changes.length || gaps.missing.length || gaps.extra.length) {
      changes.push({
        summary: `reboot: /proc/cmdline ${[...gaps.missing.map((a) => `lacks ${a}`), ...gaps.extra.map((a) => `still has ${a}`)].join(', ') || 'will change'}`,
        reboot: true,
      });
    }
    const warning = cgroupWarning(params, mounts.some((m) => m.fstype === 'cgroup2' && m.target === '/sys/fs/cgroup'));
    if (warning && changes.length) changes[0].warning = warning;
    return changes;
  },
};
export default step;
