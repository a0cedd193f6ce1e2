// Maintainer scripts for the QEMU and libvirt packages, so each stands on its own on a host that never had
// the distribution's packages: the system users and groups the build names (libvirt's QEMU user and group,
// `libvirt`, `kvm`, made the way Debian's libvirt-daemon-system and Fedora's libvirt-daemon make them), the
// directories libvirt needs with their owners, the sockets and services enabled; removal stops them first,
// purge removes the accounts (as the distributions do), an upgrade restarts the daemon.
import type { Component } from './sources.ts';

/** libvirt's system units: the sockets first, then the daemon (what Debian's package enables). */
export const LIBVIRT_UNITS = [
  'virtlogd.socket',
  'virtlogd-admin.socket',
  'virtlockd.socket',
  'virtlockd-admin.socket',
  'libvirtd.socket',
  'libvirtd-ro.socket',
  'libvirtd-admin.socket',
  'libvirtd.service',
];

/** Directories libvirt's QEMU driver needs; the QEMU user owns the `qemu` ones, root the others (0711). */
const QEMU_DIRS = ['/var/lib/libvirt/qemu', '/var/lib/libvirt/qemu/channel', '/var/lib/libvirt/qemu/channel/target'];
const ROOT_DIRS = ['/var/lib/libvirt/images', '/var/lib/libvirt/boot', '/var/cache/libvirt', '/var/cache/libvirt/qemu'];

/** Shell that reads QEMU_USER / QEMU_GROUP from the configured libvirt build tree ($W/src) into $W/accounts. */
export const READ_ACCOUNTS = [
  `qu=$(sed -n 's/^#define QEMU_USER "\\(.*\\)"$/\\1/p' "$W/src/build-kvmforge/meson-config.h")`,
  `qg=$(sed -n 's/^#define QEMU_GROUP "\\(.*\\)"$/\\1/p' "$W/src/build-kvmforge/meson-config.h")`,
  `printf '%s\\n%s\\n' "$qu" "$qg" | grep -qvxE '[a-z_][a-z0-9_-]*' && { echo "the build names QEMU user '$qu' and ` +
    `group '$qg', which are not account names" >&2; exit 1; }`,
  `printf 'QEMU_USER=%s\\nQEMU_GROUP=%s\\n' "$qu" "$qg" > "$W/accounts"`,
].join('\n');

/** The accounts part: idempotent, with the tools every Debian and RHEL base system has (passwd / shadow-utils). */
const ACCOUNTS = [
  'getent group kvm >/dev/null || groupadd --system kvm',
  'getent group libvirt >/dev/null || groupadd --system libvirt',
  'if [ "$QEMU_USER" != root ]; then',
  '  getent group "$QEMU_GROUP" >/dev/null || groupadd --system "$QEMU_GROUP"',
  '  getent passwd "$QEMU_USER" >/dev/null || useradd --system --gid "$QEMU_GROUP" --groups kvm --home-dir ' +
    '/var/lib/libvirt --no-create-home --shell /usr/sbin/nologin --comment "Libvirt Qemu" "$QEMU_USER"',
  '  id -nG "$QEMU_USER" | tr " " "\\n" | grep -qx kvm || usermod -a -G kvm "$QEMU_USER"',
  'fi',
  `for d in ${QEMU_DIRS.join(' ')}; do mkdir -p "$d"; chown "$QEMU_USER:$QEMU_GROUP" "$d"; chmod 0750 "$d"; done`,
  `for d in ${ROOT_DIRS.join(' ')}; do mkdir -p "$d"; chown root:root "$d"; chmod 0711 "$d"; done`,
  'mkdir -p /var/log/libvirt/qemu',
  '[ ! -f /etc/libvirt/qemu.conf ] || chmod 0600 /etc/libvirt/qemu.conf',
  // a new QEMU or libvirt: the cached capabilities are stale
  'rm -f /var/cache/libvirt/qemu/capabilities/*.xml',
].join('\n');

const SYSTEMD = (cmd: string) => `if [ -d /run/systemd/system ]; then ${cmd}; fi`;

/** Debian maintainer scripts (postinst, prerm, postrm), without their first lines: the packaging puts
 * `#!/bin/sh`, `set -e` and (libvirt) the build's QEMU_USER/QEMU_GROUP in front. */
