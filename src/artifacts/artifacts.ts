// Build once, install many: artifacts keyed by a hash of every input, kept on the build host and in
// the control machine's cache; one build per key per run, however many hosts want it.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, HostError } from '../core/errors.ts';
import { cacheDir } from '../core/paths.ts';
import { sh } from '../core/sh.ts';
import type { BuildSpec, Host, PackageManager, Source, Transport } from '../core/types.ts';
import { arch, osRelease } from '../facts/host.ts';
import { FactReader } from '../facts/reader.ts';
import { BUILD_DEPS, BUILD_TIMEOUT_S, buildScript, MIN_FREE_GIB, shortKey } from './recipes.ts';
import { fetchScript } from './sources.ts';
import { lockTimeoutOf, pkgInstall } from './pkg-install.ts';

export interface ArtifactMeta {
  component: string;
  version: string;
  key: string;
  files: { name: string; size: number }[];
  distro: BuildSpec['distro'];
  options: BuildSpec['options'];
  builtOn: string;
  buildSeconds: number;
  builtAt: string;
  /** Built from the distribution's source package (name and version), when it was. */
  sourcePackage?: string;
  /** Kernel: requested options olddefconfig dropped. */
  dropped?: string[];
  /** Kernel: objects compiled, for the next build's progress estimate. */
  objects?: number;
}

export const artifactDir = (spec: BuildSpec, key: string) =>
  join(cacheDir(), 'artifacts', `${spec.component}-${spec.version}-${shortKey(key)}`);

export function readMeta(dir: string): ArtifactMeta | undefined {
  const f = join(dir, 'meta.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as ArtifactMeta) : undefined;
}

/** Every artifact in the local cache, newest first. */
export function listArtifacts(cache = cacheDir()): (ArtifactMeta & { dir: string })[] {
  const root = join(cache, 'artifacts');
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((d) => ({ dir: join(root, d), meta: readMeta(join(root, d)) }))
    .filter((x) => x.meta)
    .map((x) => ({ ...x.meta!, dir: x.dir }))
    .sort((a, b) => b.builtAt.localeCompare(a.builtAt));
}

/** What a build or an install reports while it works: the host it works on, a line for the live view, a line
 * for the journal, a named log file beside the journal (the build log). */
export interface ArtifactIO {
  transport: Transport;
  progress(text: string): void;
  log(text: string): void;
  logFile(name: string): { append(chunk: string): void; path: string };
}

export interface BuildRequest {
  spec: BuildSpec;
  key: string;
  source: Source;
  buildHost: Host;
  /** Root of kvmforge's directories on the build host. */
  buildDir: string;
  connect(host: Host): Promise<Transport>;
}

const inFlight = new Map<string, Promise<ArtifactMeta>>();

/** The artifact in the local cache: there already, fetched from the build host, or built there first.
 * Concurrent callers for one key share one build. */
export function ensureArtifact(req: BuildRequest, io: ArtifactIO): Promise<ArtifactMeta> {
  const local = artifactDir(req.spec, req.key);
  const have = readMeta(local);
  if (have) return Promise.resolve(have);
  let p = inFlight.get(req.key);
  if (!p) {
    p = buildOrFetch(req, io, local).finally(() => inFlight.delete(req.key));
    inFlight.set(req.key, p);
  } else io.progress(`waiting for the ${req.spec.component} build on ${req.buildHost.name}`);
  return p;
}

async function buildOrFetch(req: BuildRequest, io: ArtifactIO, local: string): Promise<ArtifactMeta> {
  const { spec, key, buildHost } = req;
  const out = `${req.buildDir}/artifacts/${spec.component}-${spec.version}-${shortKey(key)}`;
  const t = await req.connect(buildHost);
  try {
    let meta = await remoteMeta(t, out);
    if (!meta) meta = await build(req, t, out, io);
    else io.log(`artifact ${shortKey(key)} found on ${buildHost.name}:${out}`);
    io.progress(`fetching ${spec.component} artifact from ${buildHost.name}`);
    const part = `${local}.part`;
    rmSync(part, { recursive: true, force: true });
    mkdirSync(part, { recursive: true });
    for (const f of meta.files) await fetchFile(t, `${out}/${f.name}`, join(part, f.name));
    writeFileSync(join(part, 'meta.json'), JSON.stringify(meta, null, 2));
    rmSync(local, { recursive: true, force: true });
    renameSync(part, local);
    return meta;
  } finally {
    await t.close();
  }
}

async function remoteMeta(t: Transport, out: string): Promise<ArtifactMeta | undefined> {
  const r = await t.exec(sh`cat ${`${out}/meta.json`} 2>/dev/null || true`, { sudo: true });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as ArtifactMeta) : undefined;
}

