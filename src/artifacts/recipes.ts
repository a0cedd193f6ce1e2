// How each component is built and packaged on a build host: build dependencies per package manager
// (the one place they are listed), the build script, and the package it becomes.
import { createHash } from 'node:crypto';
import { quote, sh } from '../core/sh.ts';
import type { BuildSpec, Component, PackageManager } from '../core/types.ts';
import { debScripts, READ_ACCOUNTS, rpmScriptlets } from './maintainer.ts';

export type { BuildSpec, PackageManager };

/** Build dependencies, per package manager and component. */
export const BUILD_DEPS: Record<PackageManager, Record<Component, string[]>> = {
  apt: {
    kernel: [
      'build-essential',
      'bc',
      'bison',
      'flex',
      'libssl-dev',
      'libelf-dev',
      'cpio',
      'rsync',
      'dwarves',
      'kmod',
      'dpkg-dev',
      'debhelper',
      'xz-utils',
      'curl',
      'ca-certificates',
    ],
    qemu: [
      'build-essential',
      'ninja-build',
      'meson',
      'pkg-config',
      'libglib2.0-dev',
      'libpixman-1-dev',
      'python3-venv',
      'libslirp-dev',
      'libfdt-dev',
      'zlib1g-dev',
      'libaio-dev',
      'dpkg-dev',
      'xz-utils',
      'bzip2',
      'curl',
      'ca-certificates',
    ],
    libvirt: [
      'build-essential',
      'ninja-build',
      'meson',
      'pkg-config',
      'libglib2.0-dev',
      'libxml2-dev',
      'libxml2-utils',
      'xsltproc',
      'libgnutls28-dev',
      'libtirpc-dev',
      'libnl-3-dev',
      'libnl-route-3-dev',
      'libyajl-dev',
      'libpciaccess-dev',
      'libdevmapper-dev',
      'libcap-ng-dev',
      'libudev-dev',
      'python3-docutils',
      'dpkg-dev',
      'xz-utils',
      'curl',
      'ca-certificates',
    ],
  },
  dnf: {
    kernel: [
      'gcc',
      'make',
      'bc',
      'bison',
      'flex',
      'openssl-devel',
      'elfutils-libelf-devel',
      'cpio',
      'rsync',
      'dwarves',
      'kmod',
      'rpm-build',
      'dnf-plugins-core',
      'perl',
      'xz',
      'curl',
    ],
    qemu: [
      'gcc',
      'make',
      'ninja-build',
      'meson',
      'pkgconf-pkg-config',
      'glib2-devel',
      'pixman-devel',
      'python3',
      'libslirp-devel',
      'libfdt-devel',
      'zlib-devel',
      'libaio-devel',
      'rpm-build',
      'dnf-plugins-core',
      'xz',
      'bzip2',
      'curl',
    ],
    libvirt: [
      'gcc',
      'make',
      'ninja-build',
      'meson',
      'pkgconf-pkg-config',
      'glib2-devel',
      'libxml2-devel',
      'libxslt',
      'gnutls-devel',
      'libtirpc-devel',
      'libnl3-devel',
      'json-c-devel',
      'libpciaccess-devel',
      'device-mapper-devel',
      'libcap-ng-devel',
      'systemd-devel',
      'python3-docutils',
      'rpm-build',
      'dnf-plugins-core',
      'xz',
      'curl',
    ],
  },
  yum: { kernel: [], qemu: [], libvirt: [] },
};
BUILD_DEPS.yum = BUILD_DEPS.dnf;

/** Seconds one build may take (build_timeout). */
export const BUILD_TIMEOUT_S = 14_400;

/** Free space a build needs in the build directory, GiB (checked before starting). */
export const MIN_FREE_GIB: Record<Component, number> = { kernel: 6, qemu: 3, libvirt: 2 };

/** The package a component becomes, and the distro packages it takes over (they share its files). */
export const PACKAGES: Record<
  Component,
  { name: (release: string) => string; replaces: Record<PackageManager, string[]> }
