// What the kernel, qemu and libvirt steps share: their common vars, the artifact spec of a target, and
// the change that gets the artifact (built once on the build host) onto the target and installs it.
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { HostError } from '../core/errors.ts';
import { sh } from '../core/sh.ts';
import { badVar, varOf } from '../core/vars.ts';
import type {
  ArtifactRef,
  BuildParams,
  Change,
  Component,
  Host,
  PackageManager,
  Step,
  StepContext,
  VarSpec,
} from '../core/types.ts';
import type { Problem } from '../core/errors.ts';
import { artifactDir } from './artifacts.ts';
import { arch, osRelease, packageManager } from '../facts/host.ts';
import { artifactKey, BUILD_TIMEOUT_S, shortKey, type BuildSpec } from './recipes.ts';
import {
  DISTRO_PACKAGE,
  type DistroPackage,
  distroProbe,
  parseDistroProbe,
  sourceOf,
  sourceSha,
  versionFits,
} from './sources.ts';

export const BUILD_VARS = (c: Component): Record<string, VarSpec> => ({
  [`${c}_version`]: {
    schema: { type: 'string' },
    description:
      `Build ${c} from source at this version (the step runs only when it is set); \`distro\`: the version the ` +
      "build host's distribution source package holds (built from that package).",
  },
  [`${c}_source`]: {
    schema: { type: 'string' },
    defaultText: 'the upstream release URL',
    description:
      'Tarball: an http(s) URL or a file on the control machine (relative to the inventory); or `distro`: the build ' +
      "host's distribution source package (apt-get source or dnf download --source, its patches applied), checked " +
      'against its signed index (apt) or its signature (dnf).',
  },
  [`${c}_sha256`]: {
    schema: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    description: 'sha256 of the tarball (required for a URL; a mismatching file is refused and deleted).',
  },
  [`${c}_signature`]: {
    schema: { type: 'string' },
    defaultText: 'where upstream publishes it',
    description: 'Detached signature (URL or file). Checked only with a keyring.',
  },
  [`${c}_keyring`]: {
    schema: { type: 'string' },
    description: 'Keyring file (gpg --export) to check the signature with gpgv.',
  },
});

export const COMMON_BUILD_VARS: Record<string, VarSpec> = {
  build_host: {
    schema: { type: 'string' },
    defaultText: 'the first host of the run that needs them',
    description:
      'Inventory host that builds the packages (identical distro, version and arch); `localhost` not in the ' +
      'inventory is this machine (as Ansible’s implicit localhost: never a target).',
  },
  build_dir: {
    schema: { type: 'string' },
    default: '/var/cache/kvmforge',
    description: 'Where builds, sources and artifacts live on the build host.',
  },
  build_timeout: {
    schema: { type: 'integer', minimum: 60 },
    default: BUILD_TIMEOUT_S,
    description: 'Seconds one build may take.',
  },
};

/** A source build is asked for by its version var. */
export const buildWanted = (c: Component) => (host: Host) =>
  host.vars[`${c}_version`] !== undefined && host.vars[`${c}_version`] !== null ? true : `no ${c}_version`;

export function buildParams(host: Host, c: Component): BuildParams {
  const source = sourceOf(host, c, dirname(host.pos.file));
  if (!source) throw badVar(host, `${c}_version`, `${c}_version is needed to build ${c}`);
  const buildDir = varOf<string>(host, COMMON_BUILD_VARS, 'build_dir');
  if (!/^\/[A-Za-z0-9._/-]+$/.test(buildDir))
    throw badVar(host, 'build_dir', 'expected an absolute path of plain characters');
  return { source, buildHost: varOf<string | undefined>(host, COMMON_BUILD_VARS, 'build_host'), buildDir };
}

