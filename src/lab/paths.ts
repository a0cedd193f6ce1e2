// Where the lab keeps its cache (base tree, images, key) and how the shared Debian tree is built.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const PROJECT = join(HERE, '..', '..');

export function cacheDir(): string {
  const d = process.env.KVMFORGE_CACHE ?? join(homedir(), '.cache', 'kvmforge');
  mkdirSync(d, { recursive: true });
  return d;
}

/** The lab's SSH key pair (made once). */
export function labKey(): string {
  const key = join(cacheDir(), 'lab_ed25519');
  if (!existsSync(key)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'kvmforge-lab', '-f', key]);
  return key;
}

const BUILD_SCRIPT = join(HERE, 'build-rootfs.sh');

/** The Debian 12 tree shared by lab images and namespace hosts; its name changes when the recipe does. */
export function rootfsDir(): string {
  const h = createHash('sha256').update(readFileSync(BUILD_SCRIPT)).digest('hex').slice(0, 10);
  return join(cacheDir(), `rootfs-${h}`);
}

export function ensureRootfs(log: (s: string) => void = () => {}): string {
  const dir = rootfsDir();
  if (existsSync(dir)) return dir;
  for (const tool of ['debootstrap', 'qemu-img']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is missing: apt-get install -y debootstrap qemu-utils qemu-system-x86 fdisk`);
    }
  }
  log(`building the Debian 12 base tree with debootstrap (~2-3 min) into ${dir}`);
  execFileSync('sh', [BUILD_SCRIPT, dir, `${labKey()}.pub`], { stdio: ['ignore', 'inherit', 'inherit'] });
  return dir;
}