> = {
  kernel: { name: (r) => `linux-image-${r}`, replaces: { apt: [], dnf: [], yum: [] } },
  qemu: { name: () => 'kvmforge-qemu', replaces: { apt: [], dnf: [], yum: [] } },
  libvirt: {
    name: () => 'kvmforge-libvirt',
    replaces: {
      apt: [
        'libvirt0',
        'libvirt-clients',
        'libvirt-daemon',
        'libvirt-daemon-system',
        'libvirt-daemon-system-systemd',
        'libvirt-daemon-system-sysv',
        'libvirt-daemon-driver-qemu',
        'libvirt-daemon-config-network',
        'libvirt-daemon-config-nwfilter',
        'libvirt-l10n',
      ],
      dnf: [
        'libvirt',
        'libvirt-libs',
        'libvirt-client',
        'libvirt-daemon',
        'libvirt-daemon-driver-qemu',
        'libvirt-daemon-kvm',
      ],
      yum: [
        'libvirt',
        'libvirt-libs',
        'libvirt-client',
        'libvirt-daemon',
        'libvirt-daemon-driver-qemu',
        'libvirt-daemon-kvm',
      ],
    },
  },
};

export const shortKey = (key: string) => key.slice(0, 12);

/** The artifact's identity: a hash of every input, including this file's build and package scripts. */
export function artifactKey(spec: BuildSpec): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ ...spec, files: Object.entries(spec.files).sort() }));
  h.update(buildBody(spec, 'KEY'));
  if (spec.component !== 'kernel') h.update(packageBody(spec, 'KEY'));
  return h.digest('hex');
}

/** Package version: the upstream version plus the artifact key, so a new input is a new package. */
export function packageVersion(spec: BuildSpec, key: string): string {
  return `${spec.version.replace(/[^0-9A-Za-z.+~]/g, '.')}-kvmforge.${shortKey(key)}`;
}

/** Kernel release (`uname -r`) of a kernel artifact. */
export function kernelRelease(spec: BuildSpec, key: string): string {
  return `${spec.version}-kvmforge-${key.slice(0, 8)}`;
}

