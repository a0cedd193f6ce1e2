// Where a component's source tarball comes from, and how the build host gets it verified.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { badVar, varDir as fileDir, varOr } from '../core/vars.ts';
import { quote, sh } from '../core/sh.ts';
import type { Component, Host, PackageManager, Source } from '../core/types.ts';

export type { Component, Source };

/** Where a var's relative path is read from: beside the file that set it (baseDir when no file did). */
const varDir = (host: Host, name: string, baseDir: string) => (host.varPos[name] ? fileDir(host, name) : baseDir);

const VERSION = /^[0-9][0-9A-Za-z.+~-]{0,40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

/** The upstream tarball of a version. Kernel: kernel.org's v6.x directory layout. */
export function upstreamUrl(c: Component, version: string): string {
  if (c === 'kernel')
    return `https://cdn.kernel.org/pub/linux/kernel/v${version.split('.')[0]}.x/linux-${version}.tar.xz`;
  if (c === 'qemu') return `https://download.qemu.org/qemu-${version}.tar.xz`;
  return `https://download.libvirt.org/libvirt-${version}.tar.xz`;
}

/** Where each project publishes a detached signature of that tarball (checked only with a keyring). */
export function upstreamSignature(c: Component, url: string): string {
  if (c === 'kernel') return url.replace(/\.tar\.xz$/, '.tar.sign');
  return c === 'qemu' ? `${url}.sig` : `${url}.asc`;
}

/**
 * Reads `<c>_version`, `<c>_source`, `<c>_sha256`, `<c>_signature`, `<c>_keyring`; undefined when no version is set.
 */
export function sourceOf(host: Host, c: Component, baseDir: string): Source | undefined {
  const version = host.vars[`${c}_version`];
  if (version === undefined || version === null) return undefined;
  if (version === 'distro') {
    const from = varOr<string>(host, `${c}_source`, 'distro');
    if (from !== 'distro')
      throw badVar(
        host,
        `${c}_source`,
        `${c}_version is distro (the version the distribution's source package holds), so ${c}_source must be ` +
          `distro or unset, not '${from}'`,
      );
    return distroSource(host, c, version);
  }
  if (typeof version !== 'string' || !VERSION.test(version))
    throw badVar(
      host,
      `${c}_version`,
      `expected a version like ${c === 'kernel' ? '6.1.192' : c === 'qemu' ? '7.2.0' : '9.0.0'}, or distro; got ` +
        `${JSON.stringify(version)}`,
    );
  const given = varOr<string>(host, `${c}_source`, upstreamUrl(c, version));
  if (given === 'distro') return distroSource(host, c, version);
  const sha = varOr<string | undefined>(host, `${c}_sha256`, undefined);
  if (sha !== undefined && (typeof sha !== 'string' || !SHA256.test(sha)))
    throw badVar(host, `${c}_sha256`, "expected the tarball's sha256: 64 lowercase hex digits");
  const src: Source = { component: c, version, sha256: sha, fileName: '' };
  if (/^https?:\/\//.test(given)) {
    if (!/^https?:\/\/[A-Za-z0-9.-]+(:\d+)?\/[A-Za-z0-9._~/+%-]*[A-Za-z0-9]$/.test(given))
      throw badVar(host, `${c}_source`, `'${given}' is not a plain http(s) URL of a tarball`);
    if (!sha)
      throw badVar(
        host,
        `${c}_sha256`,
        `a download (${given}) needs its published sha256 in ${c}_sha256; a tarball that doesn't match is refused ` +
          `and deleted`,
      );
    src.url = given;
  } else {
    const path = resolve(varDir(host, `${c}_source`, baseDir), given);
    if (!existsSync(path) || !statSync(path).isFile())
      throw badVar(host, `${c}_source`, `expected an http(s) URL or a tarball on this machine; ${path} does not exist`);
    src.path = path;
  }
  src.fileName = basename(src.url ?? src.path!).replace(/[^A-Za-z0-9._+~-]/g, '_');
  const keyring = varOr<string | undefined>(host, `${c}_keyring`, undefined);
  if (keyring !== undefined) {
    const k = resolve(varDir(host, `${c}_keyring`, baseDir), keyring);
    if (!existsSync(k))
      throw badVar(host, `${c}_keyring`, `expected a keyring file (gpg --export or .gpg); ${k} does not exist`);
    src.keyring = k;
    const sig = varOr<string | undefined>(host, `${c}_signature`, src.url ? upstreamSignature(c, src.url) : undefined);
    if (!sig)
      throw badVar(host, `${c}_signature`, 'a keyring was given for a local tarball: name its detached signature too');
    src.signature = /^https?:\/\//.test(sig) ? sig : resolve(varDir(host, `${c}_signature`, baseDir), sig);
  }
  return src;
}

/** `<c>_source: distro`: what the distribution's signed index says is checked instead of a sha256 or a keyring. */
function distroSource(host: Host, c: Component, version: string): Source {
  // a sha256 stays a check: of the upstream tarball inside the package (Debian's .orig.tar.*), at plan time
  const sha = varOr<string | undefined>(host, `${c}_sha256`, undefined);
  if (sha !== undefined && (typeof sha !== 'string' || !SHA256.test(sha)))
    throw badVar(host, `${c}_sha256`, "expected the upstream tarball's sha256: 64 lowercase hex digits");
  for (const v of [`${c}_signature`, `${c}_keyring`])
    if (host.vars[v] !== undefined && host.vars[v] !== null)
      throw badVar(
        host,
        v,
        `${c}_source is distro: the source package is checked against the build host's signed package index, so ` +
          `${v} does not apply; remove it`,
      );
  return { component: c, version, fileName: '', distro: true, ...(sha ? { sha256: sha } : {}) };
}

/** The distribution's source package of each component, per package manager. */
export const DISTRO_PACKAGE: Record<PackageManager, Record<Component, string>> = {
  apt: { kernel: 'linux', qemu: 'qemu', libvirt: 'libvirt' },
  dnf: { kernel: 'kernel', qemu: 'qemu-kvm', libvirt: 'libvirt' },
  yum: { kernel: 'kernel', qemu: 'qemu-kvm', libvirt: 'libvirt' },
};

/** Run on the build host (no root needed, nothing changed): the files `apt-get source` would fetch; with dnf, the
 * newest source RPM of the package (`--srpm` looks in the `-source` twin of each enabled repository). */
export const distroProbe = (pkg: string, pm: PackageManager = 'apt') =>
  pm === 'apt'
    ? sh`LC_ALL=C apt-get source --print-uris --only-source ${pkg} 2>&1`
    : 'command -v dnf >/dev/null || { echo "no dnf on this host"; exit 0; }; ' +
      "LC_ALL=C dnf -q repoquery --srpm --latest-limit 1 --qf 'KVMFORGE_SRPM %{name} %{epoch} %{version} " +
      "%{release}' " +
      sh`${pkg} 2>&1`;

export interface DistroPackage {
  /** `qemu 7.2+dfsg-7+deb12u18`, `qemu-kvm 17:8.2.0-11.el9` */
  name: string;
  /** The upstream part of the version: `7.2` (Debian's revision and repack suffixes dropped). */
  upstream: string;
  /** What the artifact key records: the .dsc's sha256, or the source RPM's file name. */
  id: string;
  /** apt: the files of the source package, the .dsc first. */
  files: { url: string; name: string; sha256: string }[];
  /** dnf: the source RPM. */
  srpm?: { spec: string; file: string };
}

/** Reads distroProbe's output: the package, or why there is none (no source repository, no such package). */
export function parseDistroProbe(
  pkg: string,
  out: string,
  pm: PackageManager = 'apt',
): DistroPackage | { missing: string } {
  if (pm !== 'apt') return parseSrpmProbe(pkg, out);
  const files = [...out.matchAll(/^'([^']+)' (\S+) \d+ SHA256:([0-9a-f]{64})$/gm)].map((m) => ({
    url: m[1],
    name: m[2],
    sha256: m[3],
  }));
  const dsc = files.find((f) => f.name.endsWith('.dsc'));
  if (!dsc) {
    const why = /deb-src/.test(out)
      ? 'no source repository is configured (no deb-src lines in its apt sources)'
      : /Unable to find a source package|Can not find a package/i.test(out)
        ? `its source repositories have no package '${pkg}'`
        : `apt-get source --print-uris said: ${out.trim().split('\n').slice(-2).join(' | ') || 'nothing'}`;
    return { missing: why };
  }
  const version = dsc.name.slice(pkg.length + 1, -'.dsc'.length);
  const upstream = version.replace(/-[^-]*$/, '').replace(/[+~].*$/, '');
  return { name: `${pkg} ${version}`, upstream, id: dsc.sha256, files: [dsc, ...files.filter((f) => f !== dsc)] };
}

