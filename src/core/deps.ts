// The system packages each part of kvmforge needs on the control machine, by package manager, and the one
// line a missing one gets: the packages, and the command that installs them (`kvmforge install-deps WHAT`).
import { execFileSync } from 'node:child_process';

export type Need = 'lab' | 'render' | 'exits' | 'publish' | 'tests';

/** The programs each need checks for, and Debian's packages for them (the same names work on Ubuntu). */
export const NEEDS: Record<Need, { tools: string[]; apt: string[]; dnf?: string[]; what: string }> = {
  lab: {
    what: 'disposable lab VMs (kvmforge lab)',
    tools: ['qemu-system-x86_64', 'qemu-img', 'debootstrap', 'sfdisk', 'partx', 'mkfs.ext4', 'ssh', 'ssh-keygen'],
    apt: ['qemu-system-x86', 'qemu-utils', 'debootstrap', 'fdisk', 'util-linux', 'e2fsprogs', 'openssh-client'],
    dnf: ['qemu-kvm', 'qemu-img', 'debootstrap', 'util-linux', 'e2fsprogs', 'openssh-clients'],
  },
  render: {
    what: 'checking domain XML before any host sees it (render, the domains step)',
    tools: ['virt-xml-validate', 'virsh', 'xmllint'],
    apt: ['libvirt-clients', 'libxml2-utils'],
    dnf: ['libvirt-client', 'libxml2'],
  },
  exits: {
    what: 'kvmforge exits --reasons on this machine (perf)',
    tools: ['perf'],
    apt: ['linux-perf'],
    dnf: ['perf'],
  },
  publish: {
    what: 'publishing artifacts as a signed package repository (kvmforge artifacts publish)',
    tools: ['apt-ftparchive', 'gpg', 'gzip'],
    apt: ['apt-utils', 'gpg', 'gzip'],
    dnf: ['createrepo_c', 'gnupg2', 'gzip'],
  },
  tests: {
    what: "the test suite (namespace hosts, lab VMs, Ansible as the oracle, Debian's source packages)",
    tools: [
      'qemu-system-x86_64',
      'debootstrap',
      'sshd',
      'ip',
      'ansible-inventory',
      'virsh',
      'xmllint',
      'tmux',
      'perf',
      'dpkg-source',
      'dnf',
      'rpmbuild',
      'createrepo_c',
      'gpg',
      'curl',
      'vagrant',
      'chromium',
    ],
    apt: [
      'qemu-system-x86',
      'qemu-utils',
      'debootstrap',
      'fdisk',
      'util-linux',
      'e2fsprogs',
      'mount',
      'iproute2',
      'openssh-server',
      'openssh-client',
      'sudo',
      'procps',
      'psmisc',
      'coreutils',
      'libvirt-clients',
      'libxml2-utils',
      'ansible',
      'vagrant',
      'vagrant-libvirt',
      'ruby',
      'dpkg-dev',
      'gpg',
      'gpgv',
      'xz-utils',
      'tmux',
      'python3',
      'linux-perf',
      'apt-utils',
      'curl',
      'chromium',
      'dnf',
      'dnf-plugins-core',
      'rpm',
      'createrepo-c',
    ],
  },
};

export function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v "$1" >/dev/null`, 'sh', tool], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The programs of `need` this machine lacks. */
export function missingTools(need: Need, tools = NEEDS[need].tools): string[] {
  return tools.filter((t) => !have(t));
}

/** One line: what is missing, the packages, and the command that installs them. */
export function missingMessage(need: Need, missing: string[]): string {
  return (
    `missing ${missing.join(', ')} (needed for ${NEEDS[need].what}): run \`kvmforge install-deps ${need}\` ` +
    `(apt-get install ${NEEDS[need].apt.join(' ')})`
  );
}

/** Throws the one-line message when a program of `need` is missing. */
export function requireTools(need: Need, tools?: string[]): void {
  const missing = missingTools(need, tools);
  if (missing.length) throw new Error(missingMessage(need, missing));
}
