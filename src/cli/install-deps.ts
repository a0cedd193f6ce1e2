// `kvmforge install-deps lab|render|exits|tests|all`: the system packages a part of kvmforge needs on this
// machine, installed with the system's own package manager (apt-get or dnf) — listed before anything is
// installed, and only those missing. `tests` also fetches the source packages the build tests use.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { have, NEEDS, type Need } from '../core/deps.ts';
import { ConfigError } from '../core/errors.ts';
import { PROJECT } from '../core/paths.ts';
import { zx } from '../core/lazy.ts';

const WHAT = Object.keys(NEEDS) as Need[];

function installedApt(pkg: string): boolean {
  try {
    return /install ok installed/.test(
      execFileSync('dpkg-query', ['-W', '-f=${Status}', pkg], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
  } catch {
    return false;
  }
}

function installedRpm(pkg: string): boolean {
  try {
    execFileSync('rpm', ['-q', pkg], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function installDeps(
  args: string[],
  log = (s: string) => process.stderr.write(`${s}\n`),
): Promise<number> {
  const wanted = args.includes('all') ? WHAT : (args as Need[]);
  const bad = wanted.filter((w) => !WHAT.includes(w));
  if (!wanted.length || bad.length)
    throw ConfigError.one(`install-deps ${bad.join(' ')}: expected one or more of ${WHAT.join(', ')}, all`);
  const apt = have('apt-get') && have('dpkg-query');
  const dnf = !apt && have('dnf');
  const packages = [...new Set(wanted.flatMap((w) => (apt ? NEEDS[w].apt : (NEEDS[w].dnf ?? []))))];
  if (!apt && !dnf)
    throw ConfigError.one(
      `install-deps: no apt-get or dnf on this machine; install these yourself (Debian names): ` +
        wanted.flatMap((w) => NEEDS[w].apt).join(' '),
    );
  if (dnf && wanted.includes('tests'))
    throw ConfigError.one('install-deps tests: the test suite runs on Debian 12 (apt); this machine has dnf');
  const missing = packages.filter((p) => !(apt ? installedApt(p) : installedRpm(p)));
  const root = process.getuid?.() === 0;
  if (missing.length && !root && !have('sudo'))
    throw ConfigError.one(
      `install-deps: not root and no sudo; as root: ${apt ? 'apt-get' : 'dnf'} install ${missing.join(' ')}`,
    );
  const sudo = root ? [] : ['sudo'];
  if (missing.length) {
    log(`kvmforge install-deps: installing with ${apt ? 'apt-get' : 'dnf'}: ${missing.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const sh = zx().$({ env, stdio: 'inherit', nothrow: true });
    if (apt) {
      const u = await sh`${sudo} apt-get update -qq`;
      if (u.exitCode !== 0) return u.exitCode ?? 1;
    }
    const r = apt
      ? await sh`${sudo} apt-get install -y -q --no-install-recommends ${missing}`
      : await sh`${sudo} dnf install -y ${missing}`;
    if (r.exitCode !== 0) return r.exitCode ?? 1;
  } else log(`kvmforge install-deps: ${packages.length} package(s) for ${wanted.join(', ')} already installed`);
  if (wanted.includes('tests')) {
    log('kvmforge install-deps: the source packages the build tests use (scripts/fetch-test-sources)');
    const r = await zx().$({ stdio: 'inherit', nothrow: true })`${sudo} ${join(PROJECT, 'scripts/fetch-test-sources')}`;
    if (r.exitCode !== 0) return r.exitCode ?? 1;
  }
  return 0;
}