function parseSrpmProbe(pkg: string, out: string): DistroPackage | { missing: string } {
  const m = /^KVMFORGE_SRPM (\S+) (\d+) (\S+) (\S+)$/m.exec(out);
  if (!m) {
    const said = out.trim().split('\n').slice(-2).join(' | ');
    return {
      missing: said
        ? `dnf repoquery --srpm said: ${said}`
        : `no source RPM of '${pkg}': no source repository is enabled or holds it (on RHEL-family hosts the ` +
          "'-source' twin of each repository, e.g. baseos-source, appstream-source)",
    };
  }
  const [, name, epoch, version, release] = m;
  const evr = `${epoch === '0' ? '' : `${epoch}:`}${version}-${release}`;
  return {
    name: `${name} ${evr}`,
    upstream: version,
    id: `${name}-${version}-${release}.src.rpm`,
    files: [],
    // dnf download --source takes the binary package; its source RPM is `name`'s
    srpm: { spec: `${pkg}-${evr}`, file: `${name}-${version}-${release}.src.rpm` },
  };
}

/** Does `<c>_version` name the version the distribution's tree holds? (7.2.22 is in Debian's 7.2+dfsg.) */
export const versionFits = (version: string, upstream: string) =>
  version === upstream || version.startsWith(`${upstream}.`);