function buildBody(spec: BuildSpec, key: string): string {
  const o = spec.options;
  const args = (name: string) => ((o[name] as string[] | undefined) ?? []).map((a) => quote(a)).join(' ');
  if (spec.component === 'kernel') {
    const base = o.base as string;
    const frags = Object.keys(spec.files)
      .filter((f) => f.startsWith('fragment-'))
      .sort();
    const target = spec.distro.pm === 'apt' ? 'bindeb-pkg' : 'binrpm-pkg';
    return [
      base === 'tinyconfig' || base === 'defconfig' ? `make ${base} >/dev/null` : 'cp "$W/base.config" .config',
      // Debian's and RHEL's own configs name certificate files that only exist in their trees
      `printf '%s\\n' 'CONFIG_SYSTEM_TRUSTED_KEYS=""' 'CONFIG_SYSTEM_REVOCATION_KEYS=""' ` +
        `'CONFIG_MODULE_SIG_KEY="certs/signing_key.pem"' ` +
        `${o.debugInfo === 'yes' ? '' : "'CONFIG_DEBUG_INFO_NONE=y' '# CONFIG_DEBUG_INFO_BTF is not set'"} > ` +
        `"$W/kvmforge-build.config"`,
      `scripts/kconfig/merge_config.sh -m .config ${frags.map((f) => `"$W/${f}"`).join(' ')} ` +
        `"$W/kvmforge-build.config" >"$W/merge.log" 2>&1 || { cat "$W/merge.log"; exit 1; }`,
      'make olddefconfig >/dev/null',
      // an option no Kconfig defines is bad input; one olddefconfig dropped is reported
      `find . -name 'Kconfig*' -type f -exec cat {} + | sed -n ` +
        `'s/^[[:space:]]*\\(menu\\)\\{0,1\\}config[[:space:]]\\{1,\\}\\([A-Za-z0-9_]*\\).*/CONFIG_\\2/p' | sort -u ` +
        `> "$W/symbols"`,
      `unknown=$(cat ${frags.map((f) => `"$W/${f}"`).join(' ')} | sed -n 's/^\\(CONFIG_[A-Za-z0-9_]*\\)=.*/\\1/p; ` +
        `s/^# \\(CONFIG_[A-Za-z0-9_]*\\) is not set.*/\\1/p' | sort -u | comm -23 - "$W/symbols" | tr '\\n' ' ')`,
      'if [ -n "$unknown" ]; then echo "KVMFORGE_UNKNOWN $unknown" >&2; echo "config fragment names options this ' +
        'kernel does not have: $unknown" >&2; exit 6; fi',
      `cat ${frags.map((f) => `"$W/${f}"`).join(' ')} | grep -E '^(CONFIG_|# CONFIG_)' | while IFS= read -r want; do`,
      '  sym=$(echo "$want" | sed -n "s/^\\(# \\)\\{0,1\\}\\(CONFIG_[A-Za-z0-9_]*\\).*/\\2/p")',
      '  now=$(grep -E "^($sym=|# $sym is not set)" .config || echo "# $sym is not set")',
      '  case "$want" in "# "*) [ "${now#"$sym="}" = "$now" ] || [ "$now" = "$sym=n" ] || echo "KVMFORGE_DROPPED ' +
        '$want (now: $now)";; *) [ "$want" = "$now" ] || { [ "$want" = "$sym=n" ] && [ "$now" = "# $sym is not set" ' +
        ']; } || echo "KVMFORGE_DROPPED $want (now: $now)";; esac',
      'done',
      'echo "KVMFORGE_OBJECTS_ESTIMATE $(grep -cE "=(y|m)$" .config)"',
      `nice make -j"$(nproc)" ${target} LOCALVERSION=${quote(`-kvmforge-${key.slice(0, 8)}`)} ` +
        `KDEB_PKGVERSION=${quote(`${spec.version}-1`)} KBUILD_BUILD_USER=kvmforge KBUILD_BUILD_HOST=kvmforge`,
      'find "$W" ~/rpmbuild/RPMS -maxdepth 2 \\( -name "*.deb" -o -name "*.rpm" \\) 2>/dev/null | grep -- ' +
        '"-kvmforge-" | xargs -r mv -t "$OUT"',
      'ls "$OUT" | grep -q . || { echo "the kernel build produced no package" >&2; exit 1; }',
    ].join('\n');
  }
  if (spec.component === 'qemu') {
    const prefix = o.prefix as string;
    // a distribution's tree has no git submodules, and Debian's (DFSG) no firmware blobs: the package depends on the
    // distribution's firmware instead (firmwarepath)
    const distroTree = spec.sourcePackage ? '--with-git-submodules=ignore --disable-install-blobs ' : '';
    return [
      'mkdir -p build-kvmforge && cd build-kvmforge',
      // linux-aio: a disk with io='native' (the tuned profile, cache=none) needs it, and configure would otherwise
      // leave it out quietly when libaio's headers are missing
      // no debug info (~20% of each compile here; the package strips it anyway) and no guest agent (a guest's tool)
      `nice ../configure --prefix=${quote(prefix)} --target-list=x86_64-softmmu --disable-docs --enable-linux-aio ` +
        `--disable-debug-info --disable-guest-agent ${distroTree}` +
        `--firmwarepath=${quote(`${prefix}/share/qemu:/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu`)} ` +
        `${args('configureArgs')}`,
      // QEMU's default target also compiles its test programs (~1000 of its ~2600 steps: tests/fp, qtest, unit):
      // only the targets that `meson install` copies are built, and installed without the rest
      `nice ninja $(python3 -c 'import json, os; print(" ".join(os.path.relpath(f) for t in ` +
        `json.load(open("meson-info/intro-targets.json")) if t["installed"] for f in t["filename"]))')`,
      'install=$(ninja -t commands install | tail -n 1)',
      '[ -n "$install" ] || { echo "no install command in build.ninja" >&2; exit 1; }',
      'DESTDIR="$STAGE" $install >/dev/null',
      `ln -sf qemu-system-x86_64 "$STAGE"${quote(`${prefix}/bin/kvm`)}`,
    ].join('\n');
  }
  return [
    // libvirt's default build type is debugoptimized (-O2 -g): the same -O2, without the debug info it strips
    `nice meson setup build-kvmforge -Dsystem=true -Ddriver_qemu=enabled -Ddocs=disabled -Dtests=disabled ` +
      `-Dinit_script=systemd -Ddebug=false ${args('mesonArgs')}`,
    'nice ninja -C build-kvmforge',
    'DESTDIR="$STAGE" meson install -C build-kvmforge --no-rebuild >/dev/null',
  ].join('\n');
}

