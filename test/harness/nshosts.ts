// Real SSH hosts for tests: one network namespace and one chrooted sshd (over an overlay of the
// shared Debian tree) per host, joined by veths to a bridge in a hub namespace. Nothing is added to
// the machine's own network namespace; the kvmforge CLI runs inside the hub (`ip netns exec`).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { labKey, PROJECT, rootfsDir } from '../../src/lab/paths.ts';
import { alive } from '../../src/lab/vm.ts';

export const SUDO_PASSWORD = 'kvf pw;$(touch /tmp/pwned)\'"`';

export interface NsHost {
  name: string;
  ns: string;
  address: string;
  dir: string;
  hostKeyPub: string;
}

/** Runs argv, awaited; a failure throws with its stderr. */
async function must(cmd: string, args: string[]): Promise<string> {
  const r = await runAsync(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}
const shAsync = (script: string) => must('sh', ['-c', script]);

/** The shared Debian tree, built (once, minutes) by a child process so this one keeps answering. */
async function rootfsInAChild(): Promise<string> {
  if (existsSync(rootfsDir())) return rootfsDir();
  const paths = join(PROJECT, 'src/lab/paths.ts');
  const script =
    `const { ensureRootfs } = await import(${JSON.stringify(paths)}); ` +
    `process.stdout.write(ensureRootfs((s) => process.stderr.write(s + '\\n')));`;
  const r = await runAsync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: PROJECT,
    timeoutMs: 1_800_000,
  });
  process.stderr.write(r.stderr);
  if (r.code !== 0) throw new Error(`building the namespace hosts' tree failed (${r.code})`);
  return r.stdout;
}
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The processes of a network namespace. */
const nsPids = (ns: string): string[] =>
  spawnSync('ip', ['netns', 'pids', ns]).stdout.toString().split('\n').filter(Boolean);

function killNs(ns: string) {
  for (let i = 0; i < 3; i++) {
    const pids = nsPids(ns);
    if (!pids.length) break;
    spawnSync('kill', ['-9', ...pids]);
  }
  spawnSync('ip', ['netns', 'del', ns]);
}

/** Removes namespaces and files left by earlier runs whose process is gone. */
export function cleanStale() {
  const list = spawnSync('ip', ['netns', 'list']).stdout.toString();
  for (const line of list.split('\n')) {
    const m = /^(kvf(\d+)-\S+)/.exec(line);
    if (m && !alive(Number(m[2]))) killNs(m[1]);
  }
}

export class NsLab {
  readonly id = `kvf${process.pid}`;
  readonly hub = `${this.id}-hub`;
  readonly dir: string;
  readonly hosts: NsHost[] = [];
  readonly key = labKey();
  readonly knownHosts: string;
  private rootfs = '';

  constructor(readonly count: number) {
    this.dir = join('/tmp', this.id);
    this.knownHosts = join(this.dir, 'known_hosts');
  }

  /** Brings the hosts up. Awaited, never blocking: with 8 hosts on a loaded machine the setup takes tens of seconds,
   * and vitest's worker must answer its main thread within 60 s (a worker held that long loses the run). */
  async up(): Promise<this> {
    cleanStale();
    this.rootfs = await rootfsInAChild();
    mkdirSync(this.dir, { recursive: true });
    await shAsync(
      [
        `ip netns add ${this.hub}`,
        `ip -n ${this.hub} link set lo up`,
        `ip -n ${this.hub} link add br0 type bridge`,
        `ip -n ${this.hub} addr add 10.77.0.1/24 dev br0`,
        `ip -n ${this.hub} link set br0 up`,
      ].join(' && '),
    );
    const known: string[] = [];
    for (let i = 1; i <= this.count; i++) {
      const h = await this.addHost(i);
      known.push(`${h.address} ${h.hostKeyPub}`);
    }
    writeFileSync(this.knownHosts, known.join('\n') + '\n');
    await this.waitReady();
    return this;
  }

