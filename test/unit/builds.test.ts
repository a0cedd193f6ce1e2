// Source builds, pure parts: config fragments, GRUB menus, artifact keys, sources, plans from fixtures.
// The real builds, installs and trial boots are in test/lab/builds.test.ts.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { parseInv } from '../harness/fake-host.ts';
import { resolveParams } from '../../src/runner/run.ts';
import { defaultEntry, entryOf, parseGrubCfg } from '../../src/artifacts/grub.ts';
import {
  artifactKey,
  buildScript,
  kernelRelease,
  packageBody,
  packageVersion,
  type BuildSpec,
} from '../../src/artifacts/recipes.ts';
import { fetchScript, parseDistroProbe, sourceOf, versionFits } from '../../src/artifacts/sources.ts';
import { progressMeter } from '../../src/artifacts/artifacts.ts';
import kernel, { checkFragment, trialScript, trialCheck, HOLD_DROPIN } from '../../steps/kernel.ts';
import qemu from '../../steps/qemu.ts';
import libvirt, { qemuConfWarnings, setConf } from '../../steps/libvirt.ts';
import { debScripts, LIBVIRT_CHECK, qemuAccounts, qemuCheck, rpmScriptlets } from '../../src/artifacts/maintainer.ts';
import { debianFacts, fakeCtx, host, loose, rockyFacts } from '../harness/fake-host.ts';
import { buildParams, specFor } from '../../src/artifacts/kit.ts';

const LAB_GRUB = readFileSync('test/fixtures/grub/debian12-lab.cfg', 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'kvmforge-builds-'));
const tarball = join(dir, 'linux-6.1.192.tar.xz');
writeFileSync(tarball, 'not really a kernel');

const spec = (over: Partial<BuildSpec> = {}): BuildSpec => ({
  component: 'qemu',
  version: '7.2.0',
  sourceSha: 'a'.repeat(64),
  distro: { family: 'debian', id: 'debian', versionId: '12', arch: 'x86_64', pm: 'apt' },
  options: { prefix: '/usr/local', configureArgs: [] },
  files: {},
  ...over,
});

describe('config fragments', () => {
  it('accepts the thesis fragment and the minimal-boot one', () => {
    for (const f of ['templates/kernel/virtualization.config', 'templates/kernel/minimal-boot.config'])
      expect(checkFragment(f, readFileSync(f, 'utf8'))).toBeUndefined();
  });
  it('names the file and line of a bad line', () => {
    const err = checkFragment('frag.config', 'CONFIG_KVM=y\nKVM=y\nCONFIG_X=maybe\n# CONFIG_Y is not set\n');
    expect(err?.problems.map((p) => [p.file, p.line])).toEqual([
      ['frag.config', 2],
      ['frag.config', 3],
    ]);
  });
});

describe('GRUB menu', () => {
  const entries = parseGrubCfg(LAB_GRUB);
  it('lists entries with their submenu path and release', () => {
    expect(entries.map((e) => [e.path, e.release, e.index])).toEqual([
      ['gnulinux-simple-LABEL=kvmforge-root', '6.1.0-50-amd64', 0],
      [
        'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-6.1.0-50-amd64-advanced-LABEL=kvmforge-root',
        '6.1.0-50-amd64',
        1,
      ],
      [
        'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-6.1.0-50-amd64-recovery-LABEL=kvmforge-root',
        '6.1.0-50-amd64',
        1,
      ],
    ]);
  });
  it('resolves the default from an index, a saved path, an id or a title', () => {
    expect(defaultEntry(entries, '0', '')?.path).toBe('gnulinux-simple-LABEL=kvmforge-root');
    expect(defaultEntry(entries, 'saved', '')?.index).toBe(0);
    expect(defaultEntry(entries, 'saved', entries[2].path)?.recovery).toBe(true);
    expect(defaultEntry(entries, 'gnulinux-6.1.0-50-amd64-advanced-LABEL=kvmforge-root', '')?.path).toBe(
      entries[1].path,
    );
    expect(defaultEntry(entries, 'Debian GNU/Linux', '')?.index).toBe(0);
    expect(entryOf(entries, '6.1.0-50-amd64')?.path).toBe(entries[1].path);
  });
});

