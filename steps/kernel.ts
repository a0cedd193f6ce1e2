// kernel: a kernel built from source once (running config or a base, plus the thesis's options as a
// config fragment), packaged with the kernel's own bindeb-pkg, installed, booted once on trial with
// panic=N, and made the default only when it came up healthy. Until then the old kernel stays default.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, HostError } from '../src/core/errors.ts';
import { sh } from '../src/core/sh.ts';
import { badVar, varDir, varOf } from '../src/core/vars.ts';
import { fact, type BuildParams, type Change, type Host, type VarSpec } from '../src/core/types.ts';
import { bootLoader, osRelease } from '../src/facts/host.ts';
import {
  BUILD_VARS,
  buildParams,
  buildWanted,
  checkBuildHosts,
  COMMON_BUILD_VARS,
  installChange,
  specFor,
  type SourceBuildStep,
} from '../src/artifacts/kit.ts';
import { artifactDir, readMeta } from '../src/artifacts/artifacts.ts';
import { defaultEntry, entryOf, parseGrubCfg } from '../src/artifacts/grub.ts';
import { kernelRelease } from '../src/artifacts/recipes.ts';
import { PROJECT } from '../src/core/paths.ts';

export const THESIS_FRAGMENT = join(PROJECT, 'templates/kernel/virtualization.config');
export const HOLD_DROPIN = '/etc/default/grub.d/81-kvmforge-kernel.cfg';
export const CUSTOM_CFG = '/boot/grub/custom.cfg';
export const TRIAL_ID = 'kvmforge-trial';

interface Params {
  build: BuildParams;
  base: string;
  fragments: { path: string; content: string }[];
  debugInfo: boolean;
  trialArgs: string;
  panicS: number;
  bootTimeoutS: number;
}

