// boot-args: kernel command-line arguments, written the way each boot loader wants them, then a
// reboot; /proc/cmdline is the proof (the runner re-plans after the reboot and fails on a mismatch).
import { HostError } from '../src/core/errors.ts';
import { compareFile, fileState, planFile } from '../src/core/file.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varOf } from '../src/core/vars.ts';
import {
  fact,
  strictFact,
  type Change,
  type Host,
  type Step,
  type StepContext,
  type VarSpec,
} from '../src/core/types.ts';
import { bootLoader, cmdline, mounts, osRelease } from '../src/facts/host.ts';

/** grubby's view of the default entry (RHEL BLS). */
export const grubbyDefault = strictFact('grubby-default', 'grubby --info=DEFAULT', (out) => out);
/** Where grub2-mkconfig writes (EFI or BIOS). */
export const grub2Cfg = fact(
  'grub2-cfg',
  'for f in /boot/efi/EFI/*/grub.cfg /boot/grub2/grub.cfg; do [ -e "$f" ] && { echo "$f"; break; }; done; true',
  (out) => out.trim() || '/boot/grub2/grub.cfg',
);

export const THESIS_ARGS = ['cgroup_disable=cpu,cpuset,memory'];
export const DROPIN = '/etc/default/grub.d/80-kvmforge.cfg';
const ARG = /^[A-Za-z0-9_.,:=/+@-]+$/;

interface Params {
  add: string[];
  remove: string[];
}

const keyOf = (a: string) => a.split('=')[0];

export function dropinText(p: Params): string {
  const lines = [
    '# kvmforge boot-args: sourced by update-grub after /etc/default/grub',
    `GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ${p.add.join(' ')}"`,
  ];
  for (const r of p.remove)
    lines.push(`GRUB_CMDLINE_LINUX="$(echo " $GRUB_CMDLINE_LINUX " | sed 's| ${r} | |g; s|^ *||; s| *$||')"`);
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
  return (
    `${cg} on a cgroup v2 host turns off memory (and CPU) accounting that systemd and libvirt rely on (memory ` +
    `limits, <memtune>, CPUWeight). cgroup-v2-friendly alternative: keep cgroups and set the VM's priority with ` +
    `the domains step (<vcpusched>, <shares>) or the tune command; or remove this arg with boot_args_add: [].`
  );
}

async function planGrubDefault(ctx: StepContext, p: Params): Promise<Change[]> {
  // CentOS 7 style: edit GRUB_CMDLINE_LINUX in /etc/default/grub itself, then grub2-mkconfig
  const [state] = await ctx.read(fileState('/etc/default/grub'));
  if (!state.exists) throw new HostError('boot-args: /etc/default/grub not found');
  const text = state.content!;
  const m = /^GRUB_CMDLINE_LINUX="([^"]*)"$/m.exec(text);
  const words = (m?.[1] ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .filter((w) => !p.remove.includes(w) && !p.add.some((a) => keyOf(a) === keyOf(w) && a !== w));
  for (const a of p.add) if (!words.includes(a)) words.push(a);
  const line = `GRUB_CMDLINE_LINUX="${words.join(' ')}"`;
  const next = m ? text.replace(m[0], line) : `${text.trimEnd()}\n${line}\n`;
  const c = compareFile({ path: '/etc/default/grub', content: next, mode: state.mode, owner: state.owner }, state);
  if (!c) return [];
  const [cfg] = await ctx.read(grub2Cfg);
  return [c, { kind: 'script', summary: `grub2-mkconfig -o ${cfg}`, script: sh`grub2-mkconfig -o ${cfg}` }];
}

const vars: Record<string, VarSpec> = {
  boot_args_add: {
    schema: { type: 'array', items: { type: 'string', pattern: ARG.source } },
    default: THESIS_ARGS,
    defaultText: "`cgroup_disable=cpu,cpuset,memory`, the thesis's",
    description: 'Arguments to add.',
  },
  boot_args_remove: {
    schema: { type: 'array', items: { type: 'string', pattern: ARG.source } },
    default: [],
    description: 'Arguments to remove.',
  },
  boot_args_iommu: {
    schema: { type: 'boolean' },
    default: false,
    defaultText: 'false: adds `intel_iommu=on iommu=pt`',
    description: 'Add intel_iommu=on iommu=pt for PCI passthrough.',
  },
  // declared here, where it is applied (1 GiB pages can only be reserved on the kernel command line)
  hugepages_1g_count: {
    schema: { type: 'integer', minimum: 0 },
    default: 0,
    defaultText: '0: 1 GiB pages go on the kernel command line',
    description: '1 GiB hugepages, reserved at boot by boot-args (hugepagesz=1G hugepages=N).',
  },
};