describe('artifact keys', () => {
  const k = artifactKey(spec());
  it('are stable for the same inputs and change with any input', () => {
    expect(artifactKey(spec())).toBe(k);
    expect(artifactKey(spec({ version: '7.2.1' }))).not.toBe(k);
    expect(artifactKey(spec({ sourceSha: 'b'.repeat(64) }))).not.toBe(k);
    expect(artifactKey(spec({ options: { prefix: '/usr', configureArgs: [] } }))).not.toBe(k);
    expect(artifactKey(spec({ distro: { ...spec().distro, versionId: '11' } }))).not.toBe(k);
    expect(artifactKey(spec({ files: { 'fragment-1.config': 'CONFIG_KVM=y\n' } }))).not.toBe(k);
  });
  it('show in the package version and the kernel release', () => {
    expect(packageVersion(spec(), k)).toBe(`7.2.0-kvmforge.${k.slice(0, 12)}`);
    expect(kernelRelease(spec({ component: 'kernel', version: '6.1.192' }), k)).toBe(
      `6.1.192-kvmforge-${k.slice(0, 8)}`,
    );
  });
  it('build scripts quote their options', () => {
    const s = buildScript(spec({ options: { prefix: '/opt/q', configureArgs: ["--x=a'b"] } }), k, '/w', '/s.tar', '/o');
    expect(s).toContain("'--x=a'\\''b'");
    // the user's configure options come after kvmforge's own, so --enable-debug-info wins over its default
    expect(s.indexOf('--disable-debug-info')).toBeGreaterThan(0);
    expect(s.indexOf('--disable-debug-info')).toBeLessThan(s.indexOf("'--x=a'"));
    expect(spawnSync('sh', ['-n'], { input: s }).status).toBe(0);
    const ks = buildScript(
      spec({
        component: 'kernel',
        options: { base: 'tinyconfig', debugInfo: 'no' },
        files: { 'fragment-1.config': '' },
      }),
      k,
      '/w',
      '/s.tar',
      '/o',
    );
    expect(spawnSync('sh', ['-n'], { input: ks }).status).toBe(0);
    expect(ks).toContain('bindeb-pkg');
  });
});

describe('sources', () => {
  it('need a sha256 for a download, name the var, and take a local file', () => {
    const h = host(['kernel_version: 6.1.192']);
    expect(() => sourceOf(h, 'kernel', dir)).toThrow(
      new RegExp(
        String.raw`h1\.kernel_sha256: a download` +
          String.raw` \(https:\/\/cdn\.kernel\.org\/pub\/linux\/kernel\/v6\.x\/linux-6\.1\.192\.tar\.xz\) needs its` +
          String.raw` published sha256`,
      ),
    );
    expect(() => sourceOf(host(['qemu_version: "7.2; rm -rf /"']), 'qemu', dir)).toThrow(ConfigError);
    expect(() => sourceOf(host(['qemu_version: 7.2.0', 'qemu_source: nowhere.tar.xz']), 'qemu', dir)).toThrow(
      /does not exist/,
    );
    expect(sourceOf(host(['kernel_version: 6.1.192', `kernel_source: ${tarball}`]), 'kernel', dir)?.path).toBe(tarball);
  });
  it('a tarball that does not match its checksum is refused and deleted', () => {
    const src = join(dir, 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'linux-6.1.192.tar.xz'), 'tampered');
    const s = sourceOf(host(['kernel_version: 6.1.192', `kernel_source: ${tarball}`]), 'kernel', dir)!;
    const r = spawnSync('sh', ['-eu'], { input: fetchScript(s, 'c'.repeat(64), src) });
    expect(r.status).toBe(4);
    expect(r.stderr.toString()).toMatch(/checksum mismatch .*expected c{64}, got [0-9a-f]{64}; the file was deleted/);
    expect(existsSync(join(src, 'linux-6.1.192.tar.xz'))).toBe(false);
    const sha = execFileSync('sha256sum', [tarball]).toString().split(' ')[0];
    execFileSync('cp', [tarball, join(src, 'linux-6.1.192.tar.xz')]);
    const ok = spawnSync('sh', ['-eu'], { input: fetchScript(s, sha, src) });
    expect(ok.status).toBe(0);
    expect(ok.stdout.toString().trim()).toBe(join(src, 'linux-6.1.192.tar.xz'));
  });
});

