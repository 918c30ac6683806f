import { describe, expect, it } from 'vitest';
import { supersededDue, supersededLongAgo } from '../../src/worker/retention.js';
import type { StoredVersion } from '../../src/worker/state.js';

const H = 3600_000;
const DAY = 24 * H;
/** versions newest first, each stored at the given hour */
const versions = (...storedAtHours: number[]): StoredVersion[] =>
  storedAtHours.map((h, i) => ({ key: `b/f/v${storedAtHours.length - i}.gzip`, storage: 's3', path: '/f', version: storedAtHours.length - i, rowId: i, hash: '', createdAt: 0, storedAt: h * H, size: 1 }));
const due = (vs: StoredVersion[], now: number, keepVersions = 1) => supersededDue(vs, now, { deleteAfterMs: 7 * DAY, keepVersions }).map((v) => v.version);

describe('superseded versions', () => {
  it('go deleteAfter after a newer version was stored; the newest never', () => {
    // v3 stored at 48h, v2 at 24h, v1 at 0h
    const vs = versions(48, 24, 0);
    expect(due(vs, 7 * DAY + 24 * H - 1)).toEqual([]);
    expect(due(vs, 7 * DAY + 24 * H)).toEqual([1]);
    expect(due(vs, 7 * DAY + 48 * H)).toEqual([2, 1]);
    expect(due(vs, 1000 * DAY)).toEqual([2, 1]);
    expect(due(versions(0), 1000 * DAY)).toEqual([]);
  });

  it('keep the newest keepVersions however old', () => {
    expect(due(versions(48, 24, 0), 1000 * DAY, 2)).toEqual([1]);
    expect(due(versions(48, 24, 0), 1000 * DAY, 5)).toEqual([]);
  });

  it('count from their own storing when a newer version was stored before them', () => {
    // v2 came first (stored at 0h), v1 after a retry (stored at 100h)
    expect(due(versions(0, 100), 7 * DAY + 99 * H)).toEqual([]);
    expect(due(versions(0, 100), 7 * DAY + 100 * H)).toEqual([1]);
  });
});

describe('a version that failed and was never stored', () => {
  const settings = (keepVersions = 1) => ({ deleteAfterMs: 7 * DAY, keepVersions });
  it('is given up once a newer version was stored deleteAfter ago: its copy would go at once', () => {
    // v3 stored at 48h, v2 at 24h: the first newer one to be stored counts
    expect(supersededLongAgo(versions(48, 24), 7 * DAY + 24 * H - 1, settings())).toBeUndefined();
    expect(supersededLongAgo(versions(48, 24), 7 * DAY + 24 * H, settings())?.version).toBe(1);
  });
  it('is tried on while nothing newer is stored, or while keepVersions would keep it', () => {
    expect(supersededLongAgo([], 1000 * DAY, settings())).toBeUndefined();
    expect(supersededLongAgo(versions(48, 24), 1000 * DAY, settings(3))).toBeUndefined();
    expect(supersededLongAgo(versions(48, 24), 1000 * DAY, settings(2))).toBeDefined();
  });
});
