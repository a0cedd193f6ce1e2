// `<c>_source: distro` on a dnf build host: the probe, the fetch and the unpack scripts run for real with dnf, rpm
// and rpmbuild on this machine (Debian packages them) against a local repository pair made here — a binary
// repository and its `-source` twin holding a source RPM signed with a key made for the test, as RHEL lays
// them out. The build host itself stays Debian here (no RHEL image): the kit's choice of these scripts for a dnf
// host is checked with fixtures in test/unit/builds.test.ts.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distroProbe, fetchScript, parseDistroProbe, type DistroPackage } from '../../src/artifacts/sources.ts';
import { srpmUnpack } from '../../src/artifacts/recipes.ts';

const T = mkdtempSync(join(tmpdir(), 'kvmforge-srpm-'));
afterAll(() => rmSync(T, { recursive: true, force: true }));
const HOME = join(T, 'home'); // Debian's rpm keeps its database (and the trusted keys) in ~/.rpmdb
const env = { ...process.env, HOME, GNUPGHOME: join(T, 'gnupg'), PATH: `${join(T, 'bin')}:${process.env.PATH}` };
const sh = (script: string) => spawnSync('sh', ['-c', script], { encoding: 'utf8', env, timeout: 120_000 });
const must = (script: string) => {
  const r = sh(script);
  if (r.status !== 0) throw new Error(`${script}\n${r.stdout}${r.stderr}`);
  return r.stdout;
};

const SPEC = `Name: demo
Version: 1.2
Release: 3.el9
Summary: a source RPM for the test
License: MIT
BuildArch: noarch
Source0: demo-1.2.tar.gz
Patch0: fix.patch
%description
test
%prep
%autosetup -p1
%files
`;
const PATCH = `--- a/hello.txt
+++ b/hello.txt
@@ -1 +1 @@
-upstream
+patched by the distribution
`;

/** dnf with the test's configuration: its repositories only, its cache (dnf has no environment variable for this). */
function dnfWrapper(reposDir: string) {
  writeFileSync(
    join(T, 'dnf.conf'),
    `[main]\ngpgcheck=False\nreposdir=${reposDir}\ncachedir=${join(T, 'dnf-cache')}\n`,
  );
  writeFileSync(join(T, 'bin/dnf'), `#!/bin/sh\nexec /usr/bin/dnf -c ${join(T, 'dnf.conf')} --releasever 9 "$@"\n`, {
    mode: 0o755,
  });
}

beforeAll(() => {
  for (const d of ['gnupg', 'home', 'bin', 'top/SOURCES', 'top/SPECS', 'repo/bin', 'repo/src', 'repos.d', 'none.d'])
    mkdirSync(join(T, d), { recursive: true, mode: 0o700 });
  must(`gpg -q --batch --passphrase '' --quick-gen-key 'kvmforge srpm test <t@example.invalid>' rsa2048 sign never`);
  const src = join(T, 'demo-1.2');
  mkdirSync(src);
  writeFileSync(join(src, 'meson.build'), "project('demo', 'c', version: '1.2')\n");
  writeFileSync(join(src, 'hello.txt'), 'upstream\n');
  writeFileSync(join(T, 'top/SOURCES/fix.patch'), PATCH);
  writeFileSync(join(T, 'top/SPECS/demo.spec'), SPEC);
  must(`cd ${T} && tar czf top/SOURCES/demo-1.2.tar.gz demo-1.2`);
  must(`rpmbuild --quiet --define "_topdir ${T}/top" -ba ${T}/top/SPECS/demo.spec 2>&1`);
  must(
    `rpmsign --addsign --define "_gpg_name kvmforge srpm test" --define "_gpg_path $GNUPGHOME" ` +
      `--define "__gpg $(command -v gpg)" ${T}/top/SRPMS/demo-1.2-3.el9.src.rpm </dev/null 2>&1`,
  );
  must(`cp ${T}/top/SRPMS/*.src.rpm ${T}/repo/src/ && cp ${T}/top/RPMS/noarch/*.rpm ${T}/repo/bin/`);
  must(`createrepo_c -q ${T}/repo/src && createrepo_c -q ${T}/repo/bin && gpg --armor --export > ${T}/key.asc`);
  // as on RHEL: the binary repository enabled, its -source twin not (dnf's --srpm and download --source use it)
  writeFileSync(
    join(T, 'repos.d/demo.repo'),
    `[demo]\nname=demo\nbaseurl=file://${T}/repo/bin\ngpgcheck=0\n` +
      `[demo-source]\nname=demo source\nbaseurl=file://${T}/repo/src\nenabled=0\ngpgcheck=0\n`,
  );
  writeFileSync(join(T, 'none.d/demo.repo'), `[demo]\nname=demo\nbaseurl=file://${T}/repo/bin\ngpgcheck=0\n`);
  dnfWrapper(join(T, 'repos.d'));
}, 180_000);