const hashes = new Map<string, Promise<string>>();
/** sha256 of a local file, memoized per path, size and mtime. */
export function sha256File(path: string): Promise<string> {
  const st = statSync(path);
  const id = `${path}:${st.size}:${st.mtimeMs}`;
  let p = hashes.get(id);
  if (!p) {
    p = new Promise((res, rej) => {
      const h = createHash('sha256');
      createReadStream(path)
        .on('data', (d) => h.update(d))
        .on('end', () => res(h.digest('hex')))
        .on('error', rej);
    });
    hashes.set(id, p);
  }
  return p;
}

/** The source's sha256: given, or computed for a local file. */
export async function sourceSha(s: Source): Promise<string> {
  return s.sha256 ?? sha256File(s.path!);
}

/** Shell: downloads `url` to "$f.part" with curl (else wget); a failure removes it and exits 3. */
const downloadPart = (url: string) =>
  sh`  if command -v curl >/dev/null; then curl -fsSL --retry 2 -o "$f.part" ${url}; else wget -q -O "$f.part" ` +
  sh`${url}; fi || { rm -f "$f.part"; echo ${`cannot download ${url}`} >&2; exit 3; }`;

/** Runs on the build host: download (unless present and verified), check sha256 (refuse and delete a
 * mismatch), check the signature when a keyring was given. Prints the verified path. */
