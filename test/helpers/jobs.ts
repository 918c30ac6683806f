import path from 'node:path';
import type { JobConfig } from '../../src/config/index.js';

/** A parsed Cryptomator job as the config loader would give it: `dir/src` to `dir/repo`, loose guards. */
export function vaultJob(dir: string): JobConfig {
  return {
    name: 'docs',
    source: { paths: [path.join(dir, 'src')], exclude: [], databases: [] },
    encryption: { kind: 'cryptomator', password: 'pw' },
    targets: [{ name: 'disk', type: 'local', path: path.join(dir, 'repo'), retries: 0, timeoutMs: 10_000, concurrency: 4, bwlimit: undefined }],
    retention: { daily: 7, weekly: 5, monthly: 12, quarterly: 8, keepWithinMs: 0 },
    guards: { maxShrink: 0.9, maxChanged: 0.9, minFiles: 0 },
    hooks: { before: [], afterSnapshot: [], after: [], onError: [] },
    timezone: 'UTC',
    volumeSize: 1 << 20,
    report: {},
  };
}
