// Where the lab keeps its cache (base tree, images, key) and how the shared Debian tree is built.
import { requireTools } from '../core/deps.ts';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { must } from './proc.ts';
import { cacheDir, PROJECT } from '../core/paths.ts';

export { cacheDir, PROJECT };
/** The lab's scripts (shell, and the relay in plain JavaScript): kept as they are, beside the sources. */
export const HERE = join(PROJECT, 'src', 'lab');

/** The lab's SSH key pair (made once). */
export function labKey(): string {
  const key = join(cacheDir(), 'lab_ed25519');
  if (!existsSync(key)) must(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'kvmforge-lab', '-f', key]);
  return key;
}

const BUILD_SCRIPT = join(HERE, 'build-rootfs.sh');

/** `plain`: a plain Debian 12 server (never had the distribution's libvirt or QEMU); `full`: plain plus those. */
export type Flavour = 'plain' | 'full';

/** A Debian 12 tree shared by lab images and namespace hosts; its name changes when the recipe does. */
export function rootfsDir(flavour: Flavour = 'full'): string {
  const h = createHash('sha256').update(readFileSync(BUILD_SCRIPT)).digest('hex').slice(0, 10);
  return join(cacheDir(), `rootfs-${flavour === 'plain' ? 'plain-' : ''}${h}`);
}

export function ensureRootfs(log: (s: string) => void = () => {}, flavour: Flavour = 'full'): string {
  const dir = rootfsDir(flavour);
  if (existsSync(dir)) return dir;
  requireTools('lab', ['debootstrap', 'qemu-img']);
  if (flavour === 'full') {
    const plain = ensureRootfs(log, 'plain');
    log(`adding Debian's libvirt and QEMU to a copy of the plain tree (~1-2 min) in ${dir}`);
    must(['sh', BUILD_SCRIPT, dir, `${labKey()}.pub`, 'full', plain], { inherit: true });
    return dir;
  }
  log(`building the Debian 12 base tree with debootstrap (~2-3 min) into ${dir}`);
  must(['sh', BUILD_SCRIPT, dir, `${labKey()}.pub`, 'plain'], { inherit: true });
  return dir;
}

/** The http mirrors of this machine's apt sources (what the lab relay may serve to lab VMs). */
export function aptMirrors(): string[] {
  const out = new Set<string>();
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^URIs:\s*(.+)$/gm))
      for (const u of m[1].split(/\s+/)) if (u.startsWith('http://')) out.add(u.replace(/\/?$/, '/'));
    for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(http:\/\/\S+)/gm)) out.add(m[1].replace(/\/?$/, '/'));
  }
  return out.size ? [...out] : ['http://deb.debian.org/debian/', 'http://deb.debian.org/debian-security/'];
}