async function fetchFile(t: Transport, remote: string, localPath: string) {
  if (t.getFile) await t.getFile(remote, localPath);
  else writeFileSync(localPath, await t.get(remote));
}

/** Pushes a local file (a tarball, a package) to a host. */
export async function pushFile(t: Transport, localPath: string, remote: string) {
  if (t.putFile) await t.putFile(localPath, remote);
  else await t.put(remote, readFileSync(localPath));
}

/** Run as root on a host: prints the package manager's name. */
const PM_PROBE =
  'for pm in apt-get dnf yum; do command -v $pm >/dev/null 2>&1 && { echo ${pm%-get}; exit 0; }; done; echo unknown';

async function build(req: BuildRequest, t: Transport, out: string, io: ArtifactIO): Promise<ArtifactMeta> {
  const { spec, key, source, buildHost } = req;
  const c = spec.component;
  const [os, a] = await new FactReader(buildHost, () => t).read(osRelease, arch);
  const pm = (await t.exec(PM_PROBE)).stdout.trim() as PackageManager | 'unknown';
  const same = os.id === spec.distro.id && os.versionId === spec.distro.versionId && a === spec.distro.arch;
  if (!same)
    throw new HostError(
      `build host ${buildHost.name} runs ${os.id} ${os.versionId} ${a}; the target runs ${spec.distro.id} ` +
        `${spec.distro.versionId} ${spec.distro.arch}: name a build host of the same distro, version and arch ` +
        `(build_host)`,
    );
  if (pm === 'unknown') throw new HostError(`build host ${buildHost.name}: no apt-get, dnf or yum`);
  const work = `${req.buildDir}/build/${c}-${spec.version}-${shortKey(key)}`;
  // disk first: a build that runs out of space halfway wastes the most time
  const need = MIN_FREE_GIB[c];
  const df = await t.exec(sh`mkdir -p ${req.buildDir} && df -Pk ${req.buildDir} | awk 'NR==2 {print $4}'`, {
    sudo: true,
  });
  const freeGiB = Number(df.stdout.trim()) / 1024 / 1024;
  if (!(freeGiB >= need))
    throw new HostError(
      `build host ${buildHost.name}: ${freeGiB.toFixed(1)} GiB free in ${req.buildDir}, the ${c} build needs ` +
        `${need} GiB; free some space or set build_dir`,
    );
  const deps = BUILD_DEPS[pm][c];
  io.progress(`installing ${deps.length} build dependencies on ${buildHost.name}`);
  const installCmd = pkgInstall(
    pm,
    (pm === 'apt' ? '--no-install-recommends ' : '') + sh`${deps}`,
    lockTimeoutOf(buildHost.vars),
  );
  const missing =
    pm === 'apt'
      ? sh`dpkg-query -W -f ${'${db:Status-Abbrev} ${Package}\n'} ${deps} 2>/dev/null | grep -c '^ii ' || true`
      : 'echo 0';
  const present = Number((await t.exec(missing, { sudo: true })).stdout.trim());
  if (present !== deps.length) {
    const r = await t.exec(installCmd, { sudo: true, timeoutMs: 1_800_000 });
    if (r.code !== 0)
      throw new CommandError(
        buildHost.name,
        installCmd,
        r.code,
        r.stderr,
        `installing build dependencies on ${buildHost.name} failed: ` +
          `${r.stderr.trim().split('\n').slice(-2).join(' | ')}`,
      );
  }
  // the source, verified on the build host
  io.progress(`getting the ${c} source on ${buildHost.name}`);
  const srcDir = `${req.buildDir}/sources`;
  let keyring: string | undefined;
  let sig: string | undefined;
  await t.exec(sh`mkdir -p ${srcDir} ${work}`, { sudo: true });
  if (source.path) {
    const there = await t.exec(sh`sha256sum ${`${srcDir}/${source.fileName}`} 2>/dev/null | cut -d' ' -f1`, {
      sudo: true,
    });
    if (there.stdout.trim() !== spec.sourceSha) await pushFile(t, source.path, `${srcDir}/${source.fileName}`);
  }
  if (source.keyring) {
    keyring = `${work}/keyring.gpg`;
    await pushFile(t, source.keyring, keyring);
    if (source.signature && !/^https?:/.test(source.signature))
      await pushFile(t, source.signature, (sig = `${work}/source.sig`));
  }
  const fetched = await t.exec(fetchScript(source, spec.sourceSha, srcDir, keyring, sig), {
    sudo: true,
    timeoutMs: 1_800_000,
  });
  if (fetched.code !== 0)
    throw new HostError(`${c} source on ${buildHost.name}: ${fetched.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  const tarball = fetched.stdout.trim().split('\n').pop()!;
  for (const [name, content] of Object.entries(spec.files)) await t.put(`${work}/${name}`, content);
  // the build, streamed to the journal and the live view
  const logFile = io.logFile(`build-${c}`);
  io.log(`building ${c} ${spec.version} on ${buildHost.name} in ${work} (log: ${logFile.path})`);
  const started = Date.now();
  const prev = listArtifacts().find((a) => a.component === c && a.objects);
  const meter = progressMeter(c, prev?.objects, started);
  const dropped: string[] = [];
  let tailLines: string[] = [];
  let buf = '';
  const r = await t.exec(buildScript(spec, key, work, tarball, out), {
    sudo: true,
    timeoutMs: (Number(buildHost.vars.build_timeout) || BUILD_TIMEOUT_S) * 1000,
    onOutput: (chunk) => {
      logFile.append(chunk);
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('KVMFORGE_DROPPED ')) dropped.push(line.slice(17));
        const shown = meter(line);
        if (shown) io.progress(shown);
      }
      tailLines = [...tailLines, ...lines].slice(-15);
    },
  });
  const seconds = Math.round((Date.now() - started) / 1000);
  if (r.code !== 0) {
    const unknown = /KVMFORGE_UNKNOWN (.*)/.exec(r.stderr)?.[1];
    if (unknown)
      throw new HostError(
        `kernel config: the fragments name options this kernel doesn't have: ${unknown.trim()} (check the spelling ` +
          `against the kernel's Kconfig)`,
      );
    const last = [...tailLines, ...r.stderr.trim().split('\n')].filter(Boolean).slice(-12);
    throw new HostError(
      `the ${c} build on ${buildHost.name} failed after ${seconds} s (exit ${r.code}); build directory kept: ` +
        `${work}; full log: ${logFile.path}\n${last.map((l) => `  | ${l}`).join('\n')}`,
    );
  }
  const files = await t.exec(sh`cd ${out} && for f in *; do printf '%s %s\n' "$(stat -c %s "$f")" "$f"; done`, {
    sudo: true,
  });
  const meta: ArtifactMeta = {
    component: c,
    version: spec.version,
    key,
    files: files.stdout
      .trim()
      .split('\n')
      .map((l) => ({ size: Number(l.split(' ')[0]), name: l.slice(l.indexOf(' ') + 1) })),
    distro: spec.distro,
    options: spec.options,
    ...(spec.sourcePackage ? { sourcePackage: spec.sourcePackage } : {}),
    builtOn: buildHost.name,
    buildSeconds: seconds,
    builtAt: new Date().toISOString(),
    dropped,
    objects: meter.count() || undefined,
  };
  await t.put(`${out}/meta.json`, JSON.stringify(meta, null, 2));
  await t.exec(sh`rm -rf ${work}`, { sudo: true });
  const droppedNote = dropped.length ? `; options olddefconfig dropped: ${dropped.join(', ')}` : '';
  io.log(
    `built ${c} ${spec.version} on ${buildHost.name} in ${seconds} s: ` +
      `${meta.files.map((f) => f.name).join(', ')}${droppedNote}`,
  );
  return meta;
}

