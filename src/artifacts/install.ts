// Applying an install change: the artifact built once on its build host (or taken from the local cache),
// its packages pushed to the target, and the script that installs them with the distro's package manager.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HostError } from '../core/errors.ts';
import { sh } from '../core/sh.ts';
import type { Change, StepContext } from '../core/types.ts';
import { artifactDir, ensureArtifact, pushFile, type ArtifactIO } from './artifacts.ts';
import { PKG_DIR, requestOf } from './kit.ts';
import { lockTimeoutOf, pkgInstall } from './pkg-install.ts';
import { shortKey } from './recipes.ts';
import { packageNames, REPO_KEYRING, repoInstallScript, repoKeyFile, repoOf } from './repo.ts';

/** Gets the artifact's packages onto the target; returns the script that installs them (run by the caller). */
export async function installArtifact(
  c: Extract<Change, { kind: 'install' }>,
  ctx: StepContext,
  io: ArtifactIO,
): Promise<string> {
  const { spec, key } = c.artifact;
  const repo = repoOf(ctx.host);
  if (repo) {
    // from the fleet's repository: the control machine builds nothing and pushes only the repository's key
    io.progress(`installing from ${repo.url}`);
    await io.transport.exec(sh`install -d -m 755 ${dirname(REPO_KEYRING)}`, { sudo: true });
    await io.transport.put(REPO_KEYRING, readFileSync(repoKeyFile(ctx.host)), 0o644);
    const names = packageNames(c.packages);
    return [c.before, repoInstallScript(spec, key, names, repo, ctx.host, c.reinstall), c.after]
      .filter(Boolean)
      .join('\n');
  }
  const meta = await ensureArtifact(requestOf(ctx, c.artifact), io);
  const files = meta.files.map((f) => f.name).filter((f) => c.packages.some((p) => f.startsWith(p)));
  if (!files.length)
    throw new HostError(
      `artifact ${shortKey(key)} has no package to install (files: ${meta.files.map((f) => f.name).join(', ')})`,
    );
  const dir = `${PKG_DIR}/${spec.component}-${spec.version}-${shortKey(key)}`;
  io.progress(`pushing ${files.join(', ')}`);
  await io.transport.exec(sh`mkdir -p ${dir}`, { sudo: true });
  for (const f of files) await pushFile(io.transport, `${artifactDir(spec, key)}/${f}`, `${dir}/${f}`);
  const aptOptions =
    spec.distro.pm === 'apt'
      ? `--no-install-recommends --allow-downgrades${c.reinstall ? ' --reinstall' : ''} -o ` +
        `Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef `
      : '';
  const install = pkgInstall(
    spec.distro.pm,
    aptOptions + files.map((f) => sh`./${f}`).join(' '),
    lockTimeoutOf(ctx.host.vars),
  );
  return [c.before, `cd ${sh`${dir}`}`, install, c.after].filter(Boolean).join('\n');
}
