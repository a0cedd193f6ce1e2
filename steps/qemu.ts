// qemu: QEMU built from source once per distro/arch/options (x86_64-softmmu), packaged, installed from
// the artifact; `<prefix>/bin/kvm` links to qemu-system-x86_64 like the thesis's /usr/bin/kvm.
import { badVar, varOr } from '../src/core/vars.ts';
import type { Step } from '../src/core/types.ts';
import { BUILD_VARS, buildParams, checkBuildHosts, COMMON_BUILD_VARS, filesOf, installChange, installedVersion, specFor, type BuildParams } from '../src/artifacts/kit.ts';
import { PACKAGES, packageVersion } from '../src/artifacts/recipes.ts';
import { qemuCheck } from '../src/artifacts/maintainer.ts';
import { sh } from '../src/core/sh.ts';

interface Params {
  build: BuildParams;
  prefix: string;
  configureArgs: string[];
}

const ARG = /^--[a-z0-9-]+(=[A-Za-z0-9_.,:\/+-]*)?$/;

const step: Step<Params | undefined> = {
  name: 'qemu',
  description: 'QEMU from source (qemu_version): built once on a build host, packaged, installed from the artifact',
  vars: {
    ...BUILD_VARS('qemu'),
    ...COMMON_BUILD_VARS,
    qemu_prefix: { type: 'string', description: 'Install prefix (default /usr/local; /usr gives the thesis\'s /usr/bin/kvm but clashes with distro QEMU packages).' },
    qemu_configure_args: { type: 'array', items: { type: 'string' }, description: 'Extra ./configure options, e.g. --disable-install-blobs for a tarball without firmware.' },
  },
  params(host) {
    const build = buildParams(host, 'qemu');
    if (!build) return undefined;
    const prefix = varOr(host, 'qemu_prefix', '/usr/local');
    if (!/^\/[A-Za-z0-9._\/-]*$/.test(prefix)) throw badVar(host, 'qemu_prefix', 'expected an absolute path of plain characters');
    const configureArgs = varOr<string[]>(host, 'qemu_configure_args', []);
    for (const a of configureArgs) if (typeof a !== 'string' || !ARG.test(a)) throw badVar(host, 'qemu_configure_args', `'${a}' is not one configure option (--name or --name=value)`);
    return { build, prefix, configureArgs };
  },
  checkAll: (params, inventory) => checkBuildHosts(params as Map<string, Params>, inventory),
  artifact: (ctx, p) => specFor(ctx, 'qemu', p!.build, { prefix: p!.prefix, configureArgs: p!.configureArgs }),
  async plan(ctx, p) {
    const a = await step.artifact!(ctx, p);
    const { spec, key } = a;
    const want = packageVersion(spec, key);
    const name = PACKAGES.qemu.name('');
    const out = await ctx.probe(`v=$(${installedVersion(name)}); echo "version=$v"\n${sh`if [ "$v" = ${want} ]; then if ${`${p!.prefix}/bin/qemu-system-x86_64`} -version >/dev/null 2>&1; then echo starts=yes; else echo starts=no; fi; fi`}`);
    const have = /^version=(.*)$/m.exec(out)?.[1].trim() ?? '';
    const check = qemuCheck(p!.prefix);
    if (have === want && /^starts=yes$/m.test(out)) return [];
    if (have === want) return [installChange(ctx, a, filesOf(name), `reinstall QEMU ${spec.version} (${want}): the installed binary does not start`, '', check, true)];
    return [installChange(ctx, a, filesOf(name), `install QEMU ${spec.version} (${want}${have ? `, replacing ${have}` : ''})`, '', check)];
  },
};
export default step;
