// Installing packages on a host the way the package manager wants it: apt-get waits a bounded time
// for the dpkg lock (another apt, unattended-upgrades) and, if it gives up, its own error names the
// lock's holder only in its progress lines ("Waiting for cache lock: Could not get lock … It is held
// by process 1234 (unattended-upgr)"), so the last of those becomes the failure's reason. dnf/yum wait for their lock
// themselves.
import type { PackageManager } from './recipes.ts';

/** Default seconds to wait for the dpkg lock (`kvmforge_lock_timeout`). */
export const LOCK_TIMEOUT_S = 120;

export function lockTimeoutOf(vars: Record<string, unknown>): number {
  const v = Number(vars.kvmforge_lock_timeout);
  return v > 0 ? v : LOCK_TIMEOUT_S;
}

/** A shell command installing `args` (already quoted) with `pm`; output on stdout, the errors also on stderr.
 * apt: when dependencies can't be found (package lists missing or stale, as on a fresh host), the lists are
 * updated once and the install tried again. */
export function pkgInstall(pm: PackageManager, args: string, lockTimeoutS: number): string {
  if (pm !== 'apt') return `${pm} install -y ${args} 2>&1`;
  const lock = `-o DPkg::Lock::Timeout=${Math.floor(lockTimeoutS)}`;
  const apt = `DEBIAN_FRONTEND=noninteractive apt-get ${lock} install -y -q ${args}`;
  return [
    'kvmforge_out=$(mktemp)',
    `if ${apt} >"$kvmforge_out" 2>&1; then kvmforge_rc=0; else kvmforge_rc=$?; fi`,
    'if [ $kvmforge_rc != 0 ] && grep -qE "Unable to locate|has no installation candidate|Unmet dependencies|but it ' +
      'is not (going to be )?installable|Failed to fetch|is not available" "$kvmforge_out"; then',
    '  cat "$kvmforge_out"; echo "kvmforge: dependencies missing from the package lists: updating them (apt-get ' +
      'update) and trying again"',
    `  if DEBIAN_FRONTEND=noninteractive apt-get ${lock} update -q >"$kvmforge_out" 2>&1 && ${apt} ` +
      `>"$kvmforge_out" 2>&1; then kvmforge_rc=0; else kvmforge_rc=$?; fi`,
    'fi',
    'if [ $kvmforge_rc = 0 ]; then cat "$kvmforge_out"; rm -f "$kvmforge_out"; else',
    '  cat "$kvmforge_out"; grep -E "^E: " "$kvmforge_out" | tail -n 2 >&2 || true',
    // apt names the holder only in its "Waiting for cache lock" lines: repeat the last one as the reason
    '  kvmforge_lock=$(grep -o "Could not get lock .*" "$kvmforge_out" | tail -n 1 || true); rm -f "$kvmforge_out"',
    `  [ -z "$kvmforge_lock" ] || echo "kvmforge: gave up after ${Math.floor(lockTimeoutS)}s ` +
      `(kvmforge_lock_timeout): \${kvmforge_lock%...}" >&2`,
    '  exit $kvmforge_rc',
    'fi',
  ].join('\n');
}
