// bench/scale: one control machine against 10, 50 and 100 namespace hosts (real sshd each), all in one run:
// - the floor: one OpenSSH `ssh host true` to every host at once;
// - `kvmforge plan` of converged hosts (forks = hosts), and `kvmforge apply --serial 10%` of the same no-op;
// - Ansible at its best on the same check: ansible-playbook --check, and serial: 10% (forks = hosts,
//   pipelining, ControlPersist, no facts), copying the same two files.
// Prints wall times, ratios, the control process's CPU per host (its children's included: the `ssh -G` of each host)
// and its peak RSS, beside what the OpenSSH floor's clients and Ansible's whole run spent per host on the same
// machine (kernel accounting, user+sys).
// usage: node --import tsx bench/scale.ts [sizes…]   (root; needs ansible and the lab's Debian tree)
// BENCH_ROUNDS=N: rounds per size (3)
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT } from '../src/core/paths.ts';
import { NsLab } from '../test/harness/nshosts.ts';

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const SIZES = sizes.length ? sizes : [10, 50, 100];
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3); // medians of 3 by default
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Row {
  hosts: number;
  floor: number;
  plan: number;
  serial: number;
  ansibleCheck: number;
  ansibleSerial: number;
  cpuMsPerHost: number;
  floorCpuMsPerHost: number;
  ansibleCpuMsPerHost: number;
  rssMB: number;
}
const rows: Row[] = [];

/** Wall ms, CPU ms (user+sys) and peak RSS (KiB) of a command run in the hub namespace. */
function timed(
  lab: NsLab,
  argv: string[],
  env: Record<string, string> = {},
): { ms: number; cpuMs: number; rssKiB: number } {
  const out = join(lab.dir, 'time.txt');
  const t0 = performance.now();
  execFileSync('ip', ['netns', 'exec', lab.hub, '/usr/bin/time', '-o', out, '-f', '%U %S %M', ...argv], {
    cwd: lab.dir,
    env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const ms = performance.now() - t0;
  const [u, s, m] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { ms, cpuMs: (u + s) * 1000, rssKiB: m };
}

for (const n of SIZES) {
  const lab = await new NsLab(n).up();
  try {
    const files = [
      'files:',
      '  - path: /etc/kvmforge-bench-a.conf',
      '    content: "a\\n"',
      '  - path: /etc/kvmforge-bench-b.conf',
      '    content: "b\\n"',
    ];
    const inv = lab.inventory(join(lab.dir, 'inv.yaml'), {}, files);
    const kvmforge = (...args: string[]) => [process.execPath, join(PROJECT, 'bin/kvmforge.js'), ...args];
    timed(lab, kvmforge('apply', '-i', inv, '--forks', String(n), '--steps', 'files'));
    // Ansible: the same hosts, key and known_hosts; its best settings
    writeFileSync(
      join(lab.dir, 'hosts.ini'),
      `[all]\n${lab.hosts.map((h) => `${h.name} ansible_host=${h.address}`).join('\n')}\n[all:vars]\n` +
        `ansible_user=root\nansible_ssh_private_key_file=${lab.key}\n` +
        `ansible_ssh_common_args='-o UserKnownHostsFile=${lab.knownHosts} -o StrictHostKeyChecking=yes'\n`,
    );
    writeFileSync(
      join(lab.dir, 'ansible.cfg'),
      `[defaults]\nforks = ${n}\nhost_key_checking = True\ngathering = explicit\n[ssh_connection]\n` +
        'pipelining = True\nssh_args = -o ControlMaster=auto -o ControlPersist=60s\n',
    );
    const play = (serial: boolean) =>
      `- hosts: all\n  gather_facts: false\n${serial ? '  serial: "10%"\n' : ''}  tasks:\n` +
      '    - copy: { content: "a\\n", dest: /etc/kvmforge-bench-a.conf }\n' +
      '    - copy: { content: "b\\n", dest: /etc/kvmforge-bench-b.conf }\n';
    writeFileSync(join(lab.dir, 'check.yml'), play(false));
    writeFileSync(join(lab.dir, 'serial.yml'), play(true));
    const aenv = { ANSIBLE_CONFIG: join(lab.dir, 'ansible.cfg') };
    const ansible = (pb: string, ...extra: string[]) => ['ansible-playbook', '-i', 'hosts.ini', pb, ...extra];
    timed(lab, ansible('check.yml', '--check'), aenv); // warm: ControlPersist sockets, caches
    const sshOpts =
      `-o BatchMode=yes -o UserKnownHostsFile=${lab.knownHosts} -o StrictHostKeyChecking=yes -o ` +
      `ControlMaster=no -o ControlPath=none -i ${lab.key}`;
    const floorCmd = `${lab.hosts.map((h) => `ssh ${sshOpts} root@${h.address} true &`).join(' ')} wait`;
    const m: Record<string, number[]> = {};
    for (const k of ['floor', 'plan', 'serial', 'ac', 'as', 'cpu', 'floorCpu', 'ansibleCpu', 'rss']) m[k] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const f = timed(lab, ['sh', '-c', floorCmd]);
      m.floor.push(f.ms);
      m.floorCpu.push(f.cpuMs / n);
      const p = timed(lab, kvmforge('plan', '-i', inv, '--forks', String(n), '--steps', 'files', '--json'));
      m.plan.push(p.ms);
      m.cpu.push(p.cpuMs / n);
      m.rss.push(p.rssKiB / 1024);
      m.serial.push(
        timed(lab, kvmforge('apply', '-i', inv, '--forks', String(n), '--steps', 'files', '--serial', '10%')).ms,
      );
      const ac = timed(lab, ansible('check.yml', '--check'), aenv);
      m.ac.push(ac.ms);
      m.ansibleCpu.push(ac.cpuMs / n);
      m.as.push(timed(lab, ansible('serial.yml'), aenv).ms);
    }
    const row: Row = {
      hosts: n,
      floor: median(m.floor),
      plan: median(m.plan),
      serial: median(m.serial),
      ansibleCheck: median(m.ac),
      ansibleSerial: median(m.as),
      cpuMsPerHost: median(m.cpu),
      floorCpuMsPerHost: median(m.floorCpu),
      ansibleCpuMsPerHost: median(m.ansibleCpu),
      rssMB: Math.max(...m.rss),
    };
    rows.push(row);
    console.error(`${n} hosts: ${JSON.stringify(row)}`);
  } finally {
    lab.down();
  }
}

console.log(
  '| hosts | floor (ms) | plan (ms) | plan / floor | Ansible --check (ms) | Ansible / plan | ' +
    'apply --serial 10% (ms) | Ansible serial 10% (ms) | Ansible / kvmforge | control CPU per host (ms) | ' +
    'OpenSSH floor CPU per host (ms) | Ansible --check CPU per host (ms) | peak RSS (MB) |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.hosts} | ${r.floor.toFixed(0)} | ${r.plan.toFixed(0)} | ${(r.plan / r.floor).toFixed(2)} | ` +
      `${r.ansibleCheck.toFixed(0)} | ${(r.ansibleCheck / r.plan).toFixed(1)} | ${r.serial.toFixed(0)} | ` +
      `${r.ansibleSerial.toFixed(0)} | ${(r.ansibleSerial / r.serial).toFixed(1)} | ${r.cpuMsPerHost.toFixed(1)} | ` +
      `${r.floorCpuMsPerHost.toFixed(1)} | ${r.ansibleCpuMsPerHost.toFixed(1)} | ${r.rssMB.toFixed(0)} |`,
  );
