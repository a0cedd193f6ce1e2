// Faults on purpose, on namespace hosts (real sshd, real shells): the control machine killed in the
// middle of an apply, connections cut mid-command, a command that hangs, a full filesystem. Every
// case ends with an independent look at the hosts and a re-run that converges with zero changes.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NsLab, SUDO_PASSWORD } from '../harness/nshosts.ts';
import { PROJECT } from '../../src/lab/paths.ts';
import type { Report } from '../../src/runner/report.ts';
import { quote } from '../../src/core/sh.ts';
import { pkgInstall } from '../../src/artifacts/pkg-install.ts';

const lab = new NsLab(4);
const DIR = '/etc/kvmforge-faults';
const N = 40;
const CUT = '/etc/kvmforge-cut';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** N files of ~32 KB each, their content tagged with the version, so a file is either one version or absent. */
function content(host: string, i: number, version: number): string {
  return `${host} file ${i} version ${version}\n` + `${version}:${i}:`.repeat(3000) + '\n';
}
function filesVars(host: string, version: number, count = N, dir = DIR): string[] {
  return [
    'files:',
    ...Array.from({ length: count }, (_, i) => [
      `  - path: ${dir}/f${i}.conf`,
      `    content: ${JSON.stringify(content(host, i, version))}`,
    ]).flat(),
  ];
}
const inv = (name: string, extra: Record<string, string[]>) => lab.inventory(join(lab.dir, name), extra);
const changes = (r: Report) => r.hosts.flatMap((h) => h.steps.flatMap((s) => s.changes));
const runs = () =>
  existsSync(join(lab.dir, '.kvmforge', 'runs')) ? readdirSync(join(lab.dir, '.kvmforge', 'runs')).sort() : [];

async function planIsEmpty(file: string, limit?: string) {
  const p = await lab.cli(['plan', '-i', file, '--json', ...(limit ? ['--limit', limit] : [])]);
  expect(p.code).toBe(0);
  expect(changes(JSON.parse(p.stdout) as Report)).toEqual([]);
}

/** Starts `kvmforge apply` in the hub; kill() is kill -9 of it (its whole process group). */
function startApply(file: string) {
  const child = spawn(
    'ip',
    ['netns', 'exec', lab.hub, process.execPath, join(PROJECT, 'bin/kvmforge.js'), 'apply', '-i', file],
    {
      cwd: lab.dir,
      env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' },
      detached: true,
      stdio: 'ignore',
    },
  );
  const done = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { done, kill: () => process.kill(-child.pid!, 'SIGKILL') };
}

/** Commands the newest run's journal has recorded for a host so far. */
function journaled(host: string): number {
  const last = runs().at(-1);
  const log = last ? join(lab.dir, '.kvmforge', 'runs', last, `${host}.log`) : '';
  return log && existsSync(log) ? (readFileSync(log, 'utf8').match(/: exit \d+ in \d+ ms/g) ?? []).length : 0;
}

beforeAll(() => lab.up(), 300_000);
afterAll(() => lab.down());

describe('kvmforge killed (kill -9) in the middle of an apply', () => {
  it('leaves every file whole (old version, new version or absent); the journal shows where it stopped; a re-run ' +
    'converges', async () => {
    const hosts = ['h1', 'h2', 'h3'];
    let file = '';
    const stoppedAt: number[] = [];
    // three rounds, each killed at a later point, each rewriting every file with a new version
    for (const [version, after] of [
      [1, 5],
      [2, 15],
      [3, 30],
    ]) {
      file = inv(`kill-${version}.yaml`, Object.fromEntries(hosts.map((h) => [h, filesVars(h, version)])));
      const before = runs().length;
      const run = startApply(file);
      const deadline = Date.now() + 60_000;
      while (journaled('h1') < after && Date.now() < deadline) await sleep(20);
      run.kill();
      await run.done;
      stoppedAt.push(journaled('h1'));
      // the killed run's journal is there, without a final report: it shows how far it got
      expect(runs().length).toBe(before + 1);
      const dir = join(lab.dir, '.kvmforge', 'runs', runs().at(-1)!);
      expect(existsSync(join(dir, 'report.json'))).toBe(false);
      expect(readFileSync(join(dir, 'h1.log'), 'utf8')).toMatch(/create \/etc\/kvmforge-faults\/f\d+\.conf: exit 0/);
      // independent check of every file on every host: never half-written
      let whole = 0;
      let partialRun = false;
      for (const h of hosts) {
        let present = 0;
        for (let i = 0; i < N; i++) {
          const p = lab.hostPath(h, `${DIR}/f${i}.conf`);
          if (!existsSync(p)) continue;
          const text = readFileSync(p, 'utf8');
          expect([content(h, i, version), content(h, i, version - 1)]).toContain(text);
          if (text === content(h, i, version)) present++;
          whole++;
        }
        if (present > 0 && present < N) partialRun = true;
      }
      expect(whole).toBeGreaterThan(0);
      // the kill did land in the middle of the run on at least one host
      expect(partialRun).toBe(true);
    }
    expect(stoppedAt[0]).toBeLessThan(N);
    // a plain re-run converges, and then there is nothing left to do
    const r = await lab.cli(['apply', '-i', file, '--json']);
    expect(r.code).toBe(0);
    for (const h of hosts)
      for (let i = 0; i < N; i++)
        expect(readFileSync(lab.hostPath(h, `${DIR}/f${i}.conf`), 'utf8')).toBe(content(h, i, 3));
    await planIsEmpty(file);
  }, 300_000);
});

