import { describe, expect, it } from 'vitest';
import { checkGuards, type GuardInput, type GuardPolicy } from '../../src/engine/guards.js';

const POLICY: GuardPolicy = { maxShrink: 0.3, maxChanged: 0.5, minFiles: 1 };

const input = (over: Partial<GuardInput>): GuardInput => ({
  rootsMissing: [],
  current: { files: 1000, bytes: 1_000_000 },
  previous: { files: 1000, bytes: 1_000_000 },
  changedFiles: 0,
  ...over,
});

describe('checkGuards', () => {
  it('passes a normal run', () => {
    expect(checkGuards(input({ changedFiles: 10 }), POLICY)).toEqual([]);
  });

  it('passes a first run, with no previous state', () => {
    expect(checkGuards(input({ previous: undefined, changedFiles: 0 }), POLICY)).toEqual([]);
  });

  it('trips on a missing root, naming each', () => {
    const r = checkGuards(input({ rootsMissing: ['/mnt/a', '/mnt/b'], current: { files: 0, bytes: 0 } }), POLICY);
    expect(r.filter((x) => /source root \/mnt\/a is missing/.test(x))).toHaveLength(1);
    expect(r.filter((x) => /source root \/mnt\/b is missing/.test(x))).toHaveLength(1);
    // a missing root is not also reported as "too few files"
    expect(r.some((x) => /minFiles/.test(x))).toBe(false);
  });

  it('trips on an empty source through minFiles', () => {
    const r = checkGuards(input({ previous: undefined, current: { files: 0, bytes: 0 } }), POLICY);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatch(/0 files .*minFiles = 1/);
    const r2 = checkGuards(input({ previous: undefined, current: { files: 9, bytes: 100 } }), { ...POLICY, minFiles: 10 });
    expect(r2).toHaveLength(1);
    expect(r2[0]).toMatch(/9 files/);
  });

  it('does not trip at exactly minFiles', () => {
    expect(checkGuards(input({ previous: undefined, current: { files: 10, bytes: 100 } }), { ...POLICY, minFiles: 10 })).toEqual([]);
    expect(checkGuards(input({ previous: undefined, current: { files: 0, bytes: 0 } }), { ...POLICY, minFiles: 0 })).toEqual([]);
  });

  it('trips when the file count falls by more than maxShrink', () => {
    const r = checkGuards(input({ current: { files: 699, bytes: 1_000_000 } }), POLICY);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatch(/file count fell by 30 % \(1000 → 699/);
  });

  it('trips when the total size falls by more than maxShrink', () => {
    const r = checkGuards(input({ current: { files: 1000, bytes: 699_999 } }), POLICY);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatch(/total size fell/);
  });

  it('trips when more than maxChanged of the files changed', () => {
    const r = checkGuards(input({ changedFiles: 501 }), POLICY);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatch(/50 % of the files changed .*501 of 1000/);
  });

  it('reports every reason at once', () => {
    const r = checkGuards(input({ current: { files: 100, bytes: 100 }, changedFiles: 900 }), POLICY);
    expect(r).toHaveLength(3);
  });

  it('does not trip exactly at the thresholds', () => {
    expect(checkGuards(input({ current: { files: 700, bytes: 700_000 }, changedFiles: 500 }), POLICY)).toEqual([]);
    // shares that are not exact in binary floating point
    const p: GuardPolicy = { maxShrink: 0.1, maxChanged: 0.7, minFiles: 1 };
    for (const prev of [10, 30, 70, 1000, 12340]) {
      const atShrink = (prev / 10) * 9;
      const atThreshold = input({ previous: { files: prev, bytes: prev }, current: { files: atShrink, bytes: atShrink } });
      expect(checkGuards(atThreshold, p), String(prev)).toEqual([]);
      const below = input({ previous: { files: prev, bytes: prev }, current: { files: atShrink - 1, bytes: atShrink - 1 } });
      expect(checkGuards(below, p), String(prev)).toHaveLength(2);
    }
    expect(checkGuards(input({ previous: { files: 10, bytes: 10 }, current: { files: 10, bytes: 10 }, changedFiles: 7 }), p)).toEqual([]);
    expect(checkGuards(input({ previous: { files: 10, bytes: 10 }, current: { files: 10, bytes: 10 }, changedFiles: 8 }), p)).toHaveLength(1);
  });

  it('does not trip on growth, or on a previous state with no files or bytes', () => {
    expect(checkGuards(input({ current: { files: 5000, bytes: 9_000_000 } }), POLICY)).toEqual([]);
    expect(checkGuards(input({ previous: { files: 0, bytes: 0 }, current: { files: 3, bytes: 10 }, changedFiles: 0 }), POLICY)).toEqual([]);
    expect(checkGuards(input({ previous: { files: 5, bytes: 0 }, current: { files: 5, bytes: 0 } }), POLICY)).toEqual([]);
  });
});