function argsOf(host: Host): Params {
  const add = [...varOf<string[]>(host, vars, 'boot_args_add')];
  const remove = varOf<string[]>(host, vars, 'boot_args_remove');
  for (const [name, list] of [
    ['boot_args_add', add],
    ['boot_args_remove', remove],
  ] as const) {
    for (const a of list)
      if (!ARG.test(a))
        throw badVar(host, name, `'${a}' is not one kernel argument (no spaces, quotes or shell characters)`);
  }
  if (varOf(host, vars, 'boot_args_iommu')) add.push('intel_iommu=on', 'iommu=pt');
  const gib = varOf<number>(host, vars, 'hugepages_1g_count');
  if (gib > 0) add.push('hugepagesz=1G', `hugepages=${gib}`);
  const both = add.filter((a) => remove.includes(a));
  if (both.length) throw badVar(host, 'boot_args_remove', `'${both[0]}' is both added and removed`);
  return { add: [...new Set(add)], remove };
}

const step: Step<Params> = {
  name: 'boot-args',
  description:
    'Kernel command-line arguments (GRUB drop-in, grubby on BLS, /etc/default/grub on CentOS 7); reboots and checks ' +
    '/proc/cmdline',
  doc:
    'kernel arguments: Debian/Ubuntu a drop-in `/etc/default/grub.d/80-kvmforge.cfg` + `update-grub`; RHEL 8/9 ' +
    '(BLS) `grubby --update-kernel=ALL`; CentOS 7 `GRUB_CMDLINE_LINUX` in `/etc/default/grub` + `grub2-mkconfig`. ' +
    'Then a reboot; after it `/proc/cmdline` must show the change or the step fails',
  vars,
  wanted(host) {
    const p = argsOf(host);
    return p.add.length || p.remove.length ? true : 'no arguments to add or remove';
  },
  params: argsOf,
  async plan(ctx, p) {
    const [os, loader, line, mnt] = await ctx.read(osRelease, bootLoader, cmdline, mounts);
    const params = p;
    let changes: Change[];
    if (loader === 'grub-bls' && os.family === 'rhel') {
      const [info] = await ctx.read(grubbyDefault);
      const args = (/^args="([^"]*)"/m.exec(info)?.[1] ?? '').split(/\s+/);
      const add = params.add.filter((a) => !args.includes(a));
      const remove = params.remove.filter((r) => args.includes(r));
      changes = [];
      if (add.length || remove.length) {
        changes.push({
          kind: 'script',
          summary: `grubby: ${[...add.map((a) => `+${a}`), ...remove.map((r) => `-${r}`)].join(' ')}`,
          diff: [...add.map((a) => `+ ${a}`), ...remove.map((r) => `- ${r}`)].join('\n'),
          script:
            sh`grubby --update-kernel=ALL ${add.length ? [`--args=${add.join(' ')}`] : []} ` +
            sh`${remove.length ? [`--remove-args=${remove.join(' ')}`] : []}`,
        });
      }
    } else if (loader === 'grub' && os.family === 'debian') {
      const file = await planFile(ctx, { path: DROPIN, content: dropinText(params) });
      changes = file ? [file, { kind: 'script', summary: 'update-grub', script: 'update-grub 2>&1' }] : [];
    } else if (loader === 'grub' && os.family === 'rhel') {
      changes = await planGrubDefault(ctx, params);
    } else {
      throw new HostError(
        `boot-args: unsupported boot set-up (${os.prettyName}, boot loader ${loader}): supported are Debian/Ubuntu ` +
          `GRUB, RHEL 8/9 BLS (grubby), CentOS 7 GRUB`,
      );
    }
    const gaps = cmdlineGaps(line, params);
    if (changes.length || gaps.missing.length || gaps.extra.length) {
      changes.push({
        kind: 'reboot',
        summary: `reboot: /proc/cmdline ${
          [...gaps.missing.map((a) => `lacks ${a}`), ...gaps.extra.map((a) => `still has ${a}`)].join(', ') ||
          'will change'
        }`,
      });
    }
    const warning = cgroupWarning(
      params,
      mnt.some((m) => m.fstype === 'cgroup2' && m.target === '/sys/fs/cgroup'),
    );
    if (warning && changes.length) changes[0].warning = warning;
    return changes;
  },
};
export default step;
