// Source builds for the lab tests. Compiling kernel + QEMU + libvirt takes ~25 CPU-minutes here, so the
// lab project's setup starts the real `kvmforge build` (niced) in the background at once, and
// test/lab/builds.test.ts (sorted last) waits for it, checks it, then installs on lab VMs.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT } from '../../src/lab/paths.ts';
import { LAB_DIR } from './lab.ts';

export const SOURCES = process.env.KVMFORGE_SOURCES ?? '/var/cache/kvmforge-sources';
export const BUILDS = join(LAB_DIR, 'builds');
/** The control machine's artifact cache for the tests, and the build host's directory. */
export const BUILD_ENV = { KVMFORGE_CACHE: join(BUILDS, 'cache') };
export const BUILD_DIR = join(BUILDS, 'buildhost');
export const BUILD_RC = join(BUILDS, 'build.rc');
export const BUILD_OUT = join(BUILDS, 'build.json');
export const BUILD_LOG = join(BUILDS, 'build.log');

export function versions(): Record<string, string> {
  const f = join(SOURCES, 'versions.env');
  if (!existsSync(f)) throw new Error(`no test sources in ${SOURCES}: run kvmforge install-deps tests first`);
  return Object.fromEntries(
    readFileSync(f, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('=') as [string, string]),
  );
}

export type Component = 'kernel' | 'qemu' | 'libvirt';
const VERSION_OF: Record<Component, string> = {
  kernel: 'KERNEL_VERSION',
  qemu: 'QEMU_VERSION',
  libvirt: 'LIBVIRT_VERSION',
};

/** The vars every host of the build tests shares (so every host wants the same artifacts); a host
 * builds or installs a component when it also has `<component>_version`. */
export function buildVars(v = versions()): string[] {
  return [
    'build_host: localhost',
    `build_dir: ${BUILD_DIR}`,
    `kernel_source: ${SOURCES}/linux-source-6.1.tar.xz`,
    'kernel_config_base: tinyconfig',
    `kernel_config_fragments: [${PROJECT}/templates/kernel/minimal-boot.config, ` +
      `${PROJECT}/templates/kernel/virtualization.config]`,
    'kernel_panic_timeout: 5',
    `qemu_source: ${SOURCES}/qemu-7.2-debian.tar.gz`,
    'qemu_configure_args: [--disable-install-blobs, --with-git-submodules=ignore]',
    `libvirt_source: ${SOURCES}/libvirt_${v.LIBVIRT_VERSION}.orig.tar.xz`,
    `libvirt_signature: ${SOURCES}/libvirt_${v.LIBVIRT_VERSION}.orig.tar.xz.asc`,
    `libvirt_keyring: ${SOURCES}/libvirt-signing-key.gpg`,
  ];
}

export function versionVars(components: Component[], v = versions()): string[] {
  return components.map((c) => `${c}_version: "${v[VERSION_OF[c]]}"`);
}

/** An inventory: localhost (local transport, the build host; every component) plus extra hosts
 * (lines already indented), all sharing buildVars. */
export function buildInventory(name: string, extra: string[] = []): string {
  const lines = [
    'all:',
    '  vars:',
    ...buildVars().map((l) => `    ${l}`),
    '  hosts:',
    '    localhost:',
    '      ansible_connection: local',
    ...versionVars(['kernel', 'qemu', 'libvirt']).map((l) => `      ${l}`),
    ...extra,
  ];
  const file = join(BUILDS, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** Starts `kvmforge build` for localhost in the background (niced builds; the lab VMs keep priority). */
export function startBackgroundBuild() {
  if (process.env.KVMFORGE_SKIP_BUILDS) return;
  mkdirSync(BUILDS, { recursive: true });
  rmSync(BUILD_RC, { force: true });
  try {
    versions();
  } catch (e) {
    writeFileSync(BUILD_LOG, (e as Error).message + '\n');
    writeFileSync(BUILD_RC, '99\n');
    return;
  }
  const inv = buildInventory('build.yaml');
  // detached = a session of its own, and with the kernel's autogroup scheduling (on in Debian's
  // kernels) nice only ranks processes inside one session: sessions share the CPU equally. So the
  // session itself is put at nice 19 (/proc/self/autogroup), else the lab VMs run ~2x slower.
  const cmd =
    `echo 19 > /proc/self/autogroup 2>/dev/null; "${process.execPath}" ` +
    `"${join(PROJECT, 'bin/kvmforge.js')}" build -i "${inv}" --limit localhost --json --journal ` +
    `"${join(BUILDS, 'journal')}" > "${BUILD_OUT}" 2> "${BUILD_LOG}"; echo $? > "${BUILD_RC}"`;
  const child = spawn('sh', ['-c', cmd], {
    cwd: BUILDS,
    env: { ...process.env, ...BUILD_ENV, NO_COLOR: '1' },
    detached: true,
    stdio: 'ignore',
  });
  writeFileSync(join(BUILDS, 'build.pid'), String(child.pid));
  child.unref();
}

export function stopBackgroundBuild() {
  const f = join(BUILDS, 'build.pid');
  if (!existsSync(f) || existsSync(BUILD_RC)) return;
  try {
    process.kill(-Number(readFileSync(f, 'utf8')), 'SIGKILL');
  } catch {
    /* gone */
  }
}
