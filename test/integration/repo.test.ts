// The fleet's own package repository: `kvmforge artifacts publish` makes a signed apt repository from the
// cached artifacts (apt-ftparchive, gpg), and a namespace host installs from it with apt — the signature
// checked against the key its inventory names; a wrong key is refused and nothing is installed.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/artifacts/recipes.ts';
import type { BuildSpec } from '../../src/core/types.ts';
import { NsLab } from '../harness/nshosts.ts';

const lab = new NsLab(2);
const KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9';
const cache = mkdtempSync(join(tmpdir(), 'kvf-repo-cache-'));
const repo = join(mkdtempSync(join(tmpdir(), 'kvf-repo-')), 'repo');

/** A cached artifact holding one tiny .deb, as kvmforge build leaves it. */
function fakeArtifact() {
  const version = packageVersion({ component: 'hello', version: '1.0' } as unknown as BuildSpec, KEY);
  const dir = join(cache, 'artifacts', `hello-1.0-${KEY.slice(0, 12)}`);
  const pkg = join(cache, 'pkg');
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(join(pkg, 'usr/share/kvmforge-hello'), { recursive: true });
  writeFileSync(
    join(pkg, 'DEBIAN/control'),
    `Package: kvmforge-hello\nVersion: ${version}\nArchitecture: all\nMaintainer: kvmforge <k@localhost>\n` +
      'Description: a test package\n',
  );
  writeFileSync(join(pkg, 'usr/share/kvmforge-hello/hello'), 'hello from the fleet repository\n');
  mkdirSync(dir, { recursive: true });
  const deb = `kvmforge-hello_${version}_all.deb`;
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', pkg, join(dir, deb)], { stdio: 'ignore' });
  const meta = {
    component: 'hello',
    version: '1.0',
    key: KEY,
    files: [{ name: deb, size: 1 }],
    distro: { family: 'debian', id: 'debian', versionId: '12', arch: 'all', pm: 'apt' },
    options: {},
    builtOn: 'test',
    buildSeconds: 0,
    builtAt: new Date().toISOString(),
  };
  writeFileSync(join(dir, 'meta.json'), JSON.stringify(meta));
}

beforeAll(async () => {
  await lab.up();
  fakeArtifact();
}, 300_000);
afterAll(() => lab.down());

describe('artifacts from the fleet’s own repository', () => {
  it('publish makes a signed apt repository that gpgv verifies', () => {
    const out = execFileSync(process.execPath, ['bin/kvmforge.js', 'artifacts', 'publish', repo], {
      env: { ...process.env, KVMFORGE_CACHE: cache },
      encoding: 'utf8',
    });
    expect(out).toMatch(/published 1 \.deb and 0 \.rpm package\(s\)/);
    for (const f of ['Packages', 'Packages.gz', 'Release', 'InRelease', 'Release.gpg', 'kvmforge-archive-keyring.gpg'])
      expect(existsSync(join(repo, f)), f).toBe(true);
    execFileSync('gpgv', ['--keyring', join(repo, 'kvmforge-archive-keyring.gpg'), join(repo, 'InRelease')], {
      stdio: 'ignore',
    });
  });

  it('a host installs from it with apt (signature checked); a wrong key is refused, nothing installed', async () => {
    // the repository where the hosts can read it (file://), written through the host's own view of its files
    // (writing into an overlay's upper layer behind its back breaks it); a second key that did not sign it
    const tarball = execFileSync('tar', ['-C', join(repo, '..'), '-cz', 'repo']).toString('base64');
    for (const h of ['h1', 'h2'])
      lab.inHost(
        h,
        `mkdir -p /var/tmp/kvmforge-repo && echo ${tarball} | base64 -d | ` +
          'tar -C /var/tmp/kvmforge-repo --strip-components=1 -xz',
      );
    const other = mkdtempSync(join(tmpdir(), 'kvf-other-gpg-'));
    const env = { ...process.env, GNUPGHOME: other };
    execFileSync(
      'gpg',
      [
        '--batch',
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        '',
        '--quick-gen-key',
        'other <o@x>',
        'ed25519',
        'sign',
        'never',
      ],
      { env, stdio: 'ignore' },
    );
    writeFileSync(join(other, 'other.gpg'), execFileSync('gpg', ['--batch', '--export', 'other <o@x>'], { env }));
    const inv = lab.inventory(join(lab.dir, 'repo.yaml'), {
      h1: [
        'artifacts_repo: file:///var/tmp/kvmforge-repo',
        `artifacts_repo_key: ${join(repo, 'kvmforge-archive-keyring.gpg')}`,
      ],
      h2: ['artifacts_repo: file:///var/tmp/kvmforge-repo', `artifacts_repo_key: ${join(other, 'other.gpg')}`],
    });
    const drive = async (h: string) => {
      const r = await lab.node('test/integration/repo-driver.ts', [inv, h, KEY]);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { status: string; error?: string };
    };
    const good = await drive('h1');
    expect(good.error).toBeUndefined();
    expect(good.status).toBe('changed');
    expect(existsSync(lab.hostPath('h1', 'usr/share/kvmforge-hello/hello'))).toBe(true);
    const bad = await drive('h2');
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/is not signed by \/etc\/apt\/keyrings\/kvmforge-artifacts\.gpg: refused/);
    expect(existsSync(lab.hostPath('h2', 'usr/share/kvmforge-hello/hello'))).toBe(false);
  }, 300_000);
});
