// bench/lab: base image build time, overlay + boot-to-SSH per VM, reset time, and two VMs at once.
// usage: node --import tsx bench/lab.ts [--cold]   (--cold also rebuilds the debootstrap tree)
import { rmSync, existsSync } from 'node:fs';
import { baseImagePath, ensureImage, readState } from '../src/lab/vm.ts';
import { rootfsDir } from '../src/lab/paths.ts';
import { labDown, labReset, labUp } from '../src/lab/lab.ts';
import { goldenDir } from '../src/lab/golden.ts';
import { spawnSync } from 'node:child_process';

const log = (s: string) => console.error(`  ${s}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const rows: [string, string][] = [];
const inventoryDir = '/tmp/kvmforge-bench-lab';
process.env.KVMFORGE_LAB = '/tmp/kvmforge-bench-lab/state';

labDown(log);
if (process.argv.includes('--cold') && existsSync(rootfsDir())) rmSync(rootfsDir(), { recursive: true, force: true });
rmSync(baseImagePath(), { force: true });
let t0 = Date.now();
const hadTree = existsSync(rootfsDir());
ensureImage(log);
rows.push([hadTree ? 'base image from cached tree' : 'debootstrap tree + base image', secs(Date.now() - t0)]);

const boot = async (n: number, golden = true) => {
  const msgs: string[] = [];
  const t = Date.now();
  await labUp({ hosts: n, memory: 2048, cpus: 2, inventoryDir, golden }, (s) => {
    msgs.push(s);
    log(s);
  });
  const perVm = msgs.filter((m) => /SSH up after/.test(m)).map((m) => m.replace(/ \(127.*$/, ''));
  return { total: Date.now() - t, perVm };
};

let r = await boot(1, false);
rows.push([
  '1 VM, cold boot through GRUB: overlay + boot to SSH (+ savevm)',
  `${secs(r.total)} (${r.perVm.join('; ')})`,
]);
const accel = readState()!.accel;
labDown(log);
rmSync(goldenDir(baseImagePath(), accel, 2048, 2, { devices: 'virtio' }), { recursive: true, force: true });
t0 = Date.now();
r = await boot(1);
rows.push([
  '1 VM, first time: golden state made (one cold boot) + VM resumed from it',
  `${secs(r.total)} (${r.perVm.join('; ')})`,
]);
labDown(log);
r = await boot(1);
rows.push([
  '1 VM from the golden state: lab up total (resume, clock, savevm)',
  `${secs(r.total)} (${r.perVm.join('; ')})`,
]);
const resets: number[] = [];
for (let i = 0; i < 3; i++) resets.push(await labReset('lab1', log));
rows.push(['reset (loadvm) to SSH, 3 runs', resets.map(secs).join(', ')]);
labDown(log);

r = await boot(2);
rows.push(['2 VMs at once: boot to SSH', `${secs(r.total)} (${r.perVm.join('; ')})`]);
const facts = spawnSync(process.execPath, ['bin/kvmforge.js', 'facts', '-i', `${inventoryDir}/lab.yaml`], {
  encoding: 'utf8',
});
rows.push([
  '2 VMs usable at once (kvmforge facts on both)',
  facts.status === 0
    ? `yes (${(facts.stdout.match(/Debian GNU\/Linux 12/g) ?? []).length} hosts answered)`
    : `no: ${facts.stdout}${facts.stderr}`,
]);
rows.push(['accelerator', readState()?.accelNote ?? '?']);
labDown(log);

console.log('| measure | result |\n|---|---|');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
