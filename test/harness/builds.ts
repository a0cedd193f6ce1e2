// Source builds for the lab tests. Compiling kernel + QEMU + libvirt takes ~30 minutes here, so the
// builds project's setup starts the real `kvmforge build` (niced) in the background at once, and
// test/lab/builds.test.ts waits for it (in a vitest process of its own, beside the other projects' files), checks
// it, then installs on the VMs of its own lab, beside the lab project's.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listArtifacts } from '../../src/artifacts/artifacts.ts';
import { PROJECT } from '../../src/lab/paths.ts';

export const SOURCES = process.env.KVMFORGE_SOURCES ?? '/var/cache/kvmforge-sources';
/** The builds project's lab (vitest.config.ts gives its test files KVMFORGE_TEST_LAB_DIR = this). */
export const BUILDS_LAB_DIR = '/tmp/kvmforge-labtest-builds';
export const BUILDS = join(BUILDS_LAB_DIR, 'builds');
/** The control machine's artifact cache for the tests, and the build host's directory. */
export const BUILD_ENV = { KVMFORGE_CACHE: join(BUILDS, 'cache') };
export const BUILD_DIR = join(BUILDS, 'buildhost');
export const BUILD_RC = join(BUILDS, 'build.rc');
export const BUILD_OUT = join(BUILDS, 'build.json');
export const BUILD_LOG = join(BUILDS, 'build.log');
/** When the background build started (ms since the epoch): an artifact built before it is a stale one. */
export const BUILD_STARTED = join(BUILDS, 'build.started');

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

/** The thesis's platform as a user runs it on lab VMs: these two, then the test's own file (last: it wins). */
export const THESIS = [join(PROJECT, 'inventories/thesis.yaml'), join(PROJECT, 'inventories/thesis-lab.yaml')];

/** What the tests change in the thesis inventory: sources reachable here (nothing upstream is): the kernel from
 * Debian's linux-source tarball, libvirt's upstream tarball from Debian's source package (the thesis's sha256 is
 * checked against it) with its signature; QEMU stays the thesis's `distro` (apt-get source on this machine). */
export function buildVars(v = versions()): string[] {
  return [
    `build_dir: ${BUILD_DIR}`,
    `kernel_version: "${v.KERNEL_VERSION}"`,
    `kernel_source: ${SOURCES}/linux-source-6.1.tar.xz`,
    `libvirt_source: ${SOURCES}/libvirt_${v.LIBVIRT_VERSION}.orig.tar.xz`,
    `libvirt_signature: ${SOURCES}/libvirt_${v.LIBVIRT_VERSION}.orig.tar.xz.asc`,
    `libvirt_keyring: ${SOURCES}/libvirt-signing-key.gpg`,
  ];
}

/** The components a lab host does not get (its `<c>_enabled: false`). */
export function only(components: Component[]): string[] {
  return (['kernel', 'qemu', 'libvirt'] as const)
    .filter((c) => !components.includes(c))
    .map((c) => `${c}_enabled: false`);
}

/** The test's inventory, layered over THESIS: localhost (local transport, the build host) and extra hosts (lines
 * already indented), all in group `lab` so the thesis's lab vars reach them; returns the -i arguments. */
export function buildInventory(name: string, extra: string[] = []): string[] {
  const lines = [
    'all:',
    '  vars:',
    ...buildVars().map((l) => `    ${l}`),
    '  children:',
    '    lab:',
    '      hosts:',
    '        localhost:',
    '          ansible_connection: local',
    ...extra.map((l) => `    ${l}`),
  ];
  const file = join(BUILDS, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return [...THESIS, file].flatMap((f) => ['-i', f]);
}

/** Starts `kvmforge build` for localhost in the background (niced builds; the lab VMs keep priority). */
export function startBackgroundBuild() {
  if (process.env.KVMFORGE_SKIP_BUILDS) return;
  mkdirSync(BUILDS, { recursive: true });
  rmSync(BUILD_RC, { force: true });
  writeFileSync(BUILD_STARTED, String(Date.now()));
  try {
    versions();
  } catch (e) {
    writeFileSync(BUILD_LOG, (e as Error).message + '\n');
    writeFileSync(BUILD_RC, '99\n');
    return;
  }
  const inv = buildInventory('build.yaml')
    .filter((a) => a !== '-i')
    .map((f) => `-i "${f}"`)
    .join(' ');
  // detached = a session of its own, and with the kernel's autogroup scheduling (on in Debian's
  // kernels) nice only ranks processes inside one session: sessions share the CPU equally. So the
  // session itself is put at nice 19 (/proc/self/autogroup), else the lab VMs run ~2x slower.
  const cmd =
    `echo 19 > /proc/self/autogroup 2>/dev/null; "${process.execPath}" ` +
    `"${join(PROJECT, 'bin/kvmforge.js')}" build ${inv} --limit localhost --json --journal ` +
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for the background build to end; its exit code. */
export async function waitForBuild(minutes = 75): Promise<number> {
  const until = Date.now() + minutes * 60_000;
  while (!existsSync(BUILD_RC) && Date.now() < until) await sleep(5000);
  if (!existsSync(BUILD_RC)) throw new Error(`the background build did not finish in time; log: ${BUILD_LOG}`);
  return Number(readFileSync(BUILD_RC, 'utf8'));
}

/** The background build's output when it failed, for the error that says so. */
export function buildFailure(rc: number): Error {
  return new Error(
    `kvmforge build exited ${rc}:\n${readFileSync(BUILD_LOG, 'utf8').slice(-3000)}\n` +
      (existsSync(BUILD_OUT) ? readFileSync(BUILD_OUT, 'utf8').slice(-3000) : ''),
  );
}

/** Waits until this build's kernel is in the control machine's cache (the build goes on with QEMU and libvirt),
 * or the build has ended; the kernel package's file name. An artifact made before this build started is not
 * waited for: it may be a stale one that this build replaces. */
export async function waitForKernel(minutes = 75): Promise<string> {
  const started = Number(readFileSync(BUILD_STARTED, 'utf8'));
  // newest first; a `.part` directory is one still being copied into place
  const kernel = (fresh: boolean) =>
    listArtifacts(BUILD_ENV.KVMFORGE_CACHE).find(
      (m) => m.component === 'kernel' && !m.dir.endsWith('.part') && (!fresh || Date.parse(m.builtAt) >= started),
    );
  const until = Date.now() + minutes * 60_000;
  while (!existsSync(BUILD_RC) && !kernel(true) && Date.now() < until) await sleep(5000);
  if (existsSync(BUILD_RC)) {
    const rc = Number(readFileSync(BUILD_RC, 'utf8'));
    if (rc !== 0) throw buildFailure(rc);
  }
  const meta = kernel(!existsSync(BUILD_RC));
  if (!meta)
    throw new Error(`no kernel artifact in ${BUILD_ENV.KVMFORGE_CACHE} after ${minutes} min; log: ${BUILD_LOG}`);
  return meta.files.find((f) => f.name.startsWith('linux-image-'))!.name;
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
