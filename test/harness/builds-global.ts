// vitest globalSetup of the builds project: the source builds start at once, in the background; the builds test
// waits for them. Its lab (BUILDS_LAB_DIR) is its own: always taken down here, whatever the test left.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT } from '../../src/lab/paths.ts';
import { BUILDS_LAB_DIR, startBackgroundBuild, stopBackgroundBuild } from './builds.ts';
import { labEnvOf } from './lab.ts';
import { runAsync } from './nshosts.ts';
import { watchLoop } from './loop-watch.ts';

export function setup() {
  watchLoop('vitest main thread (builds)');
  mkdirSync(BUILDS_LAB_DIR, { recursive: true });
  startBackgroundBuild();
}

export async function teardown() {
  stopBackgroundBuild();
  const r = await runAsync(process.execPath, [join(PROJECT, 'bin/kvmforge.js'), 'lab', 'down'], {
    cwd: BUILDS_LAB_DIR,
    env: { ...process.env, ...labEnvOf(BUILDS_LAB_DIR) },
    timeoutMs: 300_000,
  });
  process.stderr.write(r.stderr);
}
