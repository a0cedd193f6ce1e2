#!/bin/sh
# Builds the Debian 12 trees that lab VMs and namespace test hosts share.
# usage: build-rootfs.sh DEST_DIR PUBKEY_FILE plain
#        build-rootfs.sh DEST_DIR PUBKEY_FILE full PLAIN_DIR
# plain: a plain server (systemd, sshd, sudo, ifupdown, a user with the lab key) that never had the
# distribution's libvirt or QEMU. full: a copy of plain plus Debian's libvirt and QEMU (for the domains step).
# Idempotent: DEST_DIR is only created when missing (built in DEST_DIR.tmp, then renamed).
set -eu
dest=$1 pubkey=$2 flavour=${3:-plain} plain=${4:-}
[ -d "$dest" ] && exit 0
# one builder at a time (a test run and a lab up may ask together); the loser finds it built
mkdir -p "$(dirname "$dest")"
exec 9>"$dest.lock"
flock 9
[ -d "$dest" ] && exit 0
for tool in debootstrap chroot; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y debootstrap" >&2; exit 3; }
done
tmp=$dest.tmp
rm -rf "$tmp"
if [ "$flavour" = full ]; then
  [ -d "$plain" ] || { echo "build-rootfs.sh: the plain tree $plain is missing" >&2; exit 2; }
  cp -a "$plain" "$tmp"
  mount --bind /dev "$tmp/dev"; mount -t proc proc "$tmp/proc"
  trap 'umount "$tmp/proc" "$tmp/dev" 2>/dev/null || true' EXIT
  # the guest's own sources go through the lab relay; here the host's network is used directly
  DEBIAN_FRONTEND=noninteractive chroot "$tmp" apt-get -o Acquire::http::Proxy=false update -qq
  # libvirt and QEMU from the distro, so the domains step has something to define and start
  DEBIAN_FRONTEND=noninteractive chroot "$tmp" \
    apt-get -o Acquire::http::Proxy=false install -y -qq --no-install-recommends \
    libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base libxml2-utils >/dev/null
  chroot "$tmp" apt-get clean
  umount "$tmp/proc" "$tmp/dev"; trap - EXIT
  echo full > "$tmp/etc/kvmforge-lab-image"
  mv "$tmp" "$dest"
  exit 0
fi
mirror=$(awk '/^URIs:/ && !done { print $2; done=1 }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / && !done { print $2; done=1 }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
mkdir -p "$tmp"
pkgs=systemd-sysv,udev,openssh-server,linux-image-amd64,kmod,iproute2,sudo,python3,grub-pc,procps
pkgs=$pkgs,initramfs-tools,netbase,ifupdown,isc-dhcp-client,dbus,psmisc,less
# the guest agent sets a resumed lab VM's clock (lab up / lab reset) without an SSH login
pkgs=$pkgs,qemu-guest-agent,libpam-systemd
debootstrap --variant=minbase --include="$pkgs" bookworm "$tmp" "$mirror"
# apt as on a real host: the host's own sources (suites, updates, security), reached through the lab's
# relay (QEMU user networking forwards 10.0.2.100:3142 to it; it serves only these mirrors)
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  rm -f "$tmp/etc/apt/sources.list"
  awk '/^Types:/ && $2 != "deb" { skip=1 } /^Types: deb$/ { skip=0 } /^$/ { if (!skip) print; skip=0; next } !skip' \
    /etc/apt/sources.list.d/debian.sources > "$tmp/etc/apt/sources.list.d/debian.sources"
fi
printf 'Acquire::http::Proxy "http://10.0.2.100:3142/";\n' > "$tmp/etc/apt/apt.conf.d/80-kvmforge-lab-relay"
# identity: every overlay gets its own machine-id at first boot
: > "$tmp/etc/machine-id"
rm -f "$tmp/var/lib/dbus/machine-id"
echo kvmforge-lab > "$tmp/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 kvmforge-lab\n::1 localhost ip6-localhost ip6-loopback\n' > "$tmp/etc/hosts"
# users: root and a sudo user, both reached with the lab key only
chroot "$tmp" useradd -m -s /bin/bash -G sudo -p "*" kvmforge
echo 'kvmforge ALL=(ALL) NOPASSWD:ALL' > "$tmp/etc/sudoers.d/kvmforge"
chmod 0440 "$tmp/etc/sudoers.d/kvmforge"
for home in root home/kvmforge; do
  mkdir -p "$tmp/$home/.ssh"
  cp "$pubkey" "$tmp/$home/.ssh/authorized_keys"
  chmod 700 "$tmp/$home/.ssh"; chmod 600 "$tmp/$home/.ssh/authorized_keys"
done
chroot "$tmp" chown -R kvmforge:kvmforge /home/kvmforge/.ssh
printf 'PasswordAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n' \
  > "$tmp/etc/ssh/sshd_config.d/kvmforge.conf"
# network: systemd-networkd owns the NIC (ifupdown stays installed for the bridge step's tests)
mkdir -p "$tmp/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' > "$tmp/etc/systemd/network/50-lab-dhcp.network"
chroot "$tmp" systemctl enable systemd-networkd >/dev/null 2>&1 || true
printf 'proc /proc proc defaults 0 0\nLABEL=kvmforge-root / ext4 errors=remount-ro 0 1\n' > "$tmp/etc/fstab"
# serial console so a failed boot can be read from a log
mkdir -p "$tmp/etc/default/grub.d"
cat > "$tmp/etc/default/grub.d/00-kvmforge-lab.cfg" <<'CFG'
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200 net.ifnames=0"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
CFG
chroot "$tmp" apt-get clean
echo plain > "$tmp/etc/kvmforge-lab-image"
mv "$tmp" "$dest"
