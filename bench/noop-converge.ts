// bench/noop-converge: `kvmforge plan` of converged hosts (read-only) on 5, 20 and 50 namespace
// hosts, against the floor measured in the same run: one OpenSSH `ssh host true` to every host in
// parallel. Prints wall time, per-host time, ratio to the floor and the control process's peak RSS.
// usage: node --import tsx bench/noop-converge.ts [sizes…]   (root; needs the lab's Debian tree)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NsLab } from '../test/harness/nshosts.ts';

const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const SIZES = sizes.length ? sizes : [5, 20, 50];
const ROUNDS = 3;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Row {
  hosts: number;
  floorMs: number;
  planMs: number;
  perHostMs: number;
  ratio: number;
  rssMB: number;
}
const rows: Row[] = [];

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
    const forks = String(n);
    const first = await lab.cli(['apply', '-i', inv, '--forks', forks, '--json']);
    if (first.code !== 0) throw new Error(`apply failed: ${first.stdout.slice(0, 2000)}${first.stderr}`);
    const sshOpts =
      `-o BatchMode=yes -o UserKnownHostsFile=${lab.knownHosts} -o StrictHostKeyChecking=yes -o ` +
      `ControlMaster=no -o ControlPath=none -i ${lab.key}`;
    const floorCmd = `${lab.hosts.map((h) => `ssh ${sshOpts} root@${h.address} true &`).join(' ')} wait`;
    const floor: number[] = [];
    const plan: number[] = [];
    const perHost: number[] = [];
    const rss: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      let t0 = performance.now();
      lab.inHub(floorCmd);
      floor.push(performance.now() - t0);
      const rssFile = join(lab.dir, 'rss');
      t0 = performance.now();
      const r = await lab.cli(['plan', '-i', inv, '--forks', forks, '--json'], { KVMFORGE_RSS_FILE: rssFile });
      plan.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`plan failed: ${r.stdout.slice(0, 2000)}${r.stderr}`);
      const rep = JSON.parse(r.stdout) as { hosts: { ms: number; steps: { changes: unknown[] }[] }[] };
      if (rep.hosts.some((h) => h.steps.some((s) => s.changes.length))) throw new Error('hosts were not converged');
      perHost.push(rep.hosts.reduce((a, h) => a + h.ms, 0) / rep.hosts.length);
      rss.push(Number(readFileSync(rssFile, 'utf8')) / 1024);
    }
    const row = {
      hosts: n,
      floorMs: median(floor),
      planMs: median(plan),
      perHostMs: median(perHost),
      ratio: median(plan) / median(floor),
      rssMB: Math.max(...rss),
    };
    rows.push(row);
    console.error(
      `${n} hosts: floor ${row.floorMs.toFixed(0)} ms, plan ${row.planMs.toFixed(0)} ms ` +
        `(×${row.ratio.toFixed(2)}), per host ${row.perHostMs.toFixed(0)} ms, RSS ${row.rssMB.toFixed(0)} MB`,
    );
  } finally {
    lab.down();
  }
}

console.log(
  '| hosts | floor: ssh true ×N (ms) | kvmforge plan (ms) | ratio to floor | per-host (ms) | peak RSS (MB) |',
);
console.log('|---:|---:|---:|---:|---:|---:|');
for (const r of rows)
  console.log(
    `| ${r.hosts} | ${r.floorMs.toFixed(0)} | ${r.planMs.toFixed(0)} | ${r.ratio.toFixed(2)} | ` +
      `${r.perHostMs.toFixed(0)} | ${r.rssMB.toFixed(0)} |`,
  );
const by = (n: number) => rows.find((r) => r.hosts === n);
if (by(5) && by(50)) console.log(`50 hosts / 5 hosts wall time: ${(by(50)!.planMs / by(5)!.planMs).toFixed(2)}`);