describe('distribution source packages', () => {
  // `apt-get source --print-uris --only-source qemu` on Debian 12, and apt's answers without deb-src or a package
  const QEMU = [
    'Reading package lists...',
    "NOTICE: 'qemu' packaging is maintained in the 'Git' version control system at:",
    'Need to get 23.9 MB of source archives.',
    "'http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2%2bdfsg-7%2bdeb12u18.dsc' qemu_7.2+dfsg-7+deb12u18.dsc " +
      `6909 SHA256:${'6'.repeat(64)}`,
    "'http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2%2bdfsg.orig.tar.xz' qemu_7.2+dfsg.orig.tar.xz 23523172 " +
      `SHA256:${'9'.repeat(64)}`,
  ].join('\n');
  it('reads the package, its upstream version and its files (the .dsc first)', () => {
    const p = parseDistroProbe('qemu', QEMU);
    expect(p).toEqual({
      name: 'qemu 7.2+dfsg-7+deb12u18',
      upstream: '7.2',
      id: '6'.repeat(64),
      files: [
        {
          url: 'http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2%2bdfsg-7%2bdeb12u18.dsc',
          name: 'qemu_7.2+dfsg-7+deb12u18.dsc',
          sha256: '6'.repeat(64),
        },
        {
          url: 'http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2%2bdfsg.orig.tar.xz',
          name: 'qemu_7.2+dfsg.orig.tar.xz',
          sha256: '9'.repeat(64),
        },
      ],
    });
    expect(parseDistroProbe('linux', `'u' linux_6.1.192-3.dsc 1 SHA256:${'1'.repeat(64)}`)).toMatchObject({
      upstream: '6.1.192',
    });
    expect(versionFits('7.2.22', '7.2')).toBe(true);
    expect(versionFits('7.2', '7.2')).toBe(true);
    expect(versionFits('7.20.1', '7.2')).toBe(false);
    expect(versionFits('8.0.0', '7.2')).toBe(false);
  });
  it('says why there is none', () => {
    expect(parseDistroProbe('qemu', "E: You must put some 'deb-src' URIs in your sources.list")).toEqual({
      missing: 'no source repository is configured (no deb-src lines in its apt sources)',
    });
    expect(parseDistroProbe('qemu', 'E: Unable to find a source package for qemu')).toEqual({
      missing: "its source repositories have no package 'qemu'",
    });
  });
  it('distro refuses a checksum or another source; the version may be distro', () => {
    expect(() => sourceOf(host(['qemu_version: distro', 'qemu_source: x.tar.xz']), 'qemu', dir)).toThrow(
      /h1\.qemu_source: qemu_version is distro .* must be distro or unset, not 'x\.tar\.xz'/,
    );
    const keyring = host(['qemu_version: 7.2.0', 'qemu_source: distro', 'qemu_keyring: k']);
    expect(() => sourceOf(keyring, 'qemu', dir)).toThrow(/h1\.qemu_keyring: qemu_source is distro/);
    expect(sourceOf(host(['libvirt_version: distro']), 'libvirt', dir)).toEqual({
      component: 'libvirt',
      version: 'distro',
      fileName: '',
      distro: true,
    });
  });
  it('fetches every file the index names and refuses one that does not match it', () => {
    const from = join(dir, 'mirror');
    const to = join(dir, 'distro-src');
    mkdirSync(from, { recursive: true });
    writeFileSync(join(from, 'p_1.0-1.dsc'), 'dsc');
    writeFileSync(join(from, 'p_1.0.orig.tar.xz'), 'orig');
    const sha = (f: string) =>
      execFileSync('sha256sum', [join(from, f)])
        .toString()
        .split(' ')[0];
    const files = ['p_1.0-1.dsc', 'p_1.0.orig.tar.xz'].map((name) => ({
      url: `file://${join(from, name)}`,
      name,
      sha256: sha(name),
    }));
    const s = { component: 'qemu' as const, version: '1.0', fileName: '', distro: true, distroFiles: files };
    const ok = spawnSync('sh', ['-eu'], { input: fetchScript(s, files[0].sha256, to) });
    expect(ok.stderr.toString()).toBe('');
    expect(ok.stdout.toString().trim()).toBe(join(to, 'p_1.0-1.dsc'));
    expect(readdirSync(to).sort()).toEqual(['p_1.0-1.dsc', 'p_1.0.orig.tar.xz']);
    // the mirror's file changed: refused, nothing half-written kept
    writeFileSync(join(from, 'p_1.0.orig.tar.xz'), 'tampered');
    execFileSync('rm', [join(to, 'p_1.0.orig.tar.xz')]);
    const bad = spawnSync('sh', ['-eu'], { input: fetchScript(s, files[0].sha256, to) });
    expect(bad.status).toBe(4);
    expect(bad.stderr.toString()).toMatch(/checksum mismatch for p_1\.0\.orig\.tar\.xz: the package index says/);
    expect(readdirSync(to)).toEqual(['p_1.0-1.dsc']);
  });
});

describe('unreachable sources', () => {
  it.runIf(spawnSync('sh', ['-c', 'command -v curl || command -v wget']).status === 0)(
    'a URL that cannot be fetched fails clearly and leaves nothing behind',
    () => {
      const src = join(dir, 'dl');
      const s = sourceOf(
        host([
          'qemu_version: 7.2.0',
          'qemu_source: http://127.0.0.1:9/qemu-7.2.0.tar.xz',
          `qemu_sha256: ${'d'.repeat(64)}`,
        ]),
        'qemu',
        dir,
      )!;
      const r = spawnSync('sh', ['-eu'], { input: fetchScript(s, s.sha256!, src) });
      expect(r.status).toBe(3);
      expect(r.stderr.toString()).toContain('cannot download http://127.0.0.1:9/qemu-7.2.0.tar.xz');
      expect(readdirSync(src)).toEqual([]);
    },
  );
});

