// vitest globalSetup of the lab project.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { alive } from '../../src/lab/vm.ts';
import { kvmforge, LAB_DIR, LAB_ENV } from './lab.ts';
import { watchLoop } from './loop-watch.ts';

export async function setup() {
  watchLoop('vitest main thread');
  mkdirSync(LAB_DIR, { recursive: true });
  const r = await kvmforge(['lab', 'up', '--hosts', '1', '--memory', '2048'], {}, 1_200_000);
  process.stderr.write(r.stderr);
  if (r.code !== 0) throw new Error(`lab up failed (${r.code}): ${r.stderr}`);
}

/** Tears the lab down the way a user after a killed run would: state file gone, only pid files left. */
export async function teardown() {
  const dir = LAB_ENV.KVMFORGE_LAB;
  const pids = existsSync(join(dir, 'state.json'))
    ? (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).vms as { pid: number }[]).map((v) => v.pid)
    : [];
  rmSync(join(dir, 'state.json'), { force: true });
  const r = await kvmforge(['lab', 'down']);
  process.stderr.write(r.stderr);
  const left = pids.filter((p) => alive(p));
  if (left.length) throw new Error(`lab down left QEMU running: ${left.join(', ')}`);
}