/** Writes DEBIAN/postinst, prerm and postrm; libvirt's start with the accounts its build names. */
function maintainer(c: Component): string[] {
  const scripts = debScripts(c);
  return [
    ...(c === 'libvirt' ? [READ_ACCOUNTS] : []),
    ...(['postinst', 'prerm', 'postrm'] as const).map(
      (n) =>
        `{ printf '#!/bin/sh\\nset -e\\n'; ${c === 'libvirt' ? 'cat "$W/accounts"; ' : ''}printf '%s\\n' ` +
        `${quote(scripts[n])}; } > "$STAGE/DEBIAN/${n}"; chmod 755 "$STAGE/DEBIAN/${n}"`,
    ),
  ];
}

/** Packs $STAGE into one .deb (or .rpm) in $OUT; runtime dependencies from the ELF files' libraries. */
export function packageBody(spec: BuildSpec, key: string): string {
  const p = PACKAGES[spec.component];
  const name = p.name('');
  const version = packageVersion(spec, key);
  const replaces = p.replaces[spec.distro.pm].join(', ');
  const summary =
    `${spec.component === 'qemu' ? 'QEMU' : 'libvirt'} ${spec.version} built by kvmforge (artifact ` +
    `${shortKey(key)}${spec.sourcePackage ? `, from the distribution's source package ${spec.sourcePackage}` : ''})`;
  const elfs =
    'find "$STAGE" -type f | while IFS= read -r f; do if [ "$(od -An -tx1 -N4 "$f" | tr -d " ")" = 7f454c46 ]; then ' +
    'echo "$f"; fi; done > "$W/elfs"';
  const strip = 'xargs -r strip --strip-unneeded < "$W/elfs" 2>/dev/null || true';
  if (spec.distro.pm === 'apt') {
    return [
      elfs,
      strip,
      'mkdir -p "$W/shl/debian" "$STAGE/DEBIAN"',
      'printf \'Source: kvmforge\\n\\nPackage: kvmforge\\nArchitecture: any\\n\' > "$W/shl/debian/control"',
      'libdirs=$(find "$STAGE" -name "*.so*" -type f -exec dirname {} \\; | sort -u | sed "s/^/-l/" | tr "\\n" " ")',
      'deps=$(cd "$W/shl" && xargs dpkg-shlibdeps -O --ignore-missing-info $libdirs < "$W/elfs" 2>"$W/shlibdeps.log" ' +
        '| sed -n "s/^shlibs:Depends=//p")',
      '[ -n "$deps" ] || { cat "$W/shlibdeps.log" >&2; echo "could not work out the package\'s library dependencies ' +
        '(dpkg-shlibdeps)" >&2; exit 1; }',
      `extra=${quote(spec.component === 'qemu' ? 'seabios, ipxe-qemu' : 'dnsmasq-base, iptables')}`,
      '( cd "$STAGE" && find etc -type f 2>/dev/null | sed "s|^|/|" ) > "$STAGE/DEBIAN/conffiles"; [ -s ' +
        '"$STAGE/DEBIAN/conffiles" ] || rm -f "$STAGE/DEBIAN/conffiles"',
      ...maintainer(spec.component),
      '{',
      `  echo ${quote(`Package: ${name}`)}; echo ${quote(`Version: ${version}`)}; echo "Architecture: $(dpkg ` +
        `--print-architecture)"`,
      "  echo 'Maintainer: kvmforge <root@localhost>'; echo 'Section: admin'; echo 'Priority: optional'",
      '  echo "Installed-Size: $(du -sk "$STAGE" | cut -f1)"',
      '  echo "Depends: ${deps:+$deps, }$extra"',
      ...(replaces
        ? [
            `  echo ${quote(`Conflicts: ${replaces}`)}; echo ${quote(`Replaces: ${replaces}`)}; echo ` +
              `${quote(`Provides: ${replaces}`)}`,
          ]
        : []),
      `  echo ${quote(`Description: ${summary}`)}`,
      '} > "$STAGE/DEBIAN/control"',
      `dpkg-deb -Zgzip --root-owner-group -b "$STAGE" "$OUT/"${quote(`${name}_${version}_`)}"$(dpkg ` +
        `--print-architecture).deb" >/dev/null`,
    ].join('\n');
  }
  // RHEL family: an rpm of the staged tree (rpmbuild packs the buildroot as it is)
  return [
    ...(spec.component === 'libvirt' ? [READ_ACCOUNTS] : []),
    elfs,
    strip,
    'mkdir -p "$W/rpm"',
    '( cd "$STAGE" && find . -type f -o -type l | sed "s|^\\.||; s|.*|\\"&\\"|" ) > "$W/rpm/files"',
    '{',
    `  echo ${quote(`Name: ${name}`)}; echo ${quote(`Version: ${spec.version.replace(/-/g, '.')}`)}; echo ` +
      `${quote(`Release: kvmforge.${shortKey(key)}`)}`,
    `  echo ${quote(`Summary: ${summary}`)}; echo 'License: GPL-2.0-or-later'`,
    ...(replaces ? [`  echo ${quote(`Obsoletes: ${replaces}`)}; echo ${quote(`Provides: ${replaces}`)}`] : []),
    "  echo '%description'; echo 'Built by kvmforge.'; echo '%install'",
    ...rpmScriptlets(spec.component).flatMap(([h, body]) => [
      `  echo ${quote(h)}`,
      ...(spec.component === 'libvirt' ? ['  cat "$W/accounts"'] : []),
      `  printf '%s\\n' ${quote(body)}`,
    ]),
    '  echo \'%files\'; cat "$W/rpm/files"',
    '} > "$W/rpm/pkg.spec"',
    'rpmbuild -bb --define "_rpmdir $OUT" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" ' +
      '--define "__spec_install_pre %{___build_pre}" --buildroot "$STAGE" "$W/rpm/pkg.spec" >/dev/null',
  ].join('\n');
}

