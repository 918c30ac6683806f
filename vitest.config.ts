import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The long files first (slowest first, as measured in a whole run), so the short ones fill in
 * beside them and both workers end together. sftp.test.ts is short here, but under the image's
 * Node (scripts/test-node-lts.sh) it is the longest unit file: ssh2's native crypto is built
 * for the machine's Node and does not load there, so it falls back to its JavaScript ciphers.
 */
const LONG = [
  'remote.test.ts',
  'cryptomator.test.ts',
  'e2e/history.test.ts',
  'remote-sources.test.ts',
  'faults.test.ts',
  'export.test.ts',
  'conformance.test.ts',
  'bad-input.test.ts',
  'groovy.test.ts',
  'image.test.ts',
  'sync.test.ts',
  'backup-restore.test.ts',
  'stage.test.ts',
  'databases.test.ts',
  'replicate.test.ts',
  'e2e/guards.test.ts',
  'e2e/hooks.test.ts',
  'sftp.test.ts',
  'seipd.test.ts',
  'seal-engine.test.ts',
  'ftps.test.ts',
  'jobs/hooks.test.ts',
];
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
