#!/usr/bin/env bash
# bench/install-native: a second host's install of each cached artifact at native speed.
# bench/builds measures the install inside a lab VM, which runs under TCG here (every fork ~80 ms), so
# its install/build ratio is the emulator's. This installs the same packages into a chroot copy of the
# lab image's root tree (the same Debian 12 with Debian's QEMU and libvirt) on this machine and times
# `apt-get install ./pkg.deb`, as the install step runs it. No trial reboot, no systemctl (chroot).
# usage (root): bench/install-native.sh [ARTIFACT_CACHE]   default: the lab tests' cache
set -euo pipefail
cache=${1:-/tmp/kvmforge-labtest/builds/cache}
tree=$(ls -d ~/.cache/kvmforge/rootfs-* 2>/dev/null | grep -v '\.lock$' | head -1)
[ -n "$tree" ] || { echo "no lab root tree in ~/.cache/kvmforge (run kvmforge lab up once)" >&2; exit 2; }
root=$(mktemp -d /tmp/kvmforge-native-XXXXXX)
cleanup() { umount "$root/proc" "$root/dev" 2>/dev/null || true; rm -rf "$root"; }
trap cleanup EXIT
cp -a "$tree/." "$root/"
mkdir -p "$root/tmp/pkgs"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
for meta in "$cache"/artifacts/*/meta.json; do
  dir=$(dirname "$meta")
  component=$(sed -n 's/.*"component": *"\([a-z]*\)".*/\1/p' "$meta" | head -1)
  build=$(sed -n 's/.*"buildSeconds": *\([0-9.]*\).*/\1/p' "$meta" | head -1)
  # the kernel's image package only (headers are not installed by the kernel step either)
  pkg=$(cd "$dir" && ls *.deb | grep -v '^linux-headers' | head -1)
  cp "$dir/$pkg" "$root/tmp/pkgs/"
  t0=$(date +%s.%N)
  chroot "$root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends --allow-downgrades "/tmp/pkgs/$pkg" >"$root.$component.log" 2>&1 \
    || { echo "$component: install failed, log: $root.$component.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v c="$component" -v i="$(echo "$t1 - $t0" | bc)" -v b="$build" \
    'BEGIN { printf "%-8s native install %6.1f s   build %5d s   install/build %5.2f%%\n", c, i, b, 100 * i / b }'
done
