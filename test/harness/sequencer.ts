// The test file order: as vitest would, except the lab's builds.test.ts last — it waits for the source
// builds that the project's setup started in the background.
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
