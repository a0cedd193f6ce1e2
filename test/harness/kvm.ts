// Whether this machine has KVM for the tests that start QEMU with it on the machine itself (exits, top, tune).
// Some machines of this kind have a nested /dev/kvm, some none: there those tests are skipped, and say so once.
import { existsSync } from 'node:fs';

export function kvmHere(what: string): boolean {
  if (existsSync('/dev/kvm')) return true;
  process.stderr.write(`[kvm] no /dev/kvm on this machine: ${what} skipped (they start QEMU with KVM here)\n`);
  return false;
}