export function debScripts(c: Component): { postinst: string; prerm: string; postrm: string } {
  if (c === 'qemu') {
    return {
      // /dev/kvm belongs to group kvm (udev's rule); a host without the group gets it, and the node its owner
      postinst: [
        'if [ "$1" = configure ]; then',
        '  getent group kvm >/dev/null || groupadd --system kvm',
        '  [ ! -e /dev/kvm ] || udevadm trigger --sysname-match=kvm 2>/dev/null || true',
        '  ldconfig',
        'fi',
        '',
      ].join('\n'),
      prerm: 'true\n',
      postrm: ['if [ "$1" = remove ] || [ "$1" = purge ]; then ldconfig; fi', ''].join('\n'),
    };
  }
  const units = LIBVIRT_UNITS.join(' ');
  return {
    postinst: [
      'if [ "$1" = configure ]; then',
      ACCOUNTS,
      'ldconfig',
      SYSTEMD(`systemctl daemon-reload || true; systemctl enable ${units} >/dev/null 2>&1 || true`),
      // an upgrade restarts a running daemon; a first install starts it
      SYSTEMD(
        `if [ -n "$2" ]; then systemctl try-restart libvirtd.service || true; fi; systemctl start ${units} || true`,
      ),
      'fi',
      '',
    ].join('\n'),
    prerm: [
      'if [ "$1" = remove ]; then',
      SYSTEMD(
        `systemctl stop ${[...LIBVIRT_UNITS].reverse().join(' ')} virtlogd.service virtlockd.service 2>/dev/null ` +
          `|| true; systemctl disable ${units} >/dev/null 2>&1 || true`,
      ),
      'fi',
      '',
    ].join('\n'),
    postrm: [
      'if [ "$1" = remove ] || [ "$1" = purge ]; then ldconfig; ' + SYSTEMD('systemctl daemon-reload || true') + '; fi',
      'if [ "$1" = purge ]; then',
      '  if [ "$QEMU_USER" != root ]; then getent passwd "$QEMU_USER" >/dev/null && userdel "$QEMU_USER" || true; fi',
      '  case "$QEMU_GROUP" in root|kvm) ;; *) getent group "$QEMU_GROUP" >/dev/null && groupdel "$QEMU_GROUP" || ' +
        'true;; esac',
      '  getent group libvirt >/dev/null && groupdel libvirt || true',
      '  rm -rf /var/log/libvirt /var/cache/libvirt/qemu/capabilities',
      'fi',
      '',
    ].join('\n'),
  };
}

/** RPM scriptlets (section header, body): %pre makes the accounts (as Fedora's libvirt-daemon does), %post
 * owns the directories and enables the units, %preun stops them on erase. The packaging puts the build's
 * QEMU_USER/QEMU_GROUP at the top of each body. */