const FRAGMENT_LINE = /^(\s*|#.*|CONFIG_[A-Za-z0-9_]+=(y|m|n|-?\d+|0x[0-9a-fA-F]+|"[^"\n]*"))$/;

/** Checks a config fragment line by line; problems name the fragment's file and line. */
export function checkFragment(path: string, text: string): ConfigError | undefined {
  const bad = text.split('\n').flatMap((l, i) =>
    FRAGMENT_LINE.test(l)
      ? []
      : [
          {
            file: path,
            line: i + 1,
            col: 1,
            message:
              `expected CONFIG_NAME=y|m|n|number|"string" or '# CONFIG_NAME is not set', got ` + `'${l.slice(0, 60)}'`,
          },
        ],
  );
  return bad.length ? new ConfigError(bad) : undefined;
}

function fragmentsOf(host: Host): Params['fragments'] {
  const base = varDir(host, 'kernel_config_fragments');
  const list = varOf<string[]>(host, vars, 'kernel_config_fragments');
  return list.map((f, i) => {
    const path = resolve(base, f);
    if (!existsSync(path))
      throw badVar(host, `kernel_config_fragments.${i}`, `expected a config fragment file; ${path} does not exist`);
    const content = readFileSync(path, 'utf8');
    const err = checkFragment(path, content);
    if (err) throw err;
    return { path, content };
  });
}

/** Writes the trial entry: the new kernel's own GRUB entry, renamed, with panic=N (and test args) added,
 * in a marked block of custom.cfg (41_custom sources it at boot; no update-grub needed). */
export function trialScript(
  release: string,
  panicS: number,
  extraArgs: string,
  grubCfg = '/boot/grub/grub.cfg',
  customCfg = CUSTOM_CFG,
): string {
  const add = [`panic=${panicS}`, extraArgs].filter(Boolean).join(' ');
  return [
    sh`rel=${release}; add=${add}; cfg=${customCfg}; grubcfg=${grubCfg}`,
    `block=$(awk -v rel="$rel" -v add="$add" '
      !inside && /menuentry / && index($0, "gnulinux-" rel "-advanced-") {
        inside=1; depth=0; print "menuentry \\"kvmforge trial: Linux " rel "\\" --id ${TRIAL_ID} {"; depth=1; next
      }
      inside { line=$0; sub(/^[ \\t]+/, "", line)
               if (line ~ /^linux/) line = line " " add
               if (line ~ /\\{[ \\t]*$/) depth++
               if (line ~ /^\\}/) { depth--; if (depth==0) { print "}"; inside=0; exit } }
               print "\\t" line }' "$grubcfg")`,
    'case "$block" in *linux*) ;; *) echo "no GRUB entry for $rel in $grubcfg" >&2; exit 1;; esac',
    'touch "$cfg"; tmp=$(mktemp "$cfg.kvmforge-XXXXXX")',
    'sed \'/^### kvmforge trial begin/,/^### kvmforge trial end/d\' "$cfg" > "$tmp"',
    'printf "### kvmforge trial begin\\n%s\\n### kvmforge trial end\\n" "$block" >> "$tmp"',
    'cp -p "$cfg" "$cfg.kvmforge.bak" 2>/dev/null || true; mv -f "$tmp" "$cfg"',
    `grub-reboot ${TRIAL_ID}`,
    'grub-editenv list',
  ].join('\n');
}

/** Run on the host after the trial reboot: is it the new kernel, from the trial entry, with KVM? */
export function trialCheck(release: string, panicS: number): string {
  return [
    sh`rel=${release}; now=$(uname -r)`,
    'if [ "$now" != "$rel" ]; then echo "came back on $now, not $rel: the trial boot failed and GRUB fell back; $rel ' +
      'stays installed, $now stays the default"; exit 1; fi',
    sh`grep -qw ${`panic=${panicS}`} /proc/cmdline || { echo "running $rel, but not from the trial entry (cmdline: ` +
      sh`$(cat /proc/cmdline))"; exit 1; }`,
    '[ -e /dev/kvm ] || { echo "running $rel but /dev/kvm is missing (no KVM: module not built, or no vmx/svm)"; ' +
      'exit 1; }',
    'grep -qE "^kvm(_intel|_amd)? " /proc/modules || [ -d /sys/module/kvm ] || { echo "running $rel but the kvm ' +
      'module is not loaded"; exit 1; }',
    'echo "$rel healthy: $(cat /proc/cmdline); kvm modules: $(grep -oE "^kvm[a-z_]*" /proc/modules | tr "\\n" " ")"',
  ].join('\n');
}

export function makeDefaultScript(entryPath: string): string {
  return [
    sh`grub-set-default ${entryPath}`,
    sh`cfg=${CUSTOM_CFG}; if [ -f "$cfg" ]; then tmp=$(mktemp "$cfg.kvmforge-XXXXXX"); sed '/^### kvmforge trial ` +
      sh`begin/,/^### kvmforge trial end/d' "$cfg" > "$tmp"; mv -f "$tmp" "$cfg"; fi`,
    'grub-editenv list',
  ].join('\n');
}

/** The running kernel's config (/boot/config-$(uname -r) or /proc/config.gz), '' when there is none. */
export const runningConfig = fact(
  'kernel-config',
  'cat "/boot/config-$(uname -r)" 2>/dev/null || { zcat /proc/config.gz 2>/dev/null; } || true',
  (out) => out,
);

/**
 * What GRUB and dpkg say about kernels on a Debian host: running, installed?, saved and configured default, grub.cfg.
 */
export const grubState = (release: string) =>
  fact(
    `grub-state:${release}`,
    sh`echo "running=$(uname -r)"; echo "installed=$(dpkg-query -W -f ${'${Status}'} ${`linux-image-${release}`} ` +
      sh`2>/dev/null || true)"; echo "saved=$(grub-editenv list 2>/dev/null | sed -n 's/^saved_entry=//p')"; echo ` +
      sh`"default=$( (. /etc/default/grub; for f in /etc/default/grub.d/*.cfg; do [ -e "$f" ] && . "$f"; done; ` +
      sh`echo "$GRUB_DEFAULT") 2>/dev/null)"; echo ---; cat /boot/grub/grub.cfg`,
    (probe) => {
      const [head, cfg] = [probe.slice(0, probe.indexOf('\n---\n')), probe.slice(probe.indexOf('\n---\n') + 5)];
      const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(head)?.[1].trim() ?? '';
      return {
        running: get('running'),
        installed: /install ok installed/.test(get('installed')),
        saved: get('saved'),
        dflt: get('default'),
        entries: parseGrubCfg(cfg),
      };
    },
  );

const vars: Record<string, VarSpec> = {
  ...BUILD_VARS('kernel'),
  ...COMMON_BUILD_VARS,
  kernel_config_base: {
    schema: { type: 'string' },
    default: 'running',
    defaultText: '`running`',
    description:
      "Base config: 'running' (the target's /boot/config-$(uname -r)), 'defconfig', 'tinyconfig', or a config file.",
  },
  kernel_config_fragments: {
    schema: { type: 'array', items: { type: 'string' } },
    default: [THESIS_FRAGMENT],
    defaultText: '`templates/kernel/virtualization.config`',
    description: 'Config fragments merged over the base with merge_config.sh (the thesis options).',
  },
  kernel_debug_info: {
    schema: { type: 'boolean' },
    default: false,
    description: 'Keep debug info (false: builds are much smaller and faster).',
  },
  kernel_trial_args: {
    schema: { type: 'string' },
    default: '',
    description: 'Extra kernel arguments on the trial boot only.',
  },
  kernel_panic_timeout: {
    schema: { type: 'integer', minimum: 1, maximum: 300 },
    default: 10,
    description: 'panic=N on the trial boot: a panicking kernel reboots into the old default after N s.',
  },
  kernel_boot_timeout: {
    schema: { type: 'integer', minimum: 60 },
    default: 600,
    description: 'Seconds the trial boot may take before the step fails.',
  },
};

const step: SourceBuildStep<Params> = {
  name: 'kernel',
  description:
    'Kernel from source (kernel_version): built once with the thesis options, packaged, booted once on trial, then ' +
    'made the default',
  doc:
    "a kernel built from source once per set of inputs, packaged with the kernel's own `bindeb-pkg`, installed " +
    'with the running kernel held as GRUB default, booted **once** on trial (`grub-reboot`, `panic=N`), checked ' +
    '(`uname -r`, `/proc/cmdline`, `/dev/kvm`, kvm modules), and only then made the default. See *Source builds*',
  vars,
  wanted: buildWanted('kernel'),
  params(host) {
    const build = buildParams(host, 'kernel');
    let base = varOf<string>(host, vars, 'kernel_config_base');
    if (!['running', 'defconfig', 'tinyconfig'].includes(base)) {
      base = resolve(varDir(host, 'kernel_config_base'), base);
      if (!existsSync(base))
        throw badVar(
          host,
          'kernel_config_base',
          `expected running, defconfig, tinyconfig or a config file; ${base} does not exist`,
        );
    }
    const trialArgs = varOf<string>(host, vars, 'kernel_trial_args');
    if (!/^[A-Za-z0-9_.,:=/+@ -]*$/.test(trialArgs))
      throw badVar(host, 'kernel_trial_args', 'expected kernel arguments (no quotes or shell characters)');
    return {
      build,
      base,
      fragments: fragmentsOf(host),
      debugInfo: varOf(host, vars, 'kernel_debug_info'),
      trialArgs,
      panicS: varOf(host, vars, 'kernel_panic_timeout'),
      bootTimeoutS: varOf(host, vars, 'kernel_boot_timeout'),
    };
  },
  checkAll: (params, inventory) => checkBuildHosts(params as Map<string, Params>, inventory),
  async artifact(ctx, p) {
    const params = p;
    const files: Record<string, string> = {};
    params.fragments.forEach((f, i) => {
      files[`fragment-${i + 1}.config`] = f.content;
    });
    let base = params.base;
    if (base === 'running') {
      const [cfg] = await ctx.read(runningConfig);
      if (!cfg.includes('CONFIG_'))
        throw new HostError(
          "kernel_config_base 'running': this host has no /boot/config-$(uname -r) or /proc/config.gz; set " +
            'kernel_config_base',
        );
      files['base.config'] = cfg;
      base = 'file';
    } else if (base !== 'defconfig' && base !== 'tinyconfig') {
      files['base.config'] = readFileSync(base, 'utf8');
      base = 'file';
    }
    return specFor(ctx, 'kernel', params.build, { base, debugInfo: params.debugInfo ? 'yes' : 'no' }, files);
  },
  async plan(ctx, p) {
    const params = p;
    const [os, loader] = await ctx.read(osRelease, bootLoader);
    if (os.family !== 'debian' || loader !== 'grub')
      throw new HostError(
        `kernel rollout: trial boots are implemented for Debian/Ubuntu with GRUB; this host is ${os.prettyName} ` +
          `with ${loader} (see README's support table)`,
      );
    const a = await step.artifact(ctx, p);
    const { spec, key } = a;
    const release = kernelRelease(spec, key);
    const [g] = await ctx.read(grubState(release));
    const { entries, running, installed } = g;
    const dflt = defaultEntry(entries, g.dflt, g.saved);
    const newEntry = entryOf(entries, release);
    if (running === release && dflt?.release === release) return [];
    if (running === release) {
      if (!newEntry) throw new HostError(`running ${release}, but /boot/grub/grub.cfg has no entry for it`);
      return [
        {
          kind: 'script',
          summary: `make ${release} the default kernel (its trial boot was healthy)`,
          diff: `default: ${dflt?.release ?? dflt?.path ?? '?'} → ${release}`,
          script: makeDefaultScript(newEntry.path),
        },
      ];
    }
    const runningEntry = entryOf(entries, running);
    if (!runningEntry)
      throw new HostError(
        `no GRUB entry boots the running kernel ${running}: refusing to install a kernel without a known way back`,
      );
    const changes: Change[] = [];
    // keep the running kernel the default while the new one installs (Debian makes the newest entry 0)
    const hold = [
      sh`printf '%s\n' '# kvmforge kernel: the default is what grub-set-default saved, never just the newest' ` +
        sh`'GRUB_DEFAULT=saved' > ${`${HOLD_DROPIN}.kvmforge-tmp`} && mv -f ${`${HOLD_DROPIN}.kvmforge-tmp`} ` +
        sh`${HOLD_DROPIN}`,
      sh`grub-set-default ${runningEntry.path}`,
    ];
    const dropped = readMeta(artifactDir(spec, key))?.dropped;
    if (!installed) {
      changes.push({
        ...installChange(
          a,
          [`linux-image-${release}_`, `kernel-${release}`],
          `install kernel ${release}; ${running} stays the default`,
          { before: hold.join('\n') },
        ),
        warning: dropped?.length
          ? `requested options olddefconfig dropped (unmet dependencies): ${dropped.join(', ')}`
          : undefined,
      });
    } else
      changes.push({
        kind: 'script',
        summary: `keep ${running} the default during the trial`,
        script: [...hold, 'update-grub 2>&1'].join('\n'),
      });
    changes.push({
      kind: 'reboot',
      summary:
        `trial boot of ${release} ` +
        `(panic=${params.panicS}${params.trialArgs ? ` ${params.trialArgs}` : ''}); default only if healthy`,
      diff: `next boot: ${TRIAL_ID} (once); default stays ${running}`,
      script: trialScript(release, params.panicS, params.trialArgs),
      timeoutS: params.bootTimeoutS,
      check: {
        verify: trialCheck(release, params.panicS),
        commit: makeDefaultScript(newEntry?.path ?? runningEntry.path.replace(running, release)),
      },
    });
    return changes;
  },
};
export default step;