export function fetchScript(s: Source, sha: string, dir: string, keyringOnHost?: string, sigOnHost?: string): string {
  if (s.srpm) return fetchSrpmScript(s.srpm, dir);
  if (s.distroFiles) return fetchDistroScript(s.distroFiles, dir);
  const file = `${dir}/${s.fileName}`;
  const lines = [
    sh`mkdir -p ${dir}`,
    sh`f=${file}; want=${sha}`,
    'have=$( [ -f "$f" ] && sha256sum "$f" | cut -d" " -f1 || true)',
    'if [ "$have" != "$want" ]; then',
  ];
  if (s.url) {
    lines.push(
      '  rm -f "$f.part"',
      downloadPart(s.url),
      '  mv -f "$f.part" "$f"',
      '  have=$(sha256sum "$f" | cut -d" " -f1)',
    );
  }
  lines.push(
    '  if [ "$have" != "$want" ]; then rm -f "$f"; echo "checksum mismatch for $f: expected $want, got ' +
      '${have:-nothing}; the file was deleted" >&2; exit 4; fi',
    'fi',
  );
  if (keyringOnHost && s.signature) {
    if (/^https?:/.test(s.signature))
      lines.push(
        sh`curl -fsSL -o "$f.sig" ${s.signature} || { echo ${`cannot download the signature ${s.signature}`} >&2; ` +
          sh`exit 3; }`,
      );
    else lines.push(sh`cp ${sigOnHost!} "$f.sig"`);
    // the kernel signs the uncompressed tar
    const data = s.component === 'kernel' && /\.tar\.sign$/.test(s.signature) ? 'xz -dc "$f" |' : 'cat "$f" |';
    lines.push(
      `if ! ${data} gpgv --keyring ${quote(keyringOnHost)} "$f.sig" - 2>"$f.gpgv"; then cat "$f.gpgv" >&2; rm -f ` +
        `"$f"; echo "bad signature on $f; the file was deleted" >&2; exit 5; fi`,
    );
  }
  lines.push('echo "$f"');
  return lines.join('\n');
}

/** Runs on the build host: the source package's files from the URLs its signed index gave, each checked against the
 * index's sha256 (a mismatch is refused and deleted). Prints the .dsc's path; dpkg-source checks the rest again. */
function fetchDistroScript(files: NonNullable<Source['distroFiles']>, dir: string): string {
  const lines = [sh`mkdir -p ${dir} && cd ${dir}`];
  for (const f of files)
    lines.push(
      sh`f=${f.name}; want=${f.sha256}`,
      'have=$( [ -f "$f" ] && sha256sum "$f" | cut -d" " -f1 || true)',
      'if [ "$have" != "$want" ]; then',
      '  rm -f "$f.part"',
      downloadPart(f.url),
      '  have=$(sha256sum "$f.part" | cut -d" " -f1)',
      '  if [ "$have" != "$want" ]; then rm -f "$f.part"; echo "checksum mismatch for $f: the package index says ' +
        '$want, the download is $have; it was deleted" >&2; exit 4; fi',
      '  mv -f "$f.part" "$f"',
      'fi',
    );
  lines.push(sh`echo ${`${dir}/${files[0].name}`}`);
  return lines.join('\n');
}

/** Runs on the build host (dnf): the source RPM, downloaded by dnf (which checks it against the repository's index)
 * unless already here, then its signature checked by rpmkeys against the keys the host's rpm trusts; an unsigned or
 * untrusted one is refused and deleted. Prints its path. */
function fetchSrpmScript(srpm: NonNullable<Source['srpm']>, dir: string): string {
  return [
    sh`mkdir -p ${dir} && cd ${dir}`,
    sh`f=${srpm.file}`,
    'if [ ! -f "$f" ] || ! LC_ALL=C rpmkeys --checksig "$f" 2>/dev/null | grep -q "signatures OK"; then',
    '  rm -f "$f"',
    sh`  LC_ALL=C dnf -q download --source --destdir . ${srpm.spec} >dnf.log 2>&1 || { cat dnf.log >&2; echo ` +
      sh`${`cannot download the source RPM of ${srpm.spec}`} >&2; exit 3; }`,
    `  [ -f "$f" ] || { echo "dnf download gave no $f" >&2; exit 3; }`,
    'fi',
    'sig=$(LC_ALL=C rpmkeys --checksig "$f" 2>&1)',
    'case "$sig" in *"signatures OK"*) ;; *) rm -f "$f"; echo "the source RPM $f is not signed by a key this host ' +
      'trusts ($sig); it was deleted. Import the distribution\'s key first (rpm --import /etc/pki/rpm-gpg/…)" >&2; ' +
      'exit 5;; esac',
    sh`echo ${`${dir}/${srpm.file}`}`,
  ].join('\n');
}
