// qemu: QEMU built from source once per distro/arch/options (x86_64-softmmu), packaged, installed from
// the artifact; `<prefix>/bin/kvm` links to qemu-system-x86_64 like the thesis's /usr/bin/kvm.
import { badVar, varOf } from '../src/core/vars.ts';
import { sh } from '../src/core/sh.ts';
import { fact, type Host, type VarSpec } from '../src/core/types.ts';
import {
  BUILD_VARS,
  buildParams,
  buildWanted,
  checkBuildHosts,
  COMMON_BUILD_VARS,
  installChange,
  installedVersion,
  packageFiles,
  specFor,
  type SourceBuildStep,
} from '../src/artifacts/kit.ts';
import { PACKAGES, packageVersion } from '../src/artifacts/recipes.ts';
import { qemuCheck } from '../src/artifacts/maintainer.ts';
import type { BuildParams } from '../src/core/types.ts';

interface Params {
  build: BuildParams;
  prefix: string;
  configureArgs: string[];
}

const ARG = /^--[a-z0-9-]+(=[A-Za-z0-9_.,:/+-]*)?$/;

/** The installed kvmforge-qemu version, and whether that version's binary starts. */
export const qemuInstalled = (name: string, want: string, prefix: string) =>
  fact(
    `qemu-installed:${name}:${want}:${prefix}`,
    `v=$(${installedVersion(name)}); echo "version=$v"\n` +
      sh`if [ "$v" = ${want} ]; then if ${`${prefix}/bin/qemu-system-x86_64`} -version >/dev/null 2>&1; ` +
      'then echo starts=yes; else echo starts=no; fi; fi',
    (out) => ({
      version: /^version=(.*)$/m.exec(out)?.[1].trim() ?? '',
      starts: /^starts=yes$/m.test(out),
    }),
  );

const vars: Record<string, VarSpec> = {
  ...BUILD_VARS('qemu'),
  ...COMMON_BUILD_VARS,
  qemu_prefix: {
    schema: { type: 'string' },
    default: '/usr/local',
    description: "Install prefix (/usr gives the thesis's /usr/bin/kvm but clashes with distro QEMU packages).",
  },
  qemu_configure_args: {
    schema: { type: 'array', items: { type: 'string' } },
    default: [],
    description: 'Extra ./configure options, e.g. --disable-install-blobs for a tarball without firmware.',
  },
};

const step: SourceBuildStep<Params> = {
  name: 'qemu',
  description: 'QEMU from source (qemu_version): built once on a build host, packaged, installed from the artifact',
  doc:
    'QEMU (`--target-list=x86_64-softmmu`; only the targets it installs are compiled — its default target also ' +
    'builds ~980 test programs, 1:46 of 7:44 on 2 cores here; no debug info, which the package strips anyway, and ' +
    'no guest agent, a tool for guests: `qemu_configure_args` come after and win) built once, packaged as ' +
    '`kvmforge-qemu` ' +
    '(.deb/.rpm), installed from the artifact, then checked: the binary starts (and with KVM where /dev/kvm ' +
    'opens); `<prefix>/bin/kvm` links to ' +
    "`qemu-system-x86_64` (the thesis's `/usr/bin/kvm` with `qemu_prefix: /usr`)",
  vars,
  wanted: buildWanted('qemu'),
  params(host: Host) {
    const build = buildParams(host, 'qemu');
    const prefix = varOf<string>(host, vars, 'qemu_prefix');
    if (!/^\/[A-Za-z0-9._/-]*$/.test(prefix))
      throw badVar(host, 'qemu_prefix', 'expected an absolute path of plain characters');
    const configureArgs = varOf<string[]>(host, vars, 'qemu_configure_args');
    for (const a of configureArgs)
      if (typeof a !== 'string' || !ARG.test(a))
        throw badVar(host, 'qemu_configure_args', `'${a}' is not one configure option (--name or --name=value)`);
    return { build, prefix, configureArgs };
  },
  checkAll: (params, inventory) => checkBuildHosts(params, inventory),
  artifact: (ctx, p) => specFor(ctx, 'qemu', p.build, { prefix: p.prefix, configureArgs: p.configureArgs }),
  async plan(ctx, p) {
    const a = await step.artifact(ctx, p);
    const { spec, key } = a;
    const want = packageVersion(spec, key);
    const name = PACKAGES.qemu.name('');
    const [have] = await ctx.read(qemuInstalled(name, want, p.prefix));
    const after = qemuCheck(p.prefix);
    if (have.version === want && have.starts) return [];
    if (have.version === want)
      return [
        installChange(
          a,
          packageFiles(name),
          `reinstall QEMU ${spec.version} (${want}): the installed binary does not start`,
          { after, reinstall: true },
        ),
      ];
    return [
      installChange(
        a,
        packageFiles(name),
        `install QEMU ${spec.version} (${want}${have.version ? `, replacing ${have.version}` : ''})`,
        { after },
      ),
    ];
  },
};
export default step;
