import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TargetConfig } from '../../src/config/index.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runInit } from '../../src/jobs/init.js';
import { MemoryReporter } from '../../src/report/log.js';
import { PhaseLog } from '../../src/report/phases.js';
import { LocalBackend, type Backend } from '../../src/storage/index.js';
import { tempDir } from '../helpers/cli.js';
import { vaultJob } from '../helpers/jobs.js';

/** After the commit, backup lists the restore point back from the target (the verify step). */

let dir: string;
beforeEach(async () => {
  dir = await tempDir('cerberus-finish-');
  await fsp.mkdir(path.join(dir, 'src'));
  await fsp.writeFile(path.join(dir, 'src/a.txt'), 'some document');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const job = () => vaultJob(dir);

/** A target that accepts every put but, once a restore point is committed, lists one of its files short. */
function forgetful(b: LocalBackend): Backend {
  return Object.assign(Object.create(b) as LocalBackend, {
    list: async (d: string) => {
      const entries = await b.list(d);
      if (!/^quarterly\/\d{4}-/.test(d)) return entries;
      return entries.map((e) => (e.name === 'info.json' ? { ...e, size: e.size - 1 } : e));
    },
  });
}

async function backup(open: (t: TargetConfig) => Backend) {
  const reporter = new MemoryReporter();
  await runInit(job(), { now: new Date('2026-11-01T00:00:00Z'), reporter, open });
  const phases = new PhaseLog();
  const result = await runBackup(job(), { now: new Date('2026-11-01T03:00:00Z'), dryRun: false, rehash: false, stateDir: path.join(dir, 'state'), reporter, open, phases });
  return { result, phases: phases.phases.map((p) => `${p.name} ${p.status}${p.message ? `: ${p.message}` : ''}`) };
}

describe('the verify step of a backup', () => {
  it('passes when the target lists every file at the size written', async () => {
    const { result, phases } = await backup((t) => new LocalBackend((t as { path: string }).path));
    expect(result.targets[0]!.status).toBe('committed');
    expect(phases).toEqual(['plan passed', 'scan+encrypt+upload passed', 'verify passed', 'prune passed']);
  });

  it('fails the target, and prunes nothing, when the target lists a file it accepted at another size', async () => {
    const { result, phases } = await backup((t) => forgetful(new LocalBackend((t as { path: string }).path)));
    expect(result.targets[0]!.status).toBe('failed');
    expect(result.targets[0]!.error).toMatch(/info\.json lists \d+ bytes, \d+ were written right after the commit/);
    expect(phases.slice(0, 2)).toEqual(['plan passed', 'scan+encrypt+upload passed']);
    expect(phases[2]).toMatch(/^verify failed: .*info\.json lists/);
    expect(phases).toHaveLength(3);
  });
});