/** The tarball must hold the version the vars name (an unknown or mistyped version fails here, before compiling). */
function versionCheck(spec: BuildSpec): string {
  const read =
    spec.component === 'kernel'
      ? `awk '/^VERSION =/{v=$3} /^PATCHLEVEL =/{p=$3} /^SUBLEVEL =/{s=$3} END{print v"."p"."s}' Makefile`
      : spec.component === 'qemu'
        ? 'cat VERSION'
        : `sed -n "s/^  version: '\\([^']*\\)'.*/\\1/p" meson.build | head -n1`;
  // a distribution's tree may carry stable updates past its upstream version (Debian's qemu 7.2+dfsg holds 7.2.22)
  const fits = spec.sourcePackage ? '"$want"|"$want".*' : '"$want"';
  return [
    `have=$(${read})`,
    sh`want=${spec.version}`,
    `case "$have" in ${fits}) ;; *) echo "the ${spec.sourcePackage ? 'source package' : 'tarball'} holds ` +
      `${spec.component} $have, not $want (${spec.component}_version)" >&2; exit 7;; esac`,
  ].join('\n');
}

/** The whole build, run as root on the build host. $SRC is the verified tarball. Keeps $W on failure. */
export function buildScript(spec: BuildSpec, key: string, workDir: string, tarball: string, outDir: string): string {
  const pkg = spec.component === 'kernel' ? '' : packageBody(spec, key);
  return [
    sh`W=${workDir}; SRC=${tarball}; OUT=${outDir}; STAGE=${`${workDir}/stage`}`,
    'export LC_ALL=C',
    // two runs building one artifact on one host would share its directories
    'mkdir -p "$W"; exec 9>"$W.lock"',
    'flock -n 9 || { echo "another kvmforge run is building this artifact here right now (lock $W.lock); run again ' +
      'when it has finished" >&2; exit 8; }',
    'rm -rf "$W/src" "$STAGE" "$OUT.part"; mkdir -p "$W/src" "$STAGE" "$OUT.part"',
    'OUT="$OUT.part"',
    'echo "KVMFORGE_PHASE unpack"',
    ...(spec.sourcePackage && spec.distro.pm === 'apt'
      ? [
          // the distribution's source package, its patches applied (dpkg-source checks every file against the .dsc)
          'rmdir "$W/src"; dpkg-source -x "$SRC" "$W/src" >"$W/unpack.log" 2>&1 || { cat "$W/unpack.log" >&2; exit ' +
            '1; }',
          // the kernel's bindeb-pkg writes a debian/ of its own: Debian's packaging goes, its patched tree stays
          ...(spec.component === 'kernel' ? ['rm -rf "$W/src/debian"'] : []),
        ]
      : spec.sourcePackage
        ? srpmUnpack(spec.component)
        : ['tar xf "$SRC" -C "$W/src" --strip-components=1']),
    'cd "$W/src"',
    versionCheck(spec),
    'echo "KVMFORGE_PHASE build"',
    buildBody(spec, key),
    ...(pkg ? ['echo "KVMFORGE_PHASE package"', pkg] : []),
    sh`mv -T "$OUT" ${outDir}`,
    'rm -rf "$W/src" "$STAGE"',
    sh`ls -1 ${outDir}`,
  ].join('\n');
}

