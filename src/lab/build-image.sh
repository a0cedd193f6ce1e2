#!/bin/sh
# Turns the shared Debian tree into a GRUB-booting qcow2 disk (one MBR partition, ext4 labelled
# kvmforge-root). usage: build-image.sh TREE OUT.qcow2 [SIZE_GIB]
set -eu
tree=$1 out=$2 size=${3:-8}
for tool in sfdisk losetup partx mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null ||
    { echo "missing $tool: apt-get install -y fdisk util-linux e2fsprogs qemu-utils" >&2; exit 3; }
done
exec 9>"$out.lock"
flock 9
[ -e "$out" ] && exit 0
work=$(mktemp -d "${out}.build-XXXXXX")
raw=$work/disk.raw
mnt=$work/mnt
loop=
cleanup() {
  set +e
  for d in dev/pts dev proc sys; do umount "$mnt/$d" 2>/dev/null; done
  umount "$mnt" 2>/dev/null
  [ -n "$loop" ] && { partx -d "$loop" 2>/dev/null; losetup -d "$loop"; }
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
truncate -s "${size}G" "$raw"
echo 'start=2048, type=83, bootable' | sfdisk -q "$raw"
loop=$(losetup -f --show -P "$raw")
# this kernel may lack MSDOS partition parsing: add the partition by hand
[ -b "${loop}p1" ] || partx -a "$loop"
mkfs.ext4 -q -L kvmforge-root "${loop}p1"
mkdir -p "$mnt"
mount "${loop}p1" "$mnt"
cp -a "$tree/." "$mnt/"
mount --bind /dev "$mnt/dev"
mount --bind /dev/pts "$mnt/dev/pts"
mount -t proc proc "$mnt/proc"
mount -t sysfs sysfs "$mnt/sys"
# root= by label, here and in every later update-grub inside the VM
echo 'GRUB_DEVICE=LABEL=kvmforge-root' >> "$mnt/etc/default/grub.d/00-kvmforge-lab.cfg"
echo 'GRUB_DISABLE_LINUX_UUID=true' >> "$mnt/etc/default/grub.d/00-kvmforge-lab.cfg"
# boot faster under emulation: no menu wait, little console chatter (a failed boot still prints)
echo 'GRUB_TIMEOUT=0' >> "$mnt/etc/default/grub.d/00-kvmforge-lab.cfg"
echo 'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0,115200 net.ifnames=0 quiet loglevel=3"' \
  >> "$mnt/etc/default/grub.d/00-kvmforge-lab.cfg"
# no logind session + systemd --user manager per SSH login: seconds each under emulation
sed -i '/pam_systemd.so/d' "$mnt/etc/pam.d/common-session"
# (e2scrub_reap: 12 s of every boot under emulation, for LVM snapshots a lab VM never has)
chroot "$mnt" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer man-db.timer \
  e2scrub_reap.service >/dev/null 2>&1 || true
# a small initramfs: only the drivers a lab VM's root needs (virtio or IDE disk, ext4) instead of MODULES=most's
# 36 MB, which took ~10 s to unpack and ~10 s of udev probing on every boot under emulation
echo 'MODULES=list' > "$mnt/etc/initramfs-tools/conf.d/kvmforge-lab.conf"
echo 'RESUME=none' >> "$mnt/etc/initramfs-tools/conf.d/kvmforge-lab.conf"
printf '%s\n' virtio_pci virtio_blk virtio_scsi ata_piix ata_generic sd_mod ext4 >> "$mnt/etc/initramfs-tools/modules"
chroot "$mnt" update-initramfs -u -k all >/dev/null 2>&1
chroot "$mnt" grub-install --target=i386-pc --recheck "$loop" >/dev/null 2>&1 ||
  chroot "$mnt" grub-install --target=i386-pc "$loop"
chroot "$mnt" update-grub >/dev/null 2>&1
sed -i "s|root=[^ ]*loop[0-9]*p1|root=LABEL=kvmforge-root|g; s|root=UUID=[0-9a-f-]*|root=LABEL=kvmforge-root|g" \
  "$mnt/boot/grub/grub.cfg"
grep -q 'root=LABEL=kvmforge-root' "$mnt/boot/grub/grub.cfg" || { echo "grub.cfg has no usable root=" >&2; exit 1; }
for d in dev/pts dev proc sys; do umount "$mnt/$d"; done
umount "$mnt"
# the file system as written must be clean before it becomes every lab VM's disk
e2fsck -fn "${loop}p1" >/dev/null 2>&1 || { echo "build-image.sh: the new file system fails e2fsck -fn" >&2; exit 1; }
partx -d "$loop" 2>/dev/null || true
losetup -d "$loop"; loop=
# losetup -d only marks a device still open (udev probing it) for release: wait until it lets go, then flush the
# file to disk. qemu-img skips what the file system reports as holes, and a write the loop device left in
# the page cache over a discarded (unwritten) range could read as one: an image once lost its last superblock
# and bitmap writes this way, and its VMs' root went read-only on boot.
for _ in $(seq 50); do [ -z "$(losetup -j "$raw")" ] && break; sleep 0.2; done
[ -z "$(losetup -j "$raw")" ] || { echo "build-image.sh: $raw is still attached to a loop device" >&2; exit 1; }
sync "$raw"
qemu-img convert -O qcow2 "$raw" "$out.tmp"
mv "$out.tmp" "$out"