/** A build host named in the inventory (checked before any connection). */
export function checkBuildHosts(
  params: Map<string, { build: BuildParams } | BuildParams>,
  inventory: Host[],
): Problem[] {
  const problems: Problem[] = [];
  for (const [name, p] of params) {
    const b = 'build' in p ? p.build : p;
    if (b.buildHost && b.buildHost !== 'localhost' && !inventory.some((h) => h.name === b.buildHost)) {
      const h = inventory.find((x) => x.name === name)!;
      problems.push({
        ...(h.varPos.build_host ?? h.pos),
        key: `${name}.build_host`,
        message:
          `'${b.buildHost}' is not a host of the inventory (nor localhost, this machine); hosts are: ` +
          `${inventory.map((x) => x.name).join(', ')}`,
      });
    }
  }
  return problems;
}

export async function packageManagerOf(ctx: StepContext): Promise<PackageManager> {
  const [pm] = await ctx.read(packageManager);
  if (pm !== 'apt' && pm !== 'dnf' && pm !== 'yum')
    throw new HostError(`source builds support apt, dnf and yum hosts; this host has ${pm}`);
  return pm;
}

/** The spec of what this target needs: inputs from the vars and the target's own distro. */
export async function specFor(
  ctx: StepContext,
  c: Component,
  b: BuildParams,
  options: BuildSpec['options'],
  files: BuildSpec['files'] = {},
): Promise<ArtifactRef> {
  const [os, a] = await ctx.read(osRelease, arch);
  const pm = await packageManagerOf(ctx);
  const pkg = b.source.distro ? await distroPackage(ctx, c, b, pm) : undefined;
  const spec: BuildSpec = {
    component: c,
    version: pkg && b.source.version === 'distro' ? pkg.upstream : b.source.version,
    sourceSha: pkg ? pkg.id : await sourceSha(b.source),
    distro: { family: os.family, id: os.id, versionId: os.versionId, arch: a, pm },
    options,
    files,
    ...(pkg ? { sourcePackage: pkg.name } : {}),
  };
  const build = pkg
    ? { ...b, source: { ...b.source, ...(pkg.srpm ? { srpm: pkg.srpm } : { distroFiles: pkg.files }) } }
    : b;
  return { spec, key: artifactKey(spec), build };
}

const resolved = new Map<string, Promise<DistroPackage | { missing: string }>>();

/** `<c>_source: distro`, resolved on the build host (once per run): the source package its package manager would
 * fetch. None there, or not the version `<c>_version` names: bad input (exit 2), nothing changed. */
async function distroPackage(ctx: StepContext, c: Component, b: BuildParams, pm: PackageManager) {
  const at = `${c}_source`;
  if (pm === 'yum')
    throw badVar(
      ctx.host,
      at,
      `${c}_source: distro builds from source packages with apt-get source or dnf download --source; this host ` +
        'uses yum: name a tarball (an http(s) URL with its sha256, or a file) instead',
    );
  if (pm === 'dnf' && b.source.sha256)
    throw badVar(
      ctx.host,
      `${c}_sha256`,
      `${c}_source is distro on a dnf host: the source RPM is checked by its repository's index and its signature, ` +
        `and its upstream tarball can't be checked at plan time; remove ${c}_sha256`,
    );
  const bh = buildHostOf(ctx, b);
  const pkg = DISTRO_PACKAGE[pm][c];
  const id = `${bh.name}\0${pkg}`;
  let p = resolved.get(id);
  if (!p) {
    p = (async () => {
      const t = await ctx.connect!(bh);
      try {
        return parseDistroProbe(pkg, (await t.exec(distroProbe(pkg, pm))).stdout, pm);
      } finally {
        await t.close();
      }
    })();
    resolved.set(id, p);
    p.catch(() => resolved.delete(id));
  }
  const r = await p;
  if ('missing' in r)
    throw badVar(ctx.host, at, `${c}_source is distro, but on the build host ${bh.name} ${r.missing}`);
  const orig = r.files.find((f) => /\.orig\.tar\.[a-z0-9]+$/.test(f.name));
  if (b.source.sha256 && orig?.sha256 !== b.source.sha256)
    throw badVar(
      ctx.host,
      `${c}_sha256`,
      `${c}_source is distro: the build host's ${r.name} ` +
        (orig
          ? `holds ${orig.name} with sha256 ${orig.sha256}, not the upstream tarball ${c}_sha256 names (the ` +
            'distribution repacked it, or it is another release)'
          : 'has no upstream tarball (a native package) to check against') +
        `; without ${c}_sha256 the package is checked by the signed index alone`,
    );
  if (b.source.version !== 'distro' && !versionFits(b.source.version, r.upstream))
    throw badVar(
      ctx.host,
      `${c}_version`,
      `${c}_source is distro and the build host ${bh.name} offers ${r.name} (upstream ${r.upstream}); ` +
        `${c}_version '${b.source.version}' is not that version (the version its tree holds, e.g. ${r.upstream}.N)`,
    );
  return r;
}

