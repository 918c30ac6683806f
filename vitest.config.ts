import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The long end-to-end files first (slowest first), so the short ones fill in beside them. */
const LONG = ['remote-sources.test.ts', 'history.test.ts', 'replicate.test.ts', 'stage.test.ts', 'cryptomator.test.ts', 'remote.test.ts', 'multi-target.test.ts', 'faults.test.ts', 'conformance.test.ts', 'sync.test.ts', 'bad-input.test.ts', 'image.test.ts', 'groovy.test.ts', 'export.test.ts'];
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONG.findIndex((name) => f.moduleId.endsWith(`/${name}`));
      return i < 0 ? LONG.length : i;
    };
    return [...sorted].sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default leaves a core idle on a 2-core machine; the e2e files mostly wait on
    // child processes and servers, so two at once use the machine well
    maxWorkers: 2,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
    setupFiles: ['./test/helpers/cleanup.ts'],
    sequence: { sequencer: LongestFirst },
  },
});
