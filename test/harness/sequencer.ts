// The test file order: as vitest would, except builds.test.ts last. `npm test` runs the builds project in a
// vitest process of its own; in one process it shares the fork pool's single worker with the unit, integration
// and faults files, and waits ~30 min for the source builds its project's setup started in the background.
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export default class LastBuilds extends BaseSequencer {
  async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    return [
      ...sorted.filter((f) => !f.moduleId.endsWith('builds.test.ts')),
      ...sorted.filter((f) => f.moduleId.endsWith('builds.test.ts')),
    ];
  }
}
