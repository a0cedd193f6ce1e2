// The fleet's own package repository: `kvmforge artifacts publish DIR` makes a signed flat apt repository
// (apt-ftparchive, gpg: Packages, Release, InRelease, the public key) — and an rpm one with createrepo_c when
// there are RHEL-family artifacts — from the artifacts in the local cache. Hosts with `artifacts_repo: URL`
// then install from it with apt (signature checked against `artifacts_repo_key`), and the control machine
// pushes nothing. Without artifacts_repo the packages are pushed over SSH (small fleets).
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { missingMessage, missingTools } from '../core/deps.ts';
import { ConfigError, HostError } from '../core/errors.ts';
import { cacheDir } from '../core/paths.ts';
import { sh } from '../core/sh.ts';
import type { BuildSpec, Host } from '../core/types.ts';
import { listArtifacts } from './artifacts.ts';
import { lockTimeoutOf, pkgInstall } from './pkg-install.ts';
import { packageVersion } from './recipes.ts';
import { zx } from '../core/lazy.ts';

export const KEY_FILE = 'kvmforge-archive-keyring.gpg';
const UID = 'kvmforge artifacts <kvmforge-artifacts@localhost>';

async function must(cmd: PromiseLike<{ exitCode: number | null; stdout: string; stderr: string }>, what: string) {
  const r = await cmd;
  if (r.exitCode !== 0) throw new Error(`${what} failed: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  return r.stdout;
}

/** The signing key: the one named, else kvmforge's own repository key (made once, kept in the cache). */
async function signingKey(gpgKey?: string): Promise<{ env: Record<string, string>; id: string }> {
  if (gpgKey) return { env: {}, id: gpgKey };
  const home = join(cacheDir(), 'repo-gnupg');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const env = { GNUPGHOME: home };
  const q = zx().$({ env: { ...process.env, ...env }, quiet: true, nothrow: true });
  if ((await q`gpg --batch --list-secret-keys ${UID}`).exitCode !== 0)
    await must(
      q`gpg --batch --pinentry-mode loopback --passphrase ${''} --quick-gen-key ${UID} ed25519 sign never`,
      'making the repository signing key',
    );
  return { env, id: UID };
}

export interface Published {
  dir: string;
  debs: string[];
  rpms: string[];
  keyFile: string;
  notes: string[];
}

/** Writes the repository into `dir` from the cached artifacts (all of them, or those of `components`). */
export async function publish(dir: string, o: { gpgKey?: string; cache?: string } = {}): Promise<Published> {
  const missing = missingTools('publish');
  if (missing.length) throw new ConfigError([{ message: missingMessage('publish', missing) }]);
  const artifacts = listArtifacts(o.cache);
  const files = artifacts.flatMap((a) => a.files.map((f) => ({ a, name: f.name })));
  const debs = files.filter((f) => f.name.endsWith('.deb'));
  const rpms = files.filter((f) => f.name.endsWith('.rpm'));
  if (!debs.length && !rpms.length) throw new ConfigError([{ message: 'no artifacts in the cache to publish' }]);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new ConfigError([{ message: `cannot write ${dir}: ${(e as NodeJS.ErrnoException).code ?? e}` }]);
  }
  const key = await signingKey(o.gpgKey);
  const env = { ...process.env, ...key.env };
  const q = zx().$({ env, quiet: true, nothrow: true, cwd: dir });
  const notes: string[] = [];
  if (debs.length) {
    for (const f of debs) copyFileSync(join(f.a.dir, f.name), join(dir, f.name));
    writeFileSync(join(dir, 'Packages'), await must(q`apt-ftparchive packages .`, 'apt-ftparchive packages'));
    await must(q`gzip -9kf Packages`, 'gzip');
    writeFileSync(
      join(dir, 'Release'),
      await must(q`apt-ftparchive -o APT::FTPArchive::Release::Origin=kvmforge release .`, 'apt-ftparchive release'),
    );
    await must(q`gpg --batch --yes --local-user ${key.id} --clearsign -o InRelease Release`, 'signing InRelease');
    await must(q`gpg --batch --yes --local-user ${key.id} --detach-sign -o Release.gpg Release`, 'signing Release');
  }
  if (rpms.length) {
    const rpmDir = join(dir, 'rpm');
    mkdirSync(rpmDir, { recursive: true });
    for (const f of rpms) copyFileSync(join(f.a.dir, f.name), join(rpmDir, f.name));
    if (missingTools('publish', ['createrepo_c']).length)
      notes.push('rpm packages copied but not indexed: createrepo_c is missing (dnf install createrepo_c)');
    else {
      await must(q`createrepo_c rpm`, 'createrepo_c');
      await must(q`gpg --batch --yes --local-user ${key.id} --detach-sign --armor rpm/repodata/repomd.xml`, 'signing');
    }
  }
  // the public key, armored, and as the binary keyring apt's signed-by= reads (binary made by gpg itself)
  const asc = `${KEY_FILE.replace(/\.gpg$/, '')}.asc`;
  writeFileSync(join(dir, asc), await must(q`gpg --batch --armor --export ${key.id}`, 'exporting the key'));
  await must(q`gpg --batch --yes --dearmor -o ${KEY_FILE} ${asc}`, 'writing the keyring');
  return {
    dir,
    debs: debs.map((f) => f.name),
    rpms: rpms.map((f) => f.name),
    keyFile: join(dir, KEY_FILE),
    notes,
  };
}

/** The repository a host installs artifacts from, if it has one. */
export function repoOf(host: Host): { url: string; keyFile: string } | undefined {
  const url = host.vars.artifacts_repo as string | undefined;
  if (!url) return undefined;
  const raw = (host.vars.artifacts_repo_key as string | undefined) ?? '';
  // relative to the file that set it, like every path in an inventory
  const at = host.varPos.artifacts_repo_key?.file;
  const keyFile = raw && at && !at.startsWith('(') ? resolve(dirname(at), raw) : raw;
  return { url: url.replace(/\/+$/, ''), keyFile };
}

/** The package names an install change means (its file prefixes `name_` / `name-`). */
export const packageNames = (prefixes: string[]) => [
  ...new Set(prefixes.filter((p) => p.endsWith('_')).map((p) => p.slice(0, -1))),
];

export const REPO_KEYRING = '/etc/apt/keyrings/kvmforge-artifacts.gpg';
const LIST = '/etc/apt/sources.list.d/kvmforge-artifacts.list';

/** The script installing `names` at the artifact's version from the repository (the key is put by the caller). */
export function repoInstallScript(
  spec: BuildSpec,
  key: string,
  names: string[],
  repo: { url: string },
  host: Host,
  reinstall = false,
): string {
  const version = packageVersion(spec, key);
  if (spec.distro.pm === 'apt') {
    const only = `-o Dir::Etc::sourcelist=${LIST} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0`;
    const pkgs = names.map((n) => sh`${`${n}=${version}`}`).join(' ');
    return [
      sh`printf '%s\n' ${`deb [signed-by=${REPO_KEYRING}] ${repo.url} ./`} > ${LIST}`,
      // only this repository is refreshed; a signature that doesn't verify stops here
      `apt-get update -q ${only} 2>&1 | tee /tmp/kvmforge-repo-update.log; ` +
        "if grep -qE '^(W|E): .*(signature|NO_PUBKEY|not signed|InRelease)' /tmp/kvmforge-repo-update.log; then " +
        `echo "the repository ${repo.url} is not signed by ${REPO_KEYRING}: refused" >&2; exit 1; fi`,
      pkgInstall(
        'apt',
        `--no-install-recommends --allow-downgrades${reinstall ? ' --reinstall' : ''} -o ` +
          `Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef ${pkgs}`,
        lockTimeoutOf(host.vars),
      ),
    ].join('\n');
  }
  const repoFile = [
    '[kvmforge-artifacts]',
    'name=kvmforge artifacts',
    `baseurl=${repo.url}/rpm`,
    'enabled=1',
    'gpgcheck=0',
    'repo_gpgcheck=1',
    'gpgkey=file:///etc/pki/rpm-gpg/kvmforge-artifacts.asc',
    '',
  ].join('\n');
  return [
    sh`printf '%s' ${repoFile} > /etc/yum.repos.d/kvmforge-artifacts.repo`,
    pkgInstall(spec.distro.pm, names.map((n) => sh`${`${n}-${version}`}`).join(' '), lockTimeoutOf(host.vars)),
  ].join('\n');
}

/** Reads the repository key file the host's var names (control machine side). */
export function repoKeyFile(host: Host): string {
  const repo = repoOf(host)!;
  if (!repo.keyFile || !existsSync(repo.keyFile))
    throw new HostError(
      `artifacts_repo_key '${repo.keyFile}' is not a file on this machine (the repository's public key: ` +
        `${KEY_FILE} in the published directory)`,
    );
  return repo.keyFile;
}