/** A source RPM's tree with the distribution's patches applied: its files into a private _topdir (rpm -i of a source
 * RPM touches no database), `rpmbuild -bp` runs the spec's %prep, and the tree is the directory %prep made that holds
 * the component's top-level build file (BUILD/NAME-VERSION, or one level deeper as the kernel's and rpm ≥ 4.20's). */
export function srpmUnpack(c: Component): string[] {
  const marker = c === 'kernel' ? 'Kconfig' : 'meson.build';
  return [
    'R="$W/rpm"; rm -rf "$R"; mkdir -p "$R"',
    '{ rpm -i --define "_topdir $R" "$SRC" && rpmbuild -bp --nodeps --define "_topdir $R" "$R"/SPECS/*.spec; } ' +
      '>"$W/unpack.log" 2>&1 || { tail -n 20 "$W/unpack.log" >&2; exit 1; }',
    `tree=$(find "$R/BUILD" -mindepth 2 -maxdepth 4 -name ${marker} -printf '%h\\n' | awk '{ print length, $0 }' | ` +
      "sort -n | head -n 1 | cut -d' ' -f2-)",
    `[ -n "$tree" ] || { echo "the source RPM's %prep made no tree with a ${marker}" >&2; exit 1; }`,
    'rmdir "$W/src"; mv -T "$tree" "$W/src"; rm -rf "$R"',
  ];
}