describe('Ctrl-C in the middle of an apply', () => {
  it('once: the running changes finish, no new one starts, the report and journal are written, exit 130; no file ' +
    'is half-written, and a re-run converges', async () => {
    const hosts = ['h1', 'h2'];
    const started = runs().length;
    const file = inv('ctrl-c.yaml', Object.fromEntries(hosts.map((h) => [h, filesVars(h, 7, N, `${DIR}-int`)])));
    const child = spawn(
      'ip',
      ['netns', 'exec', lab.hub, process.execPath, join(PROJECT, 'bin/kvmforge.js'), 'apply', '-i', file],
      { cwd: lab.dir, env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, detached: true },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const deadline = Date.now() + 60_000;
    while ((runs().length === started || journaled('h1') < 6) && Date.now() < deadline) await sleep(20);
    process.kill(-child.pid!, 'SIGINT'); // what a terminal's Ctrl-C sends: the whole process group
    const at = journaled('h1');
    const code = await done;
    expect(`${code}\n${stderr}`).toMatch(/^130\n/);
    expect(stderr).toMatch(/interrupted: no new change is started/);
    // it stopped soon after: not every file was written
    const written = hosts.flatMap((h) =>
      Array.from({ length: N }, (_, i) => lab.hostPath(h, `${DIR}-int/f${i}.conf`)).filter(existsSync),
    );
    expect(written.length).toBeLessThan(hosts.length * N);
    expect(journaled('h1')).toBeLessThanOrEqual(at + 2);
    // every file there is whole
    for (const h of hosts)
      for (let i = 0; i < N; i++) {
        const p = lab.hostPath(h, `${DIR}-int/f${i}.conf`);
        if (existsSync(p)) expect(readFileSync(p, 'utf8')).toBe(content(h, i, 7));
      }
    // the report and the journal are there, and say so
    const dir = join(lab.dir, '.kvmforge', 'runs', runs().at(-1)!);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
    expect(report.interrupted).toBe(true);
    expect(report.hosts.map((h) => h.status)).toContain('interrupted');
    expect(stdout).toMatch(/interrupted \(Ctrl-C\)/);
    const r = await lab.cli(['apply', '-i', file, '--json']);
    expect(r.code).toBe(0);
    await planIsEmpty(file);
  }, 300_000);
});

describe('Ctrl-C twice', () => {
  it('stops at once, even in the middle of a slow change, exit 130; every file there is whole', async () => {
    // writing a file on h1 takes 20 s (base64 -d slowed down inside the host)
    lab.inHost(
      'h1',
      `printf '#!/bin/sh\\nsleep 20\\nexec /usr/bin/base64 "$@"\\n' > /usr/local/bin/base64 && chmod 755 ` +
        '/usr/local/bin/base64',
    );
    const file = inv('ctrl-c2.yaml', { h1: filesVars('h1', 8, 3, `${DIR}-int2`) });
    const started = runs().length;
    const child = spawn(
      'ip',
      ['netns', 'exec', lab.hub, process.execPath, join(PROJECT, 'bin/kvmforge.js'), 'apply', '-i', file, '-l', 'h1'],
      { cwd: lab.dir, env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, detached: true },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const done = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const deadline = Date.now() + 60_000;
    // inside the first (slow) write
    while (
      (runs().length === started || lab.inHost('h1', 'pgrep -c sleep || true').trim() === '0') &&
      Date.now() < deadline
    )
      await sleep(50);
    process.kill(-child.pid!, 'SIGINT');
    await sleep(300);
    expect(child.exitCode).toBe(null); // the first Ctrl-C waits for the running change
    const t0 = Date.now();
    process.kill(-child.pid!, 'SIGINT');
    expect(await done).toBe(130);
    // at once: far below the 20 s the running write still had (the bound leaves room for a loaded machine:
    // CI runs these files beside the lab VM)
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(stderr).toMatch(/aborted \(a second Ctrl-C\)/);
    for (let i = 0; i < 3; i++) {
      const p = lab.hostPath('h1', `${DIR}-int2/f${i}.conf`);
      if (existsSync(p)) expect(readFileSync(p, 'utf8')).toBe(content('h1', i, 8));
    }
    lab.inHost('h1', 'pkill sleep || true; rm -f /usr/local/bin/base64');
  }, 120_000);
});

describe('connections cut and commands that hang, mid-command', () => {
  it('each such host fails with a clear reason in bounded time; the others finish', async () => {
    // h2, h3, h4: writing a file takes 40 s (base64 -d slowed down inside the host)
    for (const h of ['h2', 'h3', 'h4'])
      lab.inHost(
        h,
        `printf '#!/bin/sh\\nsleep 40\\nexec /usr/bin/base64 "$@"\\n' > /usr/local/bin/base64 && chmod 755 ` +
          `/usr/local/bin/base64`,
      );
    const file = inv('cut.yaml', {
      h1: filesVars('h1', 9, 3, CUT),
      // the hung command: a 5 s per-command limit
      h2: ['kvmforge_command_timeout: 5', ...filesVars('h2', 9, 3, CUT)],
      h3: filesVars('h3', 9, 3, CUT),
      h4: filesVars('h4', 9, 3, CUT),
    });
    const t0 = Date.now();
    const p = lab.cli(['apply', '-i', file, '--json'], {}, 180_000);
    // once h3 and h4 are inside their first write: h3's sshd and its session are killed (the peer
    // closes), h4's network goes silent (nothing answers; only keepalives can tell)
    const deadline = Date.now() + 30_000;
    while (
      (lab.inHost('h3', 'pgrep -c sleep || true').trim() === '0' ||
        lab.inHost('h4', 'pgrep -c sleep || true').trim() === '0') &&
      Date.now() < deadline
    )
      await sleep(100);
    const cutAt = Date.now() - t0;
    lab.stopHost('h3');
    lab.inHub(`ip -n ${lab.host('h4').ns} link set eth0 down`);
    const r = await p;
    const total = (Date.now() - t0) / 1000;
    expect(r.code).toBe(1);
    const rep = JSON.parse(r.stdout) as Report;
    const host = (n: string) => rep.hosts.find((h) => h.host === n)!;
    expect(host('h1').status).toBe('changed');
    expect(host('h2').status).toBe('failed');
    expect(host('h2').error).toMatch(/timed out after 5s/);
    expect(host('h3').status).toBe('failed');
    expect(host('h3').error).toMatch(/connection|closed|lost|reset/i);
    expect(host('h3').error).toMatch(/no answer on a new connection/); // looked again: not a reboot by someone else
    expect(host('h4').status).toBe('failed');
    expect(host('h4').error).toMatch(/connection|closed|lost|keepalive|timed out/i);
    // bounded: timers decide it (keepalives 3 × 5 s, one new connection of 5 s), far below the 120 s the three
    // 40 s writes would take; the margin is for a loaded machine (CI runs this beside the lab VM)
    expect(total).toBeLessThan(60);
    process.stderr.write(
      `[faults] cut at ${(cutAt / 1000).toFixed(1)} s; run ended after ${total.toFixed(1)} s; h2 (hung, 5 s limit) ` +
        `failed after ${(host('h2').ms / 1000).toFixed(1)} s: ${host('h2').error}; h3 (sshd killed): ` +
        `${(host('h3').ms / 1000).toFixed(1)} s: ${host('h3').error}; h4 (network silent): ` +
        `${(host('h4').ms / 1000).toFixed(1)} s: ${host('h4').error}\n`,
    );
    // nothing half-written where it was cut
    for (const h of ['h2', 'h3', 'h4'])
      for (let i = 0; i < 3; i++) expect(existsSync(lab.hostPath(h, `${CUT}/f${i}.conf`))).toBe(false);
    // h2 back to a normal base64: a re-run converges there
    lab.inHost('h2', 'rm /usr/local/bin/base64');
    const again = await lab.cli(['apply', '-i', file, '--limit', 'h1,h2', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    await planIsEmpty(file, 'h1,h2');
  }, 300_000);
});

describe('a full filesystem during a file change', () => {
  it('keeps the old file, says which file and why; once there is room a re-run converges', async () => {
    const full = '/srv/kvmforge-full';
    lab.inHost(
      'h1',
      `mkdir -p ${full} && mount -t tmpfs -o size=256k tmpfs ${full} && printf 'old\\n' > ${full}/app.conf && (dd ` +
        `if=/dev/zero of=${full}/filler bs=4k 2>/dev/null || true)`,
    );
    const spec = ['files:', `  - path: ${full}/app.conf`, `    content: ${JSON.stringify('new\n'.repeat(20000))}`];
    const file = lab.inventory(join(lab.dir, 'full.yaml'), { h1: spec });
    const r = await lab.cli(['apply', '-i', file, '--limit', 'h1', '--json']);
    expect(r.code).toBe(1);
    const rep = JSON.parse(r.stdout) as Report;
    expect(rep.hosts[0].error).toContain(`${full}/app.conf`);
    expect(rep.hosts[0].error).toMatch(/No space left on device/);
    expect(lab.inHost('h1', `cat ${full}/app.conf`)).toBe('old\n');
    // no temp file left behind either
    expect(lab.inHost('h1', `ls -A ${full}`).trim().split('\n').sort()).toEqual(['app.conf', 'filler']);
    lab.inHost('h1', `rm ${full}/filler`);
    const again = await lab.cli(['apply', '-i', file, '--limit', 'h1', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(lab.inHost('h1', `cat ${full}/app.conf`)).toBe('new\n'.repeat(20000));
    expect(lab.inHost('h1', `cat ${full}/app.conf.kvmforge.bak`)).toContain('old');
    await planIsEmpty(file, 'h1');
  }, 120_000);
});

describe('secrets', () => {
  it('a sudo password and a secret var never reach the journal, the reports, the terminal, the remote process list ' +
    'or files left on the host', async () => {
    const token = 'tok-Sx9$(id)`q`-\'"-7731';
    const env = { KVF_SUDO_PW: SUDO_PASSWORD };
    const spec = [
      'ansible_user: ops',
      'ansible_become: true',
      'kvmforge_become_password_env: KVF_SUDO_PW',
      'kvmforge_secrets: [db_key]',
      `db_key: ${JSON.stringify(token)}`,
      'files:',
      '  - path: /etc/kvmforge-secret/app.conf',
      `    content: ${JSON.stringify(`key=${token}\nother=1\n`)}`,
      '    mode: "600"',
    ];
    const file = lab.inventory(join(lab.dir, 'secret.yaml'), { h1: spec });
    // the host's process list, sampled all through the runs
    const seen = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          for (const l of lab.inHost('h1', 'ps -eo args').split('\n')) seen.add(l);
        } catch {
          /* the host is gone: the test has failed already */
        }
        await sleep(25);
      }
    })();
    const outputs: string[] = [];
    for (const args of [
      ['plan', '-i', file, '--limit', 'h1', '--diff'],
      ['apply', '-i', file, '--limit', 'h1', '--junit', join(lab.dir, 'secret.xml')],
      ['plan', '-i', file, '--limit', 'h1', '--json'],
    ]) {
      const r = await lab.cli(args, env);
      if (r.code !== 0) sampling = false;
      expect(r.code, r.stdout + r.stderr).toBe(0);
      outputs.push(r.stdout, r.stderr);
    }
    // a changed file shows its diff: the secret in it is masked there too
    lab.inHost('h1', 'sed -i s/other=1/other=2/ /etc/kvmforge-secret/app.conf');
    const d = await lab.cli(['apply', '-i', file, '--limit', 'h1', '--diff'], env);
    expect(d.code).toBe(0);
    outputs.push(d.stdout, d.stderr);
    sampling = false;
    await sampler;
    expect(seen.size).toBeGreaterThan(10);
    outputs.push(readFileSync(join(lab.dir, 'secret.xml'), 'utf8'));
    const runsDir = join(lab.dir, '.kvmforge', 'runs');
    for (const r of runs())
      for (const f of readdirSync(join(runsDir, r))) outputs.push(readFileSync(join(runsDir, r, f), 'utf8'));
    for (const text of [...outputs, ...seen]) {
      expect(text).not.toContain(SUDO_PASSWORD);
      expect(text).not.toContain(token);
    }
    expect(outputs.join('\n')).toContain('********');
    // on the host, only the file it was asked to write (and its kept previous version) hold the secret
    // (everything the host wrote is in its overlay's upper layer, /tmp is its tmpfs)
    const upper = join(lab.host('h1').dir, 'upper');
    const holders = spawnSync('grep', ['-rlF', '--', token, upper])
      .stdout.toString()
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((p) => p.slice(upper.length))
      .sort();
    expect(holders).toContain('/etc/kvmforge-secret/app.conf');
    const grepIn = (dirs: string) =>
      lab.inHost('h1', `grep -rlF -- ${quote(token)} ${dirs} 2>/dev/null || true`).trim();
    expect(grepIn('/etc/kvmforge-secret').split('\n').sort()).toEqual([
      '/etc/kvmforge-secret/app.conf',
      '/etc/kvmforge-secret/app.conf.kvmforge.bak',
    ]);
    // the kept previous version is as private as the file
    expect(
      lab.inHost('h1', 'stat -c %a /etc/kvmforge-secret/app.conf /etc/kvmforge-secret/app.conf.kvmforge.bak'),
    ).toBe('600\n600\n');
    expect(grepIn('/tmp /root /home /var/tmp')).toBe('');
    expect(
      holders.every((p) => /\/etc\/kvmforge-secret\/app\.conf(\.kvmforge\.bak)?$/.test(p)),
      holders.join(', '),
    ).toBe(true);
    expect(lab.inHost('h1', 'cat /etc/kvmforge-secret/app.conf')).toBe(`key=${token}\nother=1\n`);
  }, 120_000);
});

describe('the dpkg lock held by another process', () => {
  it('apt waits a bounded time, then fails naming the holder; with the lock free the same install works', async () => {
    const h = 'h1';
    // a tiny real package
    const pkg = join(lab.dir, 'pkg');
    mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
    writeFileSync(
      join(pkg, 'DEBIAN/control'),
      'Package: kvmforge-locktest\nVersion: 1\nArchitecture: all\nMaintainer: kvmforge tests ' +
        '<t@example.invalid>\nDescription: lock test\n',
    );
    execFileSync('dpkg-deb', ['--build', '--root-owner-group', pkg, join(lab.dir, 'locktest.deb')], {
      stdio: 'ignore',
    });
    lab.inHost(
      h,
      `echo ${readFileSync(join(lab.dir, 'locktest.deb')).toString('base64')} | base64 -d > /var/tmp/locktest.deb`,
    );
    lab.inHost(
      h,
      `nohup python3 -c 'import fcntl, time; f = open("/var/lib/dpkg/lock-frontend", "w"); fcntl.lockf(f, ` +
        `fcntl.LOCK_EX); time.sleep(300)' >/dev/null 2>&1 &`,
    );
    const holder = lab.inHost(h, 'sleep 1; pgrep -x python3').trim();
    expect(holder).toMatch(/^\d+$/);
    const inv = lab.inventory(join(lab.dir, 'lock.yaml'));
    const script = `cd /var/tmp\n${pkgInstall('apt', './locktest.deb', 3)}`;
    const drive = async () => {
      const r = await lab.node('test/integration/transport-driver.ts', [inv, h, 'exec', script, '60000', 'sudo']);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as {
        ok: boolean;
        ms: number;
        out: { code: number; stdout: string; stderr: string };
      };
    };
    const held = await drive();
    expect(held.ok).toBe(true);
    expect(held.out.code).not.toBe(0);
    expect(held.out.stderr.trim().split('\n').pop()).toBe(
      `kvmforge: gave up after 3s (kvmforge_lock_timeout): Could not get lock /var/lib/dpkg/lock-frontend. It is ` +
        `held by process ${holder} (python3)`,
    );
    // bounded: the 3 s lock timeout, not forever
    expect(held.ms).toBeGreaterThan(3000);
    expect(held.ms).toBeLessThan(30_000);
    expect(lab.inHost(h, "dpkg-query -W -f '${Status}' kvmforge-locktest 2>/dev/null || echo absent")).toBe('absent\n');
    process.stderr.write(
      `[faults] dpkg lock held: apt gave up after ${(held.ms / 1000).toFixed(1)} s (lock timeout 3 s): ` +
        `${held.out.stderr.trim().split('\n').pop()}\n`,
    );
    lab.inHost(h, `kill ${holder}`);
    const free = await drive();
    expect(free.out.code, free.out.stdout + free.out.stderr).toBe(0);
    expect(lab.inHost(h, "dpkg-query -W -f '${Status}' kvmforge-locktest")).toBe('install ok installed');
  }, 120_000);
});