  private async addHost(i: number): Promise<NsHost> {
    const name = `h${i}`;
    const ns = `${this.id}-${name}`;
    const address = `10.77.0.${10 + i}`;
    const dir = join(this.dir, name);
    const upper = join(dir, 'upper');
    mkdirSync(join(upper, 'etc/ssh'), { recursive: true });
    mkdirSync(join(upper, 'run/sshd'), { recursive: true });
    mkdirSync(join(dir, 'work'), { recursive: true });
    mkdirSync(join(dir, 'merged'), { recursive: true });
    await must('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      name,
      '-f',
      join(upper, 'etc/ssh/ssh_host_ed25519_key'),
    ]);
    writeFileSync(
      join(upper, 'etc/ssh/sshd_kvf'),
      [
        `ListenAddress ${address}`,
        'HostKey /etc/ssh/ssh_host_ed25519_key',
        'PidFile /run/sshd.pid',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'UseDNS no',
        'MaxStartups 100:30:200',
        'Subsystem sftp /usr/lib/openssh/sftp-server',
        '',
      ].join('\n'),
    );
    const hostKeyPub = readFileSync(join(upper, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(' ')
      .slice(0, 2)
      .join(' ');
    await shAsync(
      `ip netns add ${ns} && ip -n ${this.hub} link add vh${i} type veth peer name eth0 netns ${ns} && ` +
        `ip -n ${this.hub} link set vh${i} master br0 up && ip -n ${ns} link set lo up && ` +
        `ip -n ${ns} addr add ${address}/24 dev eth0 && ip -n ${ns} link set eth0 up && ` +
        `ip -n ${ns} route add default via 10.77.0.1`,
    );
    const m = join(dir, 'merged');
    const boot = [
      `mount -t overlay overlay -o ` +
        `lowerdir=${q(this.rootfs)},upperdir=${q(upper)},workdir=${q(join(dir, 'work'))} ${q(m)}`,
      `mount -t proc proc ${q(m)}/proc`,
      `mount -t sysfs -o ro sysfs ${q(m)}/sys 2>/dev/null || mount --rbind -o ro /sys ${q(m)}/sys`,
      `mount --rbind /dev ${q(m)}/dev`,
      `mount -t tmpfs tmpfs ${q(m)}/tmp`,
      `hostname ${name}`,
      `echo ${name} > ${q(m)}/etc/hostname`,
      `printf '127.0.0.1 localhost\\n127.0.1.1 ${name}\\n' > ${q(m)}/etc/hosts`,
      `chroot ${q(m)} sh -c ${q(
        'id ops >/dev/null 2>&1 || { useradd -m -s /bin/bash ops && mkdir -p /home/ops/.ssh && ' +
          'cp /root/.ssh/authorized_keys /home/ops/.ssh/ && chown -R ops:ops /home/ops/.ssh && ' +
          "echo 'ops ALL=(ALL) ALL' > /etc/sudoers.d/ops && chmod 440 /etc/sudoers.d/ops; }; " +
          `printf '%s\\n' ${q(`ops:${SUDO_PASSWORD}`)} | chpasswd`,
      )}`,
      `exec chroot ${q(m)} /usr/sbin/sshd -D -e -f /etc/ssh/sshd_kvf`,
    ].join(' && ');
    const log = join(dir, 'sshd.log');
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, 'unshare', '--mount', '--uts', '--pid', '--fork', '--kill-child', 'sh', '-c', boot],
      {
        stdio: ['ignore', 'ignore', openSync(log, 'a')],
        detached: true,
      },
    );
    child.unref();
    const host = { name, ns, address, dir, hostKeyPub };
    this.hosts.push(host);
    return host;
  }

  /** Waits until every sshd answers (banner) on port 22. */
  async waitReady(hosts = this.hosts, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (const h of hosts) {
      for (;;) {
        const r = await runAsync(
          'ip',
          ['netns', 'exec', this.hub, 'bash', '-c', `exec 3<>/dev/tcp/${h.address}/22 && head -c 4 <&3`],
          { timeoutMs: 3000 },
        );
        if (r.stdout === 'SSH-') break;
        if (Date.now() > deadline)
          throw new Error(
            `sshd on ${h.name} did not start: ${readFileSync(join(h.dir, 'sshd.log'), 'utf8').slice(-500)}`,
          );
        await sleep(100);
      }
    }
  }

  /** Kills the sshd (and everything) of one host: it becomes unreachable. */
  stopHost(name: string) {
    const h = this.host(name);
    const pids = nsPids(h.ns);
    if (pids.length) spawnSync('kill', ['-9', ...pids]);
  }

  /** Whether a process of this host has this command line (arguments joined by NUL). */
  hostRuns(name: string, cmdline: string): boolean {
    return nsPids(this.host(name).ns).some((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0$/, '') === cmdline;
      } catch {
        return false;
      }
    });
  }

  host(name: string): NsHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host ${name}`);
    return h;
  }

  /** A file inside a host's own userland (its overlay's upper layer holds what the host wrote). */
  hostPath(name: string, path: string): string {
    return join(this.host(name).dir, 'upper', path);
  }

  /** Runs a command inside a host (its namespaces and chroot), as root. */
  inHost(name: string, cmd: string): string {
    const h = this.host(name);
    const pid = nsPids(h.ns).find((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sshd';
      } catch {
        return false;
      }
    });
    if (!pid) throw new Error(`${name} has no sshd`);
    return execFileSync('nsenter', ['-t', pid, '-m', '-u', '-n', '-p', '-r', '-w', 'sh', '-c', cmd]).toString();
  }

  /** Writes an inventory for these hosts; `extra` adds per-host YAML lines. */
  inventory(file: string, extra: Record<string, string[]> = {}, groupVars: string[] = []): string {
    // namespace hosts share this machine's kernel: the kernel-changing steps are off unless a host turns them on (plan
    // only!)
    const safety = [
      'virtio_modules_enabled: false',
      'hugepages_enabled: false',
      'ksm_enabled: false',
      'boot_args_enabled: false',
      'bridge_enabled: false',
      'sriov_enabled: false',
      'domains_enabled: false',
    ];
    const lines = [
      'all:',
      '  vars:',
      `    ansible_ssh_private_key_file: ${this.key}`,
      `    kvmforge_known_hosts_file: ${this.knownHosts}`,
      ...safety.map((l) => `    ${l}`),
      ...groupVars.map((l) => `    ${l}`),
      '  hosts:',
    ];
    for (const h of this.hosts) {
      lines.push(
        `    ${h.name}:`,
        `      ansible_host: ${h.address}`,
        ...(extra[h.name] ?? []).map((l) => `      ${l}`),
      );
    }
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  }

  /** Runs the kvmforge CLI inside the hub namespace. */
  cli(
    args: string[],
    env: Record<string, string> = {},
    timeoutMs = 120_000,
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runAsync('ip', ['netns', 'exec', this.hub, process.execPath, join(PROJECT, 'bin/kvmforge.js'), ...args], {
      cwd: this.dir,
      env: { ...process.env, ...env, NO_COLOR: '1', SSH_AUTH_SOCK: '' },
      timeoutMs,
    });
  }

  /** Runs a TypeScript file with node inside the hub namespace. */
  node(script: string, args: string[], timeoutMs = 120_000) {
    return runAsync(
      'ip',
      ['netns', 'exec', this.hub, process.execPath, '--import', 'tsx', join(PROJECT, script), ...args],
      { cwd: PROJECT, env: { ...process.env, SSH_AUTH_SOCK: '' }, timeoutMs },
    );
  }

  /** Runs a shell command inside the hub namespace (e.g. OpenSSH for the floor). */
  inHub(cmd: string, timeoutMs = 120_000): string {
    return execFileSync('ip', ['netns', 'exec', this.hub, 'sh', '-c', cmd], { timeout: timeoutMs }).toString();
  }

  down() {
    for (const h of this.hosts) killNs(h.ns);
    killNs(this.hub);
    for (const h of this.hosts) spawnSync('umount', ['-l', join(h.dir, 'merged')]);
    if (existsSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** spawn without blocking the event loop (vitest's worker must keep answering). */
export function runAsync(
  cmd: string,
  args: string[],
  o: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A child that exits before it reads its input makes this write fail with EPIPE; unhandled,
    // that is an uncaught exception in vitest's worker (it failed a whole CI run once).
    child.stdin.on('error', (e) => (stderr += `[stdin: ${e.message}]`));
    child.stdin.end(o.input ?? '');
  });
}
