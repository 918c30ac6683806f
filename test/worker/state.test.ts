import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileRow } from '../../src/worker/app-db.js';
import { BACKOFF_MAX_MS, GAP_GRACE_MS, WorkerState } from '../../src/worker/state.js';
import { tempDir } from '../helpers/cli.js';

const row = (id: number): FileRow => ({ id, name: 'f', path: `/f${id}`, storage: 's3', version: 1, hash: 'a'.repeat(64), url: undefined, createdAt: 1000 + id });

describe('the worker\'s state', () => {
  it('moves the cursor past what it read, and watches Ids skipped (committed late in PostgreSQL) for a while', async () => {
    const dir = await tempDir('cerberus-state-');
    const s = WorkerState.open(dir);
    try {
      s.ingestFiles([row(1), row(2), row(5)], 0);
      expect(s.cursor('files')).toBe(5);
      expect(s.gaps('files').map((g) => g.id)).toEqual([3, 4]);
      // 4 turns up; 3 was rolled back and never does
      s.ingestLateFiles([row(4)]);
      expect(s.gaps('files').map((g) => g.id)).toEqual([3]);
      expect(s.due(0, 0, 10).map((r) => r.id)).toEqual([1, 2, 4, 5]);
      s.forgetOldGaps(GAP_GRACE_MS - 1);
      expect(s.gaps('files')).toHaveLength(1);
      s.forgetOldGaps(GAP_GRACE_MS + 1);
      expect(s.gaps('files')).toEqual([]);
      // the same rows again change nothing
      s.ingestFiles([row(5)], 0);
      expect(s.due(0, 0, 10)).toHaveLength(4);
    } finally {
      s.close();
    }
    // and it is all still there after a restart
    const again = WorkerState.open(dir);
    expect(again.cursor('files')).toBe(5);
    again.close();
    expect(path.basename(again.file)).toBe('worker.sqlite');
  });

  it('waits after each failure twice as long as before, up to six hours', async () => {
    const s = WorkerState.open(await tempDir('cerberus-state-'));
    try {
      s.ingestFiles([row(1)], 0);
      const waits = Array.from({ length: 12 }, () => s.recordFailure(1, 'boom', 0));
      expect(waits.slice(0, 4)).toEqual([60_000, 120_000, 240_000, 480_000]);
      expect(waits.at(-1)).toBe(BACKOFF_MAX_MS);
      expect(s.due(BACKOFF_MAX_MS - 1, 0, 10)).toEqual([]);
      expect(s.due(BACKOFF_MAX_MS, 0, 10)).toEqual([expect.objectContaining({ id: 1, attempts: 12, error: 'boom' })]);
      expect(s.open()).toEqual({ rows: 1, oldest: 1001, failing: 1 });
    } finally {
      s.close();
    }
  });

  it('gives a folder of copies to the first file that takes it', async () => {
    const s = WorkerState.open(await tempDir('cerberus-state-'));
    try {
      expect(s.claimStem('b/a/x', 's3', '/a/x.png')).toEqual({ storage: 's3', path: '/a/x.png' });
      expect(s.claimStem('b/a/x', 's3', '/a/x.jpg')).toEqual({ storage: 's3', path: '/a/x.png' });
      s.releaseStem('b/a/x', 's3', '/a/x.png');
      expect(s.claimStem('b/a/x', 's3', '/a/x.jpg')).toEqual({ storage: 's3', path: '/a/x.jpg' });
    } finally {
      s.close();
    }
  });
});
