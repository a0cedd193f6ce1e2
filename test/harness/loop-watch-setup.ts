// setupFiles of every project. vitest runs a file's synchronous tests one after the other without giving its event
// loop a turn, so their times add up to one hold (33 inventory tests that run ansible-inventory: 14 s here, under
// the other tests' load), and a worker held 60 s loses the run. Each test ends with a turn of the loop, and the loop
// watch (loop-watch.ts) names the test that held it.
import { isMainThread } from 'node:worker_threads';
import { afterEach, expect } from 'vitest';
import { watchLoop } from './loop-watch.ts';

watchLoop(isMainThread ? 'vitest worker process' : 'vitest worker thread', () => {
  try {
    return expect.getState().currentTestName;
  } catch {
    return undefined;
  }
});

// a timer, not setImmediate: the watch's interval, overdue after a hold, runs first and names this test. The real
// setTimeout, taken before any test could fake timers
const turn = globalThis.setTimeout;
afterEach(() => new Promise<void>((resolve) => turn(resolve, 0)));