describe('build host', () => {
  it('must be a host of the inventory (exit 2 before any connection)', () => {
    const inv = parseInv(
      [
        'all:',
        '  hosts:',
        '    a:',
        `      qemu_version: 7.2.0`,
        `      qemu_source: ${tarball}`,
        '      build_host: builder',
      ].join('\n') + '\n',
      join(dir, 'inv.yaml'),
    );
    expect(() => resolveParams(inv.hosts, [qemu], inv.hosts)).toThrow(
      /inv\.yaml:6:\d+: a\.build_host: 'builder' is not a host of the inventory \(nor localhost, this machine\); hosts/,
    );
  });
});

const kernelHost = () =>
  host(['kernel_version: 6.1.192', `kernel_source: ${tarball}`, 'kernel_config_base: tinyconfig', 'build_host: h1']);

describe('kernel step plans', () => {
  const p = kernel.params(kernelHost())!;
  const release = async () => {
    const ctx = fakeCtx(
      debianFacts(),
      { outputs: { 'grub-state:*': 'running=6.1.0-50-amd64\ninstalled=\nsaved=\ndefault=0\n---\n' + LAB_GRUB } },
      kernelHost(),
    );
    const changes = await kernel.plan({ ...ctx, inventory: [ctx.host], connect: async () => undefined as never }, p);
    return { changes, release: /install kernel (\S+);/.exec(changes[0].summary)![1] };
  };
  it('a fresh host: install with the old kernel held as default, then a trial boot', async () => {
    const { changes, release: rel } = await release();
    expect(changes.map((c) => c.summary)).toEqual([
      `install kernel ${rel}; 6.1.0-50-amd64 stays the default`,
      `trial boot of ${rel} (panic=10); default only if healthy`,
    ]);
    expect(changes[1].kind).toBe('reboot');
    expect(loose(changes)[1].check?.commit).toContain(
      `grub-set-default 'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-${rel}-advanced-LABEL=kvmforge-root'`,
    );
    expect(changes[0].kind).toBe('install'); // the artifact is built or fetched when the change is applied
  });
  it('running the new kernel from its trial: make it the default; default already: nothing', async () => {
    const { release: rel } = await release();
    const withNew = LAB_GRUB.replace(/6\.1\.0-50-amd64/g, rel);
    const at = (saved: string) =>
      fakeCtx(
        debianFacts(),
        {
          outputs: {
            'grub-state:*':
              `running=${rel}\ninstalled=install ok ` + `installed\nsaved=${saved}\ndefault=saved\n---\n${withNew}`,
          },
        },
        kernelHost(),
      );
    const old = 'gnulinux-advanced-LABEL=kvmforge-root>gnulinux-6.1.0-50-amd64-advanced-LABEL=kvmforge-root';
    const c1 = await kernel.plan(at(old), p);
    expect(c1.map((c) => c.summary)).toEqual([`make ${rel} the default kernel (its trial boot was healthy)`]);
    expect(
      await kernel.plan(at(`gnulinux-advanced-LABEL=kvmforge-root>gnulinux-${rel}-advanced-LABEL=kvmforge-root`), p),
    ).toEqual([]);
  });
  it("the trial entry is the new kernel's own entry with panic=N added, booted once", () => {
    const rel = '6.1.192-kvmforge-abcd1234';
    const t = mkdtempSync(join(tmpdir(), 'kvmforge-trial-'));
    writeFileSync(join(t, 'grub.cfg'), LAB_GRUB.replace(/6\.1\.0-50-amd64/g, rel));
    for (const tool of ['grub-reboot', 'grub-editenv']) {
      writeFileSync(join(t, tool), `#!/bin/sh\necho "${tool} $*" >> ${t}/calls\n`);
      chmodSync(join(t, tool), 0o755);
    }
    const r = spawnSync('sh', ['-eu'], {
      input: trialScript(rel, 7, 'rootdelay=2', join(t, 'grub.cfg'), join(t, 'custom.cfg')),
      env: { ...process.env, PATH: `${t}:${process.env.PATH}` },
    });
    expect(r.stderr.toString()).toBe('');
    const custom = readFileSync(join(t, 'custom.cfg'), 'utf8');
    expect(custom).toMatch(
      new RegExp(
        String.raw`^### kvmforge trial begin\nmenuentry "kvmforge trial: Linux 6\.1\.192-kvmforge-abcd1234" --id` +
          String.raw` kvmforge-trial \{\n`,
      ),
    );
    expect(custom).toContain(
      `\tlinux\t/boot/vmlinuz-${rel} root=LABEL=kvmforge-root ro  console=ttyS0,115200 net.ifnames=0 quiet ` +
        `loglevel=3 panic=7 rootdelay=2\n`,
    );
    expect(custom).toContain(`\tinitrd\t/boot/initrd.img-${rel}\n}\n### kvmforge trial end\n`);
    expect(custom).not.toContain('recovery');
    expect(readFileSync(join(t, 'calls'), 'utf8')).toContain('grub-reboot kvmforge-trial');
    // again: one block, not two
    spawnSync('sh', ['-eu'], {
      input: trialScript(rel, 7, '', join(t, 'grub.cfg'), join(t, 'custom.cfg')),
      env: { ...process.env, PATH: `${t}:${process.env.PATH}` },
    });
    expect(readFileSync(join(t, 'custom.cfg'), 'utf8').match(/trial begin/g)).toHaveLength(1);
    expect(spawnSync('sh', ['-n'], { input: trialCheck(rel, 7) }).status).toBe(0);
  });
  it('refuses a host whose running kernel has no GRUB entry', async () => {
    const ctx = fakeCtx(
      debianFacts(),
      { outputs: { 'grub-state:*': 'running=5.10.0-9-amd64\ninstalled=\nsaved=\ndefault=0\n---\n' + LAB_GRUB } },
      kernelHost(),
    );
    await expect(
      kernel.plan({ ...ctx, inventory: [ctx.host], connect: async () => undefined as never }, p),
    ).rejects.toThrow(/no GRUB entry boots the running kernel 5\.10\.0-9-amd64/);
  });
  it('bad fragments and bases are bad input', () => {
    writeFileSync(join(dir, 'bad.config'), 'CONFIG_KVM=y\nCONFIG_VHOST_NET=yes\n');
    expect(() =>
      kernel.params(
        host([
          'kernel_version: 6.1.192',
          `kernel_source: ${tarball}`,
          `kernel_config_fragments: [${join(dir, 'bad.config')}]`,
        ]),
      ),
    ).toThrow(/bad\.config:2:1: expected CONFIG_NAME=/);
    expect(() =>
      kernel.params(host(['kernel_version: 6.1.192', `kernel_source: ${tarball}`, 'kernel_config_base: nope.config'])),
    ).toThrow(/h1\.kernel_config_base: expected running, defconfig, tinyconfig or a config file/);
    expect(HOLD_DROPIN).toMatch(/grub\.d/);
  });
});