/** The host that builds for this target: build_host, or the target itself. `localhost` not in the inventory is this
 * machine, as Ansible's implicit localhost: local transport, never a target, none of the inventory's vars. */
function buildHostOf(ctx: StepContext, b: BuildParams): Host {
  const named = b.buildHost ? ctx.inventory?.find((h) => h.name === b.buildHost) : ctx.host;
  const buildHost = named ?? (b.buildHost === 'localhost' ? implicitLocalhost(ctx.host) : undefined);
  if (!buildHost || !ctx.connect) throw new HostError(`build host ${b.buildHost} is not in this run's inventory`);
  return buildHost;
}

/** The build request of an artifact ref, from a host's point of view. */
export function requestOf(ctx: StepContext, a: ArtifactRef) {
  return {
    spec: a.spec,
    key: a.key,
    source: a.build.source,
    buildHost: buildHostOf(ctx, a.build),
    buildDir: a.build.buildDir,
    connect: ctx.connect!,
  };
}

function implicitLocalhost(target: Host): Host {
  return {
    name: 'localhost',
    groups: [],
    vars: { ansible_connection: 'local' },
    varPos: {},
    pos: target.varPos.build_host ?? target.pos,
    conn: { address: '127.0.0.1', port: 22, user: userInfo().username, local: true, become: false },
  };
}

/** Where packages are pushed on a target. */
export const PKG_DIR = '/var/cache/kvmforge/packages';

/** A shell command that prints the installed version of package `name` (dpkg or rpm), or nothing. */
export const installedVersion = (name: string) =>
  sh`dpkg-query -W -f ${'${Version}'} ${name} 2>/dev/null || rpm -q --qf '%{VERSION}-%{RELEASE}' ${name} ` +
  sh`2>/dev/null || true`;

/** The change that installs the artifact's packages (their file names start with one of `packages`: `name_` for a
 * .deb, `name-` for an .rpm) on the target; the artifact is built or fetched when the change is applied. */
export function installChange(
  a: ArtifactRef,
  packages: string[],
  summary: string,
  extra: { before?: string; after?: string; reinstall?: boolean } = {},
): Change {
  const { spec, key, build: b } = a;
  return {
    kind: 'install',
    summary,
    diff:
      `+ ${spec.component} ${spec.version} (artifact ${shortKey(key)}; ` +
      `${spec.sourcePackage ? `from the distribution's source package ${spec.sourcePackage}; ` : ''}built on ` +
      `${b.buildHost ?? 'the first host that needs it'} unless cached in ${artifactDir(spec, key)})`,
    artifact: a,
    packages,
    ...extra,
  };
}

/** A package name as the prefixes of its files (name_….deb, name-….rpm). */
export const packageFiles = (name: string) => [`${name}_`, `${name}-`];

/**
 * A step that builds a component from source: what a host needs built (`kvmforge build` builds it without installing).
 */
export interface SourceBuildStep<P> extends Step<P> {
  artifact(ctx: StepContext, params: P): Promise<ArtifactRef>;
}

export const isSourceBuild = <P>(s: Step<P>): s is SourceBuildStep<P> =>
  'artifact' in s && typeof (s as SourceBuildStep<P>).artifact === 'function';
