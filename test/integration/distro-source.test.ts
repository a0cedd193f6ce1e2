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

const inventory = (name: string, vars: string[]) => {
  const f = join(dir, name);
  writeFileSync(
    f,
    [
      'all:',
      '  hosts:',
      '    localhost:',
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
  return { name: m[1], sha256: m[2] };
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
      // a checksum or keyring does not apply to a package checked by its signed index
      const sha = inventory('sha.yaml', ['qemu_version: distro', `qemu_sha256: ${'a'.repeat(64)}`]);
      const s = await run(['plan', '-i', sha, '--steps', 'qemu']);
      expect(s.code).toBe(2);
      expect(s.stdout + s.stderr).toMatch(
        /sha\.yaml:\d+:\d+: localhost\.qemu_sha256: qemu_source is distro: .* remove it/,
      );
    },
    120_000,
  );

  it('a build host with no source repository: exit 2, one line naming the file, line and key; nothing written', async () => {
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
      /nosrc\.yaml:\d+:\d+: localhost\.libvirt_source: libvirt_source is distro, but on the build host localhost no source repository is configured \(no deb-src lines in its apt sources\)/,
    );
    expect(existsSync(join(dir, 'buildhost'))).toBe(false);
    expect(existsSync(join(dir, 'cache', 'artifacts'))).toBe(false);
    expect(readdirSync(dir).filter((f) => !/\.yaml$|^journal$|^apt-nosrc$|^cache$/.test(f))).toEqual([]);
  }, 120_000);
});