export function rpmScriptlets(c: Component): [string, string][] {
  if (c === 'qemu')
    return [
      ['%post', 'getent group kvm >/dev/null || groupadd --system kvm\n/sbin/ldconfig'],
      ['%postun', '/sbin/ldconfig'],
    ];
  const units = LIBVIRT_UNITS.join(' ');
  return [
    [
      '%pre',
      ACCOUNTS.split('\n')
        .filter((l) => !/^(for d|mkdir|\[ !|rm -f)/.test(l))
        .join('\n'),
    ],
    [
      '%post',
      [
        ACCOUNTS,
        '/sbin/ldconfig',
        SYSTEMD(
          `systemctl daemon-reload || true; systemctl enable ${units} >/dev/null 2>&1 || true; if [ "$1" -gt 1 ]; ` +
            `then systemctl try-restart libvirtd.service || true; fi; systemctl start ${units} || true`,
        ),
      ].join('\n'),
    ],
    [
      '%preun',
      `if [ "$1" -eq 0 ]; then ` +
        SYSTEMD(
          `systemctl stop ${[...LIBVIRT_UNITS].reverse().join(' ')} 2>/dev/null || true; ` +
            `systemctl disable ${units} >/dev/null 2>&1 || true`,
        ) +
        '; fi',
    ],
    ['%postun', ['/sbin/ldconfig', SYSTEMD('systemctl daemon-reload || true')].join('\n')],
  ];
}

/** The QEMU user and group a libvirt build names: `-Dqemu_user`/`-Dqemu_group`, else meson's default for
 * the distro (libvirt's meson.build: Debian libvirt-qemu/libvirt-qemu, Ubuntu libvirt-qemu/kvm, Fedora/RHEL/
 * SUSE/Gentoo qemu/qemu, Arch nobody/nobody, else root). */
export function qemuAccounts(os: { id: string; like: string[] }, mesonArgs: string[]): { user: string; group: string } {
  const arg = (k: string) => mesonArgs.map((a) => new RegExp(`^-D${k}=(.+)$`).exec(a)?.[1]).find(Boolean);
  const [u, g] = [arg('qemu_user'), arg('qemu_group')];
  if (u && g) return { user: u, group: g };
  const ids = [os.id, ...os.like];
  if (ids.includes('arch')) return { user: 'nobody', group: 'nobody' };
  if (ids.some((x) => ['fedora', 'gentoo', 'suse', 'rhel', 'centos'].includes(x) || x.includes('suse')))
    return { user: 'qemu', group: 'qemu' };
  if (ids.includes('ubuntu')) return { user: 'libvirt-qemu', group: 'kvm' };
  if (ids.includes('debian')) return { user: 'libvirt-qemu', group: 'libvirt-qemu' };
  return { user: 'root', group: 'root' };
}

/** After an install or when the daemon doesn't answer: enable and (re)start, then prove the QEMU driver works —
 * a socket whose daemon runs refuses to start ("Socket service libvirtd.service already active, refusing", seen on
 * a fresh host after the package's own start), so libvirtd and its sockets are stopped, then started (running VMs
 * don't mind), and virtlogd and virtlockd (which a running VM's logs and locks need) are only started and
 * re-executed —
 * capabilities answer, domcapabilities for the host's arch, `kvm` domains where /dev/kvm can be opened — or fail
 * with libvirtd's own error lines. */
export const LIBVIRT_CHECK = String.raw`tail2() { printf '%s' "$1" | tail -n 2 | tr '\n' ' '; }
kvm_usable() { [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; }
systemctl daemon-reload; systemctl enable ${LIBVIRT_UNITS.join(' ')} 2>&1
systemctl start ${LIBVIRT_UNITS.filter((u) => /^virtlo/.test(u)).join(' ')} 2>&1
systemctl try-reload-or-restart virtlogd.service virtlockd.service 2>&1
systemctl stop ${LIBVIRT_UNITS.filter((u) => /^libvirtd/.test(u))
  .reverse()
  .join(' ')} 2>&1
if ! r=$(systemctl start ${LIBVIRT_UNITS.filter((u) => /^libvirtd/.test(u)).join(' ')} 2>&1); then
  echo "starting libvirtd failed: $(tail2 "$r")" >&2
  { systemctl --no-legend --failed 2>/dev/null; journalctl --no-pager -n 40 -o cat -u libvirtd.service \
    -u libvirtd.socket 2>/dev/null; } | grep -iE 'error|fail|refus' | tail -n 4 >&2
  exit 1
fi
t0=$(date +%s); end=$((t0 + 150)); out=
until out=$(timeout 60 virsh -c qemu:///system capabilities 2>&1) && printf '%s' "$out" | grep -q "<domain type='"; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "libvirtd's QEMU driver does not answer (virsh -c qemu:///system capabilities): $(tail2 "$out")" >&2
    { journalctl -u libvirtd.service --no-pager -n 40 -o cat 2>/dev/null || true; } |
      grep -iE 'error|fail' | tail -n 4 >&2
    exit 1
  fi
  sleep 2
done
arch=$(uname -m)
dc=$(timeout 60 virsh -c qemu:///system domcapabilities --arch "$arch" --virttype qemu 2>&1) || {
  echo "libvirt has no QEMU domain capabilities for $arch: $(tail2 "$dc")" >&2
  exit 1
}
types=$(printf '%s' "$out" | grep -o "<domain type='[a-z]*'" | sed "s/<domain type=//; s/'//g" | sort -u | tr '\n' ' ')
if kvm_usable; then
  case " $types" in
    *" kvm "*) ;;
    *) echo "/dev/kvm can be opened but libvirt offers no kvm domains (types: $types)" >&2; exit 1;;
  esac
fi
echo "libvirt answers after $(( $(date +%s) - t0 )) s: QEMU driver loaded ($arch domcapabilities)," \
  "domain types: $types"`;

/** The probe's part: does the installed libvirt's QEMU driver answer now (read-only, bounded)? */
export const LIBVIRT_WORKS =
  `if timeout 30 virsh -c qemu:///system capabilities 2>/dev/null | grep -q "<domain ` +
  `type='"; then echo works=yes; else echo works=no; fi`;

/** After a QEMU install: the binary starts (-version), and with KVM where /dev/kvm can be opened. */
export function qemuCheck(prefix: string): string {
  const q = `${prefix}/bin/qemu-system-x86_64`;
  return String.raw`tail2() { printf '%s' "$1" | tail -n 2 | tr '\n' ' '; }
v=$(${q} -version 2>&1) || { echo "the installed QEMU does not start: $(tail2 "$v")" >&2; exit 1; }
v=$(printf '%s\n' "$v" | head -n 1)
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  out=$(printf 'quit\n' | timeout 60 ${q} -machine none -accel kvm -nodefaults -display none -monitor stdio 2>&1) || {
    echo "QEMU does not start with KVM (-accel kvm -machine none): $(tail2 "$out")" >&2
    exit 1
  }
  echo "$v starts, with KVM"
else
  echo "$v starts (no usable /dev/kvm here: not tried with KVM)"
fi`;
}
