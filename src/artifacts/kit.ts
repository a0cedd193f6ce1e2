// What the kernel, qemu and libvirt steps share: their common vars, the artifact spec of a target, and
// the change that gets the artifact (built once on the build host) onto the target and installs it.
import { dirname } from 'node:path';
import { HostError } from '../core/errors.ts';
import { sh } from '../core/sh.ts';
import { badVar, varOr } from '../core/vars.ts';
import type { Change, Host, StepContext } from '../core/types.ts';
import type { Problem } from '../core/errors.ts';
import { artifactDir, ensureArtifact, pushFile, type ArtifactMeta } from './artifacts.ts';
import { lockTimeoutOf, pkgInstall } from './pkg-install.ts';
import { artifactKey, shortKey, type BuildSpec, type PackageManager } from './recipes.ts';
import { sourceOf, sourceSha, type Component, type Source } from './sources.ts';

export interface BuildParams {
  source: Source;
  /** Inventory name of the build host; undefined: the first host of the run that needs the artifact. */
  buildHost?: string;
  buildDir: string;
}

export const BUILD_VARS = (c: Component): Record<string, object> => ({
  [`${c}_version`]: { type: 'string', description: `Build ${c} from source at this version (the step runs only when it is set).` },
  [`${c}_source`]: { type: 'string', description: `Tarball: an http(s) URL (default: the upstream release URL) or a file on the control machine (relative to the inventory).` },
  [`${c}_sha256`]: { type: 'string', pattern: '^[0-9a-f]{64}$', description: 'sha256 of the tarball (required for a URL; a mismatching file is refused and deleted).' },
  [`${c}_signature`]: { type: 'string', description: 'Detached signature (URL or file); default: where upstream publishes it. Checked only with a keyring.' },
  [`${c}_keyring`]: { type: 'string', description: 'Keyring file (gpg --export) to check the signature with gpgv.' },
});

export const COMMON_BUILD_VARS: Record<string, object> = {
  build_host: { type: 'string', description: 'Inventory host that builds the packages (default: the first host of the run that needs them; identical distro, version and arch).' },
  build_dir: { type: 'string', description: 'Where builds, sources and artifacts live on the build host (default /var/cache/kvmforge).' },
  build_timeout: { type: 'integer', minimum: 60, description: 'Seconds one build may take (default 14400).' },
};

export function buildParams(host: Host, c: Component): BuildParams | undefined {
  const source = sourceOf(host, c, dirname(host.pos.file));
  if (!source) return undefined;
  const buildDir = varOr(host, 'build_dir', '/var/cache/kvmforge');
  if (!/^\/[A-Za-z0-9._\/-]+$/.test(buildDir)) throw badVar(host, 'build_dir', 'expected an absolute path of plain characters');
  return { source, buildHost: varOr<string | undefined>(host, 'build_host', undefined), buildDir };
}

/** A build host named in the inventory (checked before any connection). */
export function checkBuildHosts(params: Map<string, { build: BuildParams } | BuildParams>, inventory: Host[]): Problem[] {
  const problems: Problem[] = [];
  for (const [name, p] of params) {
    const b = 'build' in p ? p.build : p;
    if (b.buildHost && !inventory.some((h) => h.name === b.buildHost)) {
      const h = inventory.find((x) => x.name === name)!;
      problems.push({ ...(h.varPos.build_host ?? h.pos), key: `${name}.build_host`, message: `'${b.buildHost}' is not a host of the inventory; hosts are: ${inventory.map((x) => x.name).join(', ')}` });
    }
  }
  return problems;
}

export function packageManagerOf(ctx: StepContext): PackageManager {
  const pm = ctx.facts.packageManager;
  if (pm !== 'apt' && pm !== 'dnf' && pm !== 'yum') throw new HostError(`source builds support apt, dnf and yum hosts; this host has ${pm}`);
  return pm;
}

/** The spec of what this target needs: inputs from the vars and the target's own distro. */
export async function specFor(ctx: StepContext, c: Component, b: BuildParams, options: BuildSpec['options'], files: BuildSpec['files'] = {}): Promise<ArtifactRef> {
  const { os, arch } = ctx.facts;
  const spec: BuildSpec = {
    component: c,
    version: b.source.version,
    sourceSha: await sourceSha(b.source),
    distro: { family: os.family, id: os.id, versionId: os.versionId, arch, pm: packageManagerOf(ctx) },
    options,
    files,
  };
  return { spec, key: artifactKey(spec), build: b };
}

export interface ArtifactRef {
  spec: BuildSpec;
  key: string;
  build: BuildParams;
}

/** The build request of an artifact ref, from a host's point of view. */
export function requestOf(ctx: StepContext, a: ArtifactRef) {
  const buildHost = a.build.buildHost ? ctx.inventory?.find((h) => h.name === a.build.buildHost) : ctx.host;
  if (!buildHost || !ctx.connect) throw new HostError(`build host ${a.build.buildHost} is not in this run's inventory`);
  return { spec: a.spec, key: a.key, source: a.build.source, buildHost, buildDir: a.build.buildDir, connect: ctx.connect };
}

/** Where packages are pushed on a target. */
export const PKG_DIR = '/var/cache/kvmforge/packages';

/** A shell command that prints the installed version of package `name` (dpkg or rpm), or nothing. */
export const installedVersion = (name: string) => sh`dpkg-query -W -f ${'${Version}'} ${name} 2>/dev/null || rpm -q --qf '%{VERSION}-%{RELEASE}' ${name} 2>/dev/null || true`;

/** Keeps the artifact files of package `name` (name_….deb or name-….rpm). */
export const filesOf = (name: string) => (f: string) => f.startsWith(`${name}_`) || f.startsWith(`${name}-`);

/** The change that installs the artifact's packages (those `pick` keeps) on the target. */
export function installChange(ctx: StepContext, a: ArtifactRef, pick: (file: string) => boolean, summary: string, before = '', after = '', reinstall = false): Change {
  const { spec, key, build: b } = a;
  const dir = `${PKG_DIR}/${spec.component}-${spec.version}-${shortKey(key)}`;
  let files: string[] = [];
  const cached = artifactDir(spec, key);
  const aptOptions = spec.distro.pm === 'apt' ? `--no-install-recommends --allow-downgrades${reinstall ? ' --reinstall' : ''} -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef ` : '';
  const change: Change = {
    summary,
    diff: `+ ${spec.component} ${spec.version} (artifact ${shortKey(key)}; built on ${b.buildHost ?? 'the first host that needs it'} unless cached in ${cached})`,
    prepare: async (io) => {
      const meta: ArtifactMeta = await ensureArtifact(requestOf(ctx, a), io);
      files = meta.files.map((f) => f.name).filter(pick);
      if (!files.length) throw new HostError(`artifact ${shortKey(key)} has no package to install (files: ${meta.files.map((f) => f.name).join(', ')})`);
      io.progress(`pushing ${files.join(', ')}`);
      await io.transport.exec(sh`mkdir -p ${dir}`, { sudo: true });
      for (const f of files) await pushFile(io.transport, `${artifactDir(spec, key)}/${f}`, `${dir}/${f}`);
      const install = pkgInstall(spec.distro.pm, aptOptions + files.map((f) => sh`./${f}`).join(' '), lockTimeoutOf(ctx.host.vars));
      change.script = [before, `cd ${sh`${dir}`}`, install, after].filter(Boolean).join('\n');
    },
    // set by prepare (the file names are known once the artifact is); a placeholder makes it a real change
    script: 'true',
  };
  return change;
}
