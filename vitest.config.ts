import { defineConfig } from 'vitest/config';
import { BUILDS_LAB_DIR } from './test/harness/builds.ts';
import LastBuilds from './test/harness/sequencer.ts';

// every worker reports an event loop held long enough to risk vitest's 60 s answer time (test/harness/loop-watch.ts)
const LOOP_WATCH = 'test/harness/loop-watch-setup.ts';

export default defineConfig({
  test: {
    reporters: ['default'],
    // the sequencer is a root option (vitest ignores it inside a project)
    sequence: { sequencer: LastBuilds },
    projects: [
      {
        test: {
          name: 'unit',
          setupFiles: [LOOP_WATCH],
          include: ['test/unit/**/*.test.ts'],
          // not the default 5 s: in `npm test` the unit files share 2 cores with the source builds and three lab VMs
          // (a CPU-bound unit test took over 5 s in CI)
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          setupFiles: [LOOP_WATCH],
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: 'faults',
          setupFiles: [LOOP_WATCH],
          include: ['test/faults/**/*.test.ts'],
          exclude: ['test/faults/**/*.lab.test.ts'], // those need the lab VM: the lab project runs them
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'lab',
          setupFiles: [LOOP_WATCH],
          include: ['test/lab/**/*.test.ts', 'test/faults/**/*.lab.test.ts'],
          exclude: ['test/lab/builds.test.ts'], // the builds project's
          globalSetup: ['test/harness/lab-global.ts'],
          // a pool of its own: vitest runs each pool's files beside the other pools' (on 2 cores the forks pool
          // has one worker, so the other projects' files would otherwise wait behind the lab's hour)
          pool: 'threads',
          fileParallelism: false,
          testTimeout: 1_200_000,
          hookTimeout: 1_200_000,
        },
      },
      {
        test: {
          // the source builds (~30 min here, started by its setup) and their installs on VMs of a lab of its own.
          // `npm test` runs this project in a vitest process of its own (test/vitest-all.sh), so it waits for the
          // builds and then runs its VMs beside the lab project's files instead of after them. In one process it
          // would share the fork pool's single worker: the sequencer puts it last
          name: 'builds',
          setupFiles: [LOOP_WATCH],
          include: ['test/lab/builds.test.ts'],
          globalSetup: ['test/harness/builds-global.ts'],
          env: { KVMFORGE_TEST_LAB_DIR: BUILDS_LAB_DIR },
          testTimeout: 1_200_000,
          hookTimeout: 1_200_000,
        },
      },
    ],
  },
});
