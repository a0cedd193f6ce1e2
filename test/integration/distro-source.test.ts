// `<c>_source: distro` / `<c>_version: distro`, resolved for real on a build host (this machine, local transport):
// plan reads the source package apt would fetch and puts it in the artifact; a build host whose apt has no deb-src
// lines (an APT_CONFIG with no sources, as on a fresh server) is bad input: exit 2, one line, nothing written.
// The build from the package (QEMU) runs in test/lab/builds.test.ts.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT } from '../../src/core/paths.ts';

const dir = mkdtempSync(join(tmpdir(), 'kvmforge-distro-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const run = async (args: string[], env: Record<string, string> = {}) => {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(PROJECT, 'bin/kvmforge.js'), ...args, '--journal', join(dir, 'journal')],
      { env: { ...process.env, NO_COLOR: '1', KVMFORGE_CACHE: join(dir, 'cache'), ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
};

const inventory = (name: string, vars: string[], host = 'localhost') => {
  const f = join(dir, name);
  writeFileSync(
    f,
    [
      'all:',
      '  hosts:',
      `    ${host}:`,
      '      ansible_connection: local',
      `      build_dir: ${join(dir, 'buildhost')}`,
      ...vars.map((v) => `      ${v}`),
    ].join('\n') + '\n',
  );
  return f;
};

/** What apt on this machine says it would fetch for a source package (the oracle). */
const aptDsc = (pkg: string) => {
  const out = execFileSync('apt-get', ['source', '--print-uris', '--only-source', pkg], {
    encoding: 'utf8',
    env: { ...process.env, LC_ALL: 'C' },
  });
  const m = /^'[^']+' (\S+\.dsc) \d+ SHA256:([0-9a-f]{64})$/m.exec(out);
  if (!m) throw new Error(`apt-get source --print-uris ${pkg} lists no .dsc:\n${out}`);
  const orig = /^'[^']+' (\S+\.orig\.tar\.\w+) \d+ SHA256:([0-9a-f]{64})$/m.exec(out);
  return { name: m[1], sha256: m[2], orig: orig ? { name: orig[1], sha256: orig[2] } : undefined };
};

const hasDebSrc = () => {
  try {
    aptDsc('qemu');
    return true;
  } catch {
    return false;
  }
};

describe('sources from the distribution', () => {
  // CI's `kvmforge install-deps tests` adds deb-src lines (scripts/fetch-test-sources); a machine without them
  // can't run the positive half
  it.runIf(hasDebSrc())(
    'plan resolves qemu_version: distro on the build host to the package apt would fetch, and changes nothing',
    async () => {
      const dsc = aptDsc('qemu');
      const version = dsc.name.replace(/^qemu_/, '').replace(/\.dsc$/, '');
      const upstream = version.replace(/-[^-]*$/, '').replace(/[+~].*$/, '');
      const inv = inventory('distro.yaml', ['qemu_version: distro', 'qemu_prefix: /opt/kvmforge-distro-test']);
      const r = await run(['plan', '-i', inv, '--steps', 'qemu', '--diff']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`localhost qemu: install QEMU ${upstream} (${upstream}-kvmforge.`);
      expect(r.stdout).toContain(`from the distribution's source package qemu ${version}; built on`);
      // build_host: localhost with no such host in the inventory is this machine (Ansible's implicit localhost)
      const box = inventory('box.yaml', ['qemu_version: distro', 'build_host: localhost'], 'box');
      const b = await run(['plan', '-i', box, '--steps', 'qemu', '--diff']);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stdout).toContain(`box qemu: install QEMU ${upstream} (${upstream}-kvmforge.`);
      expect(b.stdout).toContain(`from the distribution's source package qemu ${version}; built on localhost unless`);
      // nothing fetched or built by a plan
      expect(existsSync(join(dir, 'buildhost'))).toBe(false);
      expect(existsSync(join(dir, 'cache', 'artifacts'))).toBe(false);
      // a version the package doesn't hold is bad input, named with what the build host offers
      const wrong = inventory('wrong.yaml', ['qemu_version: 8.1.0', 'qemu_source: distro']);
      const w = await run(['plan', '-i', wrong, '--steps', 'qemu']);
      expect(w.code).toBe(2);
      expect(w.stdout + w.stderr).toMatch(
        new RegExp(
          `wrong\\.yaml:\\d+:\\d+: localhost\\.qemu_version: qemu_source is distro and the build host localhost ` +
            `offers qemu ${version.replace(/[+.]/g, '\\$&')} \\(upstream ${upstream.replace(/\./g, '\\.')}\\); ` +
            `qemu_version '8\\.1\\.0' is not that version`,
        ),
      );
      // a sha256 is checked against the upstream tarball inside the package: Debian's QEMU is repacked (+dfsg)
      const sha = inventory('sha.yaml', ['qemu_version: distro', `qemu_sha256: ${'a'.repeat(64)}`]);
      const s = await run(['plan', '-i', sha, '--steps', 'qemu']);
      expect(s.code).toBe(2);
      expect(s.stdout.replace(/\s+/g, ' ')).toMatch(
        new RegExp(
          String.raw`sha\.yaml:\d+:\d+: localhost\.qemu_sha256: qemu_source is distro: the build host's qemu \S+ ` +
            `holds ${dsc.orig!.name.replace(/[+.]/g, '\\$&')} with sha256 ${dsc.orig!.sha256}, not the upstream ` +
            'tarball',
        ),
      );
      // libvirt's is upstream's own tarball: the thesis's sha256 holds for Debian's package too
      const lv = aptDsc('libvirt');
      const ok = inventory('libvirt.yaml', [
        'libvirt_version: 9.0.0',
        'libvirt_source: distro',
        `libvirt_sha256: ${lv.orig!.sha256}`,
      ]);
      const l = await run(['plan', '-i', ok, '--steps', 'libvirt']);
      // past the artifact (and its checks): the plan goes on to the host (which may lack systemd, as a container)
      expect(l.code, l.stdout + l.stderr).not.toBe(2);
      expect(l.stdout + l.stderr).not.toMatch(/libvirt_sha256|libvirt_source/);
      expect(l.stdout).toMatch(/localhost libvirt: install libvirt 9\.0\.0|libvirtd is enabled with systemd/);
      // the keyring of an upstream signature does not apply to a package checked by its signed index
      const kr = inventory('keyring.yaml', ['libvirt_version: distro', 'libvirt_keyring: /etc/hostname']);
      const k = await run(['plan', '-i', kr, '--steps', 'libvirt']);
      expect(k.code).toBe(2);
      expect(k.stdout + k.stderr).toMatch(
        /keyring\.yaml:\d+:\d+: localhost\.libvirt_keyring: libvirt_source is distro: .* remove it/,
      );
    },
    120_000,
  );

  it('no source repository on the build host: exit 2, one line naming the file, line and key', async () => {
    // apt as on a fresh server: no deb-src lines (and here no sources at all)
    const aptDir = join(dir, 'apt-nosrc');
    mkdirSync(join(aptDir, 'parts'), { recursive: true });
    writeFileSync(
      join(aptDir, 'apt.conf'),
      `Dir::Etc::SourceList "/dev/null";\nDir::Etc::SourceParts "${join(aptDir, 'parts')}";\n`,
    );
    const inv = inventory('nosrc.yaml', ['libvirt_version: distro']);
    const r = await run(['plan', '-i', inv, '--steps', 'libvirt'], { APT_CONFIG: join(aptDir, 'apt.conf') });
    expect(r.code).toBe(2);
    // the summary's failure line (wrapped to the terminal there, so read with its whitespace joined)
    const summary = r.stdout.replace(/\s+/g, ' ');
    expect(summary.match(/libvirt_source is distro/g)).toHaveLength(1);
    expect(summary).toMatch(
      new RegExp(
        String.raw`nosrc\.yaml:\d+:\d+: localhost\.libvirt_source: libvirt_source is distro, but on the build host ` +
          String.raw`localhost no source repository is configured \(no deb-src lines in its apt sources\)`,
      ),
    );
    expect(existsSync(join(dir, 'buildhost'))).toBe(false);
    expect(existsSync(join(dir, 'cache', 'artifacts'))).toBe(false);
    expect(readdirSync(dir).filter((f) => !/\.yaml$|^journal$|^apt-nosrc$|^cache$/.test(f))).toEqual([]);
  }, 120_000);
});
