// setupFiles of every project: the loop watch (loop-watch.ts) in the worker, naming the test that was running.
import { isMainThread } from 'node:worker_threads';
import { expect } from 'vitest';
import { watchLoop } from './loop-watch.ts';

watchLoop(isMainThread ? 'vitest worker process' : 'vitest worker thread', () => {
  try {
    return expect.getState().currentTestName;
  } catch {
    return undefined;
  }
});
