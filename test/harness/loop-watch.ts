// A watch on the event loop of a vitest worker (setupFiles) and of vitest's main thread (a globalSetup). vitest's
// worker must get its main thread's answer to a call within 60 s: a loop held that long on either side ends the
// run with files unrun and only "[vitest-worker]: Timeout calling …" to show for it. This prints where and when a
// loop was held for more than HELD_S seconds, so a CI log says which side and which test.
import { writeSync } from 'node:fs';
import { threadId } from 'node:worker_threads';

const HELD_S = 10;
const watched = Symbol.for('kvmforge.loopWatch');

/** Starts the watch once per thread (a worker runs several files); `where` names the side in the line. */
export function watchLoop(where: string, testName: () => string | undefined = () => undefined) {
  const g = globalThis as Record<symbol, unknown>;
  if (g[watched]) return;
  g[watched] = true;
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const held = (now - last - 1000) / 1000;
    last = now;
    if (held < HELD_S) return;
    const test = testName();
    // writeSync: the line must not wait behind the loop it reports on
    writeSync(
      2,
      `[loop] ${where} (pid ${process.pid}, thread ${threadId}): event loop held ${held.toFixed(1)} s, until ` +
        `${new Date().toISOString()}${test ? `, in "${test}"` : ''}\n`,
    );
  }, 1000).unref();
}