describe('<c>_source: distro with dnf (real dnf, rpm and rpmbuild, a local signed repository)', () => {
  let pkg: DistroPackage;

  it('the probe finds the newest source RPM as dnf would download it; nothing is changed', () => {
    const r = sh(distroProbe('demo', 'dnf'));
    expect(r.status).toBe(0);
    const p = parseDistroProbe('demo', r.stdout, 'dnf');
    expect(p).toEqual({
      name: 'demo 1.2-3.el9',
      upstream: '1.2',
      id: 'demo-1.2-3.el9.src.rpm',
      files: [],
      srpm: { spec: 'demo-1.2-3.el9', file: 'demo-1.2-3.el9.src.rpm' },
    });
    pkg = p as DistroPackage;
    // the oracle: the file dnf itself names for the source package
    expect(must('dnf -q download --source --url demo')).toMatch(/\/demo-1\.2-3\.el9\.src\.rpm$/m);
  });

  it('no source repository: why, in words, and no package', () => {
    dnfWrapper(join(T, 'none.d'));
    try {
      const p = parseDistroProbe('demo', sh(distroProbe('demo', 'dnf')).stdout, 'dnf');
      expect(p).toEqual({ missing: expect.stringMatching(/no source RPM of 'demo': no source repository is enabled/) });
      expect(parseDistroProbe('nosuch', sh(distroProbe('nosuch', 'dnf')).stdout, 'dnf')).toHaveProperty('missing');
    } finally {
      dnfWrapper(join(T, 'repos.d'));
    }
  });

  it('a source RPM signed by a key the host does not trust is refused and deleted', () => {
    const dir = join(T, 'sources-untrusted');
    const r = sh(fetchScript({ component: 'libvirt', version: 'distro', fileName: '', srpm: pkg.srpm }, '', dir));
    expect(r.status).toBe(5);
    expect(r.stderr).toMatch(/the source RPM demo-1\.2-3\.el9\.src\.rpm is not signed by a key this host trusts/);
    expect(existsSync(join(dir, 'demo-1.2-3.el9.src.rpm'))).toBe(false);
  });

  it('with the key trusted: downloaded, signature checked, unpacked with the distribution’s patch applied', () => {
    must(`rpmkeys --import ${T}/key.asc`);
    const dir = join(T, 'sources');
    const fetch = fetchScript({ component: 'libvirt', version: 'distro', fileName: '', srpm: pkg.srpm }, '', dir);
    const path = must(fetch).trim().split('\n').pop()!;
    expect(path).toBe(join(dir, 'demo-1.2-3.el9.src.rpm'));
    // a second fetch finds it verified and downloads nothing
    rmSync(join(T, 'repo/src'), { recursive: true }); // the repository is gone: only the file here can satisfy it
    expect(must(fetch).trim()).toBe(path);
    const W = join(T, 'work');
    mkdirSync(join(W, 'src'), { recursive: true });
    must([`W=${W}; SRC=${path}`, ...srpmUnpack('libvirt')].join('\n'));
    expect(readFileSync(join(W, 'src/hello.txt'), 'utf8')).toBe('patched by the distribution\n');
    expect(existsSync(join(W, 'src/meson.build'))).toBe(true);
    expect(existsSync(join(W, 'rpm'))).toBe(false); // the private _topdir is gone
    // nothing went into the rpm database: a source RPM's files only
    expect(spawnSync('rpm', ['-q', 'demo'], { env, encoding: 'utf8' }).status).not.toBe(0);
  });

  it('a source RPM whose file was changed after download is downloaded again (digest check)', () => {
    const dir = join(T, 'sources');
    const f = join(dir, 'demo-1.2-3.el9.src.rpm');
    const bytes = readFileSync(f);
    bytes[bytes.length - 10] ^= 0xff;
    writeFileSync(f, bytes);
    // the repository is gone (previous test): the damaged file is deleted and the download fails, exit 3
    const r = sh(fetchScript({ component: 'libvirt', version: 'distro', fileName: '', srpm: pkg.srpm }, '', dir));
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/cannot download the source RPM of demo-1\.2-3\.el9/);
    expect(existsSync(f)).toBe(false);
  });
});
