// temporary: profile `kvmforge plan` at N namespace hosts (not committed)
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT } from './src/core/paths.ts';
import { NsLab } from './test/harness/nshosts.ts';
const n = Number(process.argv[2] ?? 100);
const extra = process.argv.slice(3);
const lab = new NsLab(n).up();
try {
  const files = ['files:', '  - path: /etc/kvmforge-bench-a.conf', '    content: "a\\n"', '  - path: /etc/kvmforge-bench-b.conf', '    content: "b\\n"'];
  const inv = lab.inventory(join(lab.dir, 'inv.yaml'), {}, files);
  const run = (pre: string[], ...args: string[]) => {
    const t0 = performance.now();
    execFileSync('ip', ['netns', 'exec', lab.hub, '/usr/bin/time', '-f', '%U %S %M', ...pre, process.execPath, ...extra, join(PROJECT, 'bin/kvmforge.js'), ...args], { cwd: lab.dir, env: { ...process.env, NO_COLOR: '1', SSH_AUTH_SOCK: '' }, stdio: ['ignore', 'ignore', 'inherit'] });
    process.stderr.write(`${args[0]}: ${(performance.now() - t0).toFixed(0)} ms\n`);
  };
  run([], 'apply', '-i', inv, '--forks', String(n), '--steps', 'files');
  for (let i = 0; i < 3; i++) run([], 'plan', '-i', inv, '--forks', String(n), '--steps', 'files');
} finally {
  lab.down();
}
