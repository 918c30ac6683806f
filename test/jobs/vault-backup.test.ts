import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TargetConfig } from '../../src/config/index.js';
import { runBackup } from '../../src/jobs/backup.js';
import { runInit } from '../../src/jobs/init.js';
import { runRestore } from '../../src/jobs/restore.js';
import { MemoryReporter } from '../../src/report/log.js';
import { LocalBackend, type Backend } from '../../src/storage/index.js';
import { diffTrees, snapshotTree, tempDir } from '../helpers/cli.js';
import { vaultJob } from '../helpers/jobs.js';

/**
 * The Cryptomator backup job against backends that cannot copy, or whose copy breaks: the
 * vault is uploaded whole, the log says why, and every restore point still restores.
 */

let dir: string;
beforeEach(async () => {
  dir = await tempDir('cerberus-vault-job-');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const jobFor = () => vaultJob(dir);

/** A local backend without server-side copy, as some WebDAV servers are. */
function withoutCopy(b: LocalBackend): Backend {
  return {
    description: b.description,
    capabilities: { ...b.capabilities, serverSideCopy: false, hardLink: false },
    put: b.put.bind(b),
    get: b.get.bind(b),
    stat: b.stat.bind(b),
    list: b.list.bind(b),
    remove: b.remove.bind(b),
    mkdir: b.mkdir.bind(b),
    move: b.move.bind(b),
  };
}

/** A local backend whose folder copy fails halfway, leaving a partial copy behind. */
function brokenCopy(b: LocalBackend): Backend {
  return {
    ...withoutCopy(b),
    copyTree: async (from: string, to: string) => {
      await b.mkdir(to);
      await b.put(`${to}/junk`, () => (async function* () { yield Buffer.from('partial'); })() as never, 7);
      throw Object.assign(new Error('connection reset in the middle of the copy'), { code: 'ECONNRESET' });
    },
  };
}

async function twoDays(open: (t: TargetConfig) => Backend) {
  const job = jobFor();
  const reporter = new MemoryReporter();
  const stateDir = path.join(dir, 'state');
  await fsp.mkdir(path.join(dir, 'src/sub'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'src/a.txt'), 'a');
  await fsp.writeFile(path.join(dir, 'src/sub/b.txt'), 'b');
  await runInit(job, { now: new Date('2026-11-01T00:00:00Z'), reporter, open });
  const common = { dryRun: false, rehash: false, stateDir, reporter, open };
  const first = await runBackup(job, { ...common, now: new Date('2026-11-01T03:00:00Z') });
  expect(first.targets[0]!.status).toBe('committed');
  const day1 = await snapshotTree(path.join(dir, 'src'));
  await fsp.writeFile(path.join(dir, 'src/c.txt'), 'c');
  await fsp.rm(path.join(dir, 'src/a.txt'));
  const second = await runBackup(job, { ...common, now: new Date('2026-11-02T03:00:00Z') });
  expect(second.targets[0]!.status, second.targets[0]!.error).toBe('committed');
  // both days restore, each as it was
  for (const [at, want] of [['2026-11-01T030000Z', day1], ['2026-11-02T030000Z', await snapshotTree(path.join(dir, 'src'))]] as const) {
    const to = path.join(dir, `restore-${at}`);
    await runRestore(job, { at, to, paths: [], overwrite: false, reporter, open });
    expect(diffTrees(want, await snapshotTree(to))).toEqual([]);
  }
  return { reporter, second };
}

describe('a Cryptomator backup', () => {
  it('uploads the whole vault where the backend cannot copy, and says so', async () => {
    const { reporter, second } = await twoDays((t) => withoutCopy(new LocalBackend((t as { path: string }).path)));
    expect(reporter.lines.join('\n')).toMatch(/cannot copy on the server, so this vault is uploaded whole/);
    expect(second.targets[0]!.stats!.storedFiles).toBe(2); // b.txt again, and c.txt
  });

  it('falls back to a whole upload when the server-side copy breaks, leaving no partial copy', async () => {
    const { reporter, second } = await twoDays((t) => brokenCopy(new LocalBackend((t as { path: string }).path)));
    expect(reporter.warnings.join('\n')).toMatch(/server-side copy of quarterly\/2026-11-01T030000Z failed .*uploading the whole vault instead/);
    expect(second.targets[0]!.stats!.storedFiles).toBe(2);
    const gen = path.join(dir, 'repo/weekly/2026-11-02T030000Z');
    expect(await fsp.stat(path.join(gen, 'd/junk')).catch(() => undefined)).toBeUndefined();
  });

  it('with hard links, uploads only what changed', async () => {
    const { reporter, second } = await twoDays((t) => new LocalBackend((t as { path: string }).path));
    expect(reporter.lines.join('\n')).toMatch(/copied quarterly\/2026-11-01T030000Z on the server/);
    expect(second.targets[0]!.stats!.storedFiles).toBe(1); // c.txt only
    // what both vaults hold at the same place is one file on disk (hard links), and the old
    // vault still has the node of a.txt, deleted in the new one
    const inodes = async (g: string) => {
      const root = path.join(dir, 'repo', g, 'd');
      const out = new Map<string, number>();
      for (const rel of await fsp.readdir(root, { recursive: true })) {
        const st = await fsp.stat(path.join(root, rel));
        if (st.isFile()) out.set(rel, st.ino);
      }
      return out;
    };
    const [old, now] = await Promise.all([inodes('quarterly/2026-11-01T030000Z'), inodes('weekly/2026-11-02T030000Z')]);
    const shared = [...now.keys()].filter((k) => old.has(k));
    expect(shared.length).toBeGreaterThanOrEqual(4); // root dirid, sub's dir.c9r and dirid, b.txt
    for (const k of shared) expect(now.get(k), k).toBe(old.get(k));
    expect([...old.keys()].filter((k) => !now.has(k))).toHaveLength(1); // a.txt's node
  });
});