describe('qemu and libvirt step plans', () => {
  const qh = () => host(['qemu_version: 7.2.0', `qemu_source: ${tarball}`]);
  it(
    'qemu: installed at the artifact version and starting → nothing; not starting → reinstall; else one install, ' +
      'each checked',
    async () => {
      const p = qemu.params(qh())!;
      const ctx = fakeCtx(debianFacts(), { outputs: { 'qemu-installed:*': 'version=\n' } }, qh());
      const c = await qemu.plan(ctx, p);
      expect(c.map((x) => x.summary)).toEqual([
        expect.stringMatching(/^install QEMU 7\.2\.0 \(7\.2\.0-kvmforge\.[0-9a-f]{12}\)$/),
      ]);
      const version = /\((\S+)\)/.exec(c[0].summary)![1];
      expect(
        await qemu.plan(
          fakeCtx(debianFacts(), { outputs: { 'qemu-installed:*': `version=${version}\nstarts=yes\n` } }, qh()),
          p,
        ),
      ).toEqual([]);
      const broken = await qemu.plan(
        fakeCtx(debianFacts(), { outputs: { 'qemu-installed:*': `version=${version}\nstarts=no\n` } }, qh()),
        p,
      );
      expect(broken.map((x) => x.summary)).toEqual([
        `reinstall QEMU 7.2.0 (${version}): the installed binary does not start`,
      ]);
      // the probe itself runs under sh -eu (read-only: dpkg-query / rpm, qemu -version)
      expect(spawnSync('sh', ['-eu'], { input: ctx.probed[0] }).stdout.toString()).toMatch(/^version=/);
    },
  );
  it(
    'qemu: the check after an install proves the binary starts, with KVM where /dev/kvm opens (real sh, a fake ' +
      'QEMU)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'kvf-qemu-'));
      mkdirSync(join(dir, 'bin'));
      const q = join(dir, 'bin', 'qemu-system-x86_64');
      writeFileSync(
        q,
        '#!/bin/sh\ncase "$*" in *-version*) echo "QEMU emulator version 7.2.22";; *kvm*) echo "qemu: failed to ' +
          'initialize kvm: Permission denied" >&2; exit 1;; esac\n',
        { mode: 0o755 },
      );
      const run = () => spawnSync('sh', ['-eu'], { input: qemuCheck(dir) });
      const r = run();
      if (existsSync('/dev/kvm')) {
        expect(r.status).toBe(1);
        expect(r.stderr.toString()).toMatch(
          new RegExp(
            String.raw`QEMU does not start with KVM \(-accel kvm -machine none\): qemu: failed to initialize kvm:` +
              String.raw` Permission denied`,
          ),
        );
      } else expect(r.stdout.toString()).toMatch(/QEMU emulator version 7\.2\.22 starts \(no usable \/dev\/kvm/);
      writeFileSync(q, '#!/bin/sh\necho "error while loading shared libraries: libslirp.so.0" >&2; exit 127\n', {
        mode: 0o755,
      });
      expect(run().stderr.toString()).toMatch(/the installed QEMU does not start/);
    },
  );
  const lh = (conf = '{user: root, group: root, vnc_listen: 0.0.0.0}') =>
    host(['libvirt_version: 9.0.0', `libvirt_source: ${tarball}`, `libvirt_qemu_conf: ${conf}`]);
  it(
    'libvirt: qemu.conf settings with warnings; enabled and its QEMU driver answering → nothing more; not answering ' +
      '→ not converged',
    async () => {
      const p = libvirt.params(lh())!;
      const firstCtx = fakeCtx(
        debianFacts(),
        { outputs: { 'libvirt-state:*': 'version=\nenabled=\nactive=\nuser=yes\ngroup=yes\n' } },
        lh(),
      );
      const first = await libvirt.plan(firstCtx, p);
      expect(spawnSync('sh', ['-eu'], { input: firstCtx.probed[0] }).stdout.toString()).toMatch(
        /^version=.*\nenabled=.*\nactive=.*\nuser=yes\ngroup=yes\n$/,
      );
      expect(first.map((c) => c.summary)).toEqual([
        expect.stringMatching(/^install libvirt 9\.0\.0/),
        '/etc/libvirt/qemu.conf: user = "root", group = "root", vnc_listen = "0.0.0.0"',
        'libvirtd enabled, started and answering',
      ]);
      expect(loose(first)[2].script).toContain('virsh -c qemu:///system capabilities');
      expect(first.find((c) => c.warning)?.warning).toMatch(/QEMU runs as root.*vnc_listen on every address/);
      const version = /\((\S+)\)/.exec(first[0].summary)![1];
      const conf = setConf('#user = "qemu"\n#vnc_listen = "127.0.0.1"\n', {
        user: 'root',
        group: 'root',
        vnc_listen: '0.0.0.0',
      });
      expect(conf).toBe('user = "root"\nvnc_listen = "0.0.0.0"\ngroup = "root"\n');
      const state = (works: string) =>
        fakeCtx(
          debianFacts(),
          {
            outputs: {
              'libvirt-state:*':
                `version=${version}\nenabled=enabled\nactive=active\n` + `user=yes\ngroup=yes\nworks=${works}\n`,
            },
            files: { '/etc/libvirt/qemu.conf': conf },
          },
          lh(),
        );
      expect(await libvirt.plan(state('yes'), p)).toEqual([]);
      // the unit is active, but the daemon can't start its QEMU driver (the fresh-host bug): not converged
      expect((await libvirt.plan(state('no'), p)).map((c) => c.summary)).toEqual([
        'libvirtd enabled, started and answering (its QEMU driver does not answer now: virsh -c qemu:///system ' +
          'capabilities)',
      ]);
      expect(qemuConfWarnings({})).toEqual([]);
      expect(() => libvirt.params(host(['libvirt_qemu_conf: {user: "a\\"b"}']))).toThrow(
        /libvirt_qemu_conf\.user: a qemu\.conf string may not contain quotes/,
      );
    },
  );
  it(
    'libvirt: a qemu.conf user or group that does not exist and that the package does not make is bad input, before ' +
      'anything is installed',
    async () => {
      const plan = (conf: string, answer: string) =>
        libvirt.plan(
          fakeCtx(
            debianFacts(),
            { outputs: { 'libvirt-state:*': `version=\nenabled=\nactive=\n${answer}` } },
            lh(conf),
          ),
          libvirt.params(lh(conf))!,
        );
      const err = await plan('{user: vmrunner, group: kvm}', 'user=no\ngroup=yes\n').catch((e) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toMatch(
        new RegExp(
          String.raw`inv\.yaml:\d+:\d+: h1\.libvirt_qemu_conf\.user: qemu\.conf user 'vmrunner' does not exist on h1,` +
            String.raw` and the kvmforge-libvirt package does not make it \(it makes the user libvirt-qemu and the` +
            String.raw` groups libvirt-qemu, kvm, libvirt\)`,
        ),
      );
      // the accounts the package makes are fine on a fresh host where they don't exist yet
      expect(
        (await plan('{user: libvirt-qemu, group: libvirt-qemu}', 'user=no\ngroup=no\n')).map((c) => c.summary)[0],
      ).toMatch(/^install libvirt/);
    },
  );
  it(
    'libvirt: the check after an install fails with libvirtd’s own error lines when the QEMU driver does not answer ' +
      '(real sh; systemctl, virsh, journalctl faked)',
    () => {
      const bin = mkdtempSync(join(tmpdir(), 'kvf-lv-'));
      writeFileSync(join(bin, 'systemctl'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      writeFileSync(join(bin, 'sleep'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      writeFileSync(join(bin, 'timeout'), '#!/bin/sh\nshift; exec "$@"\n', { mode: 0o755 });
      // time runs fast: every `date +%s` is a minute later
      writeFileSync(
        join(bin, 'date'),
        `#!/bin/sh\nn=$(cat ${bin}/t 2>/dev/null || echo 0); n=$((n+60)); echo $n > ${bin}/t; echo $n\n`,
        { mode: 0o755 },
      );
      writeFileSync(join(bin, 'virsh'), '#!/bin/sh\necho "error: failed to connect to the hypervisor" >&2; exit 1\n', {
        mode: 0o755,
      });
      writeFileSync(
        join(bin, 'journalctl'),
        "#!/bin/sh\necho 'info : libvirt version: 9.0.0'\necho \"error : virStateInitialize:657 : Initialization of " +
          "QEMU state driver failed: Failed to parse user 'libvirt-qemu'\"\n",
        { mode: 0o755 },
      );
      const r = spawnSync('sh', ['-eu'], { input: LIBVIRT_CHECK, env: { PATH: `${bin}:/usr/bin:/bin` } });
      expect(r.status).toBe(1);
      expect(r.stderr.toString()).toMatch(
        new RegExp(
          String.raw`libvirtd's QEMU driver does not answer \(virsh -c qemu:\/\/\/system capabilities\): error:` +
            String.raw` failed to connect to the hypervisor`,
        ),
      );
      expect(r.stderr.toString()).toContain(
        "Initialization of QEMU state driver failed: Failed to parse user 'libvirt-qemu'",
      );
      writeFileSync(
        join(bin, 'virsh'),
        `#!/bin/sh\ncase "$*" in *domcapabilities*) echo "<domainCapabilities/>";; *) echo ` +
          `"<capabilities><guest><arch name='x86_64'><domain type='qemu'/><domain ` +
          `type='kvm'/></arch></guest></capabilities>";; esac\n`,
        { mode: 0o755 },
      );
      const ok = spawnSync('sh', ['-eu'], { input: LIBVIRT_CHECK, env: { PATH: `${bin}:/usr/bin:/bin` } });
      expect(ok.status).toBe(0);
      expect(ok.stdout.toString()).toMatch(
        /libvirt answers after \d+ s: QEMU driver loaded \(x86_64 domcapabilities\), domain types: kvm qemu/,
      );
    },
  );
});

describe('build progress', () => {
  it('ninja steps and kernel objects become a line with an estimate', () => {
    let now = 0;
    const m = progressMeter('qemu', undefined, 0, () => now);
    now = 60_000;
    expect(m('[100/400] Compiling C object foo.o')).toBe('qemu: 100/400 compiled, 1m00s elapsed, ~3m00s left');
    const k = progressMeter('kernel', 100, 0, () => now);
    let last: string | undefined;
    for (let i = 0; i < 50; i++) last = k('  CC      kernel/fork.o') ?? last;
    expect(last).toBe('kernel: 50/~100 objects compiled, 1m00s elapsed, ~1m00s left');
    expect(k('KVMFORGE_PHASE package')).toBe('kernel: package (1m00s)');
  });
});

describe('the packages stand on their own: maintainer scripts', () => {
  const lv = (pm: 'apt' | 'dnf'): BuildSpec => ({
    component: 'libvirt',
    version: '9.0.0',
    sourceSha: 'x',
    distro: {
      family: pm === 'apt' ? 'debian' : 'rhel',
      id: pm === 'apt' ? 'debian' : 'rocky',
      versionId: pm === 'apt' ? '12' : '9',
      arch: 'x86_64',
      pm,
    },
    options: { mesonArgs: [] },
    files: {},
  });
  it(
    'deb: postinst makes the QEMU user and groups the build names, owns the directories, enables the units; prerm ' +
      'stops them; postrm purges the accounts (each valid sh)',
    () => {
      const { postinst, prerm, postrm } = debScripts('libvirt');
      for (const s of [postinst, prerm, postrm])
        expect(spawnSync('sh', ['-n'], { input: `QEMU_USER=x\nQEMU_GROUP=y\n${s}` }).status).toBe(0);
      for (const s of [
        'groupadd --system kvm',
        'groupadd --system libvirt',
        'useradd --system --gid "$QEMU_GROUP" --groups kvm',
        'usermod -a -G kvm',
        'chown "$QEMU_USER:$QEMU_GROUP" "$d"',
        'systemctl enable virtlogd.socket',
        'systemctl try-restart libvirtd.service',
      ])
        expect(postinst).toContain(s);
      expect(prerm).toMatch(
        /if \[ "\$1" = remove \]; then\nif \[ -d \/run\/systemd\/system \]; then systemctl stop libvirtd\.service/,
      );
      expect(postrm).toMatch(/if \[ "\$1" = purge \]; then[\s\S]*userdel "\$QEMU_USER"[\s\S]*groupdel libvirt/);
      // the package step reads the accounts from the configured build, and writes them in front of each script
      const body = packageBody(lv('apt'), 'k'.repeat(64));
      expect(body).toContain('#define QEMU_USER');
      expect(body).toMatch(/cat "\$W\/accounts"; printf '%s\\n' '[\s\S]*'; } > "\$STAGE\/DEBIAN\/postinst"/);
      expect(debScripts('qemu').postinst).toContain('getent group kvm >/dev/null || groupadd --system kvm');
    },
  );
  it('rpm (fixture: no RHEL host here): %pre makes the accounts, %post owns and enables, %preun stops on erase', () => {
    const body = packageBody(lv('dnf'), 'k'.repeat(64));
    for (const h of ['%pre', '%post', '%preun', '%postun']) expect(body).toContain(`echo ${h}\n  cat "$W/accounts"`);
    const scriptlets = rpmScriptlets('libvirt');
    expect(scriptlets.map(([h]) => h)).toEqual(['%pre', '%post', '%preun', '%postun']);
    for (const [, s] of scriptlets) expect(spawnSync('sh', ['-n'], { input: s }).status).toBe(0);
    expect(scriptlets[0][1]).toContain('useradd --system --gid "$QEMU_GROUP" --groups kvm');
    expect(scriptlets[2][1]).toMatch(/if \[ "\$1" -eq 0 \]; then .*systemctl stop libvirtd\.service/);
  });
  it('the QEMU user and group a build names: meson’s default per distro, or -Dqemu_user/-Dqemu_group', () => {
    expect(qemuAccounts({ id: 'debian', like: [] }, [])).toEqual({ user: 'libvirt-qemu', group: 'libvirt-qemu' });
    expect(qemuAccounts({ id: 'ubuntu', like: ['debian'] }, [])).toEqual({ user: 'libvirt-qemu', group: 'kvm' });
    expect(qemuAccounts({ id: 'rocky', like: ['rhel', 'centos', 'fedora'] }, [])).toEqual({
      user: 'qemu',
      group: 'qemu',
    });
    expect(qemuAccounts({ id: 'debian', like: [] }, ['-Dqemu_user=vm', '-Dqemu_group=vm'])).toEqual({
      user: 'vm',
      group: 'vm',
    });
  });
});

// the scripts themselves run for real in test/integration/srpm-source.test.ts
describe('<c>_source: distro on a dnf host (fixtures)', () => {
  const SRPM = 'KVMFORGE_SRPM qemu-kvm 17 8.2.0 11.el9_4\n';
  const dnfCtx = (vars: string[], probe = SRPM) => {
    const h = host(['qemu_version: distro', ...vars]);
    const ctx = fakeCtx(rockyFacts(), {}, h);
    const ran: string[] = [];
    const t = {
      exec: async (cmd: string) => (ran.push(cmd), { code: 0, stdout: probe, stderr: '' }),
      close: async () => undefined,
    };
    return { h, ran, ctx: { ...ctx, inventory: [h], connect: async () => t as never } };
  };
  it('asks dnf for the source RPM, records it in the artifact, and unpacks it with rpmbuild -bp', async () => {
    const { h, ran, ctx } = dnfCtx(['build_host: localhost']);
    const a = await specFor(ctx, 'qemu', buildParams(h, 'qemu'), {});
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatch(/dnf -q repoquery --srpm --latest-limit 1 .* qemu-kvm 2>&1$/);
    expect(a.spec).toMatchObject({
      version: '8.2.0',
      sourceSha: 'qemu-kvm-8.2.0-11.el9_4.src.rpm',
      sourcePackage: 'qemu-kvm 17:8.2.0-11.el9_4',
    });
    expect(a.build.source.srpm).toEqual({
      spec: 'qemu-kvm-17:8.2.0-11.el9_4',
      file: 'qemu-kvm-8.2.0-11.el9_4.src.rpm',
    });
    const fetch = fetchScript(a.build.source, a.spec.sourceSha, '/b/sources');
    expect(fetch).toContain('dnf -q download --source --destdir . qemu-kvm-17:8.2.0-11.el9_4 ');
    expect(fetch).toContain('rpmkeys --checksig');
    const build = buildScript(a.spec, a.key, '/b/w', '/b/sources/x.src.rpm', '/b/out');
    expect(build).toContain('rpmbuild -bp --nodeps');
    expect(build).not.toContain('dpkg-source');
  });
  it('no source repository or a sha256: exit 2 naming the var', async () => {
    const none = dnfCtx([], ''); // the host builds for itself (the probe is memoized per build host and run)
    await expect(specFor(none.ctx, 'qemu', buildParams(none.h, 'qemu'), {})).rejects.toThrow(
      /qemu_source is distro, but on the build host \S+ no source RPM of 'qemu-kvm': no source repository/,
    );
    const sha = dnfCtx(['build_host: localhost', `qemu_sha256: ${'a'.repeat(64)}`]);
    await expect(specFor(sha.ctx, 'qemu', buildParams(sha.h, 'qemu'), {})).rejects.toThrow(
      /checked by its repository's index and its signature.*remove qemu_sha256/,
    );
  });
});
