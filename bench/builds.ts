// bench/builds: build once, install many. One run measures, per component (qemu, libvirt; kernel with
// --kernel, which adds a trial boot):
//   build  — the first host's cost: `kvmforge build` on the build host (localhost), from an empty cache;
//   install — a second host's cost: `kvmforge apply` of that step on a fresh lab VM, from the artifact;
//   no-op  — `kvmforge apply` again on the converged VM.
// Ratios: install / build (target ≤ 5%), no-op per host (target ≤ 3 s).
// usage: node --import tsx bench/builds.ts [--kernel] [--keep-cache]   (root; needs kvmforge install-deps tests)
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { BUILDS, BUILD_DIR, BUILD_ENV, buildInventory, only, type Component } from '../test/harness/builds.ts';
import { listArtifacts } from '../src/artifacts/artifacts.ts';
import { kvmforge, LAB_INVENTORY, labState } from '../test/harness/lab.ts';
import { readFileSync } from 'node:fs';

const components: Component[] = process.argv.includes('--kernel') ? ['kernel', 'qemu', 'libvirt'] : ['qemu', 'libvirt'];
// --keep-cache: reuse the lab tests' artifacts; the build time is then the one recorded when they were built
const keep = process.argv.includes('--keep-cache');
const cache = keep ? BUILD_ENV.KVMFORGE_CACHE : join(BUILDS, 'bench-cache');
const env = { KVMFORGE_CACHE: cache };
if (!keep) {
  rmSync(cache, { recursive: true, force: true });
  rmSync(join(BUILD_DIR, 'artifacts'), { recursive: true, force: true });
}

const secs = (ms: number) => (ms / 1000).toFixed(1);
async function timed(args: string[]) {
  const t0 = performance.now();
  const r = await kvmforge([...args, '--json', '--journal', join(BUILDS, 'bench-journal')], env, 4 * 3600_000);
  const ms = performance.now() - t0;
  if (r.code !== 0)
    throw new Error(`kvmforge ${args.join(' ')} exited ${r.code}: ${r.stdout.slice(-2000)} ${r.stderr.slice(-2000)}`);
  return {
    ms,
    report: JSON.parse(r.stdout) as {
      hosts: { host: string; ms: number; steps: { step: string; ms: number; changes: unknown[] }[] }[];
    },
  };
}

const up = await kvmforge(['lab', 'up', '--hosts', '1', '--memory', '2048'], {}, 1_200_000);
if (up.code !== 0) throw new Error(up.stderr);
await kvmforge(['lab', 'reset', 'lab1']);
const lab = readFileSync(LAB_INVENTORY, 'utf8');
const vm = labState().vms[0];
const hostLines = (cs: Component[]) => [
  '    lab1:',
  '      ansible_host: 127.0.0.1',
  `      ansible_port: ${vm.port}`,
  '      ansible_user: kvmforge',
  '      ansible_become: true',
  `      ansible_ssh_private_key_file: ${/ansible_ssh_private_key_file: (\S+)/.exec(lab)![1]}`,
  `      kvmforge_known_hosts_file: ${join(LAB_INVENTORY, '..', 'lab-known_hosts')}`,
  ...only(cs).map((l) => `      ${l}`),
];

const rows: string[][] = [
  ['component', 'build (1st host)', 'install (2nd host)', 'install/build', 'no-op apply', 'target'],
];
for (const c of components) {
  const inv = buildInventory(`bench-${c}.yaml`, hostLines([c]));
  const b = await timed(['build', ...inv, '--limit', 'localhost', '--steps', c]);
  const i = await timed(['apply', ...inv, '--limit', 'lab1', '--steps', c]);
  const n = await timed(['apply', ...inv, '--limit', 'lab1', '--steps', c]);
  if (n.report.hosts[0].steps.some((s) => s.changes.length)) throw new Error(`${c}: the second apply was not a no-op`);
  const built = b.report.hosts[0].steps.find((s) => s.step === c)!;
  const recorded = listArtifacts(cache).find((a) => a.component === c)?.buildSeconds;
  const build = keep && recorded ? recorded * 1000 : built.ms;
  const install = i.report.hosts[0].steps.find((s) => s.step === c)!.ms;
  rows.push([
    c,
    `${secs(build)} s`,
    `${secs(install)} s`,
    `${((install / build) * 100).toFixed(1)}%`,
    `${secs(n.ms)} s (host ${secs(n.report.hosts[0].ms)} s)`,
    install / build <= 0.05 && n.ms <= 3000 ? 'met' : 'missed',
  ]);
}
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log(rows.map((r) => r.map((x, i) => x.padEnd(w[i])).join('  ')).join('\n'));