/** Turns build output lines into a progress line: ninja's [n/m], or the kernel's compiled objects
 * against the last kernel build's count. */
export function progressMeter(c: string, expectedObjects: number | undefined, started: number, now = () => Date.now()) {
  let objects = 0;
  let phase = 'unpack';
  const clock = (s: number) => `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  const fn = (line: string): string | undefined => {
    const elapsed = (now() - started) / 1000;
    const ph = /^KVMFORGE_PHASE (\w+)/.exec(line);
    if (ph) {
      phase = ph[1];
      return `${c}: ${phase} (${clock(elapsed)})`;
    }
    const nj = /^\[(\d+)\/(\d+)\]/.exec(line);
    if (nj) {
      const [n, m] = [Number(nj[1]), Number(nj[2])];
      const left = n > 0 ? (elapsed / n) * (m - n) : 0;
      return `${c}: ${n}/${m} compiled, ${clock(elapsed)} elapsed, ~${clock(left)} left`;
    }
    if (/^\s+(CC|AS)(\s+\[M\])?\s/.test(line)) {
      objects++;
      if (objects % 10) return undefined;
      if (expectedObjects) {
        const left = (elapsed / objects) * Math.max(0, expectedObjects - objects);
        return `${c}: ${objects}/~${expectedObjects} objects compiled, ${clock(elapsed)} elapsed, ~${clock(left)} left`;
      }
      return `${c}: ${objects} objects compiled, ${clock(elapsed)} elapsed`;
    }
    return undefined;
  };
  fn.count = () => objects;
  return fn;
}

/** Size of a local artifact's files, for listings. */
export const artifactBytes = (a: ArtifactMeta & { dir: string }) =>
  a.files.reduce((n, f) => n + (existsSync(join(a.dir, f.name)) ? statSync(join(a.dir, f.name)).size : 0), 0);
