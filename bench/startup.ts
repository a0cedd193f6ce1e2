// bench/startup: how much CPU kvmforge's own start costs, against `node -e 0` measured in the same run, for
// the compiled package (dist/, what users run) and the TypeScript sources through tsx (development):
// `--help`, `steps`, and `plan` of one local host with no step to run (inventory, runner, facts loaded).
// usage: node --import tsx bench/startup.ts [runs]   (npm run build first)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RUNS = Number(process.argv[2] ?? 15);
const bin = join(import.meta.dirname, '..', 'bin', 'kvmforge.js');
if (!existsSync(join(import.meta.dirname, '..', 'dist'))) throw new Error('no dist/: npm run build first');
const dir = mkdtempSync(join(tmpdir(), 'kvmforge-startup-'));
writeFileSync(join(dir, 'inv.yaml'), 'all:\n  hosts:\n    here:\n      ansible_connection: local\n');

/** user+sys CPU seconds of one run, from the kernel's accounting (GNU time). */
function cpu(args: string[], env: Record<string, string> = {}): number {
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', ...args], {
    cwd: dir,
    env: { ...process.env, ...env, NO_COLOR: '1' },
    encoding: 'utf8',
  });
  const [u, s] = r.stderr.trim().split('\n').pop()!.split(' ').map(Number);
  return u + s;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const commands: [string, string[]][] = [
  ['--help', ['--help']],
  ['steps', ['steps']],
  ['plan (local host, no step)', ['plan', '-i', 'inv.yaml', '--steps', 'files', '--json', '--journal', join(dir, 'j')]],
];
execFileSync(process.execPath, [bin, '--help']); // warm the file cache
const rows: string[] = [];
for (const [name, args] of commands) {
  const floor: number[] = [];
  const compiled: number[] = [];
  const source: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    floor.push(cpu([process.execPath, '-e', '0']));
    compiled.push(cpu([process.execPath, bin, ...args]));
    source.push(cpu([process.execPath, bin, ...args], { KVMFORGE_SOURCE: '1' }));
  }
  const f = median(floor);
  rows.push(
    `${name.padEnd(28)} node -e 0 ${f.toFixed(3)} s | compiled ${median(compiled).toFixed(3)} s ` +
      `(${(median(compiled) / f).toFixed(2)}×) | tsx ${median(source).toFixed(3)} s ` +
      `(${(median(source) / f).toFixed(2)}×)`,
  );
}
process.stdout.write(`CPU per run, median of ${RUNS}:\n${rows.join('\n')}\n`);
