import { describe, expect, it } from 'vitest';
import { chooseLevel, chooseParent, generationId, levelRank, LEVELS, parseGenerationId, type Level } from '../../src/engine/levels.js';
import { planRetention, type RetainedGeneration, type RetentionPolicy } from '../../src/engine/retention.js';

const DAY = 86_400_000;
const DEFAULT: RetentionPolicy = { daily: 7, weekly: 5, monthly: 12, quarterly: 8, keepWithinMs: 2 * DAY };
const NONE: RetentionPolicy = { daily: 0, weekly: 0, monthly: 0, quarterly: 0, keepWithinMs: 0 };

const g = (iso: string, level: Level, parent: string | null = null): RetainedGeneration => ({
  id: generationId(new Date(iso)),
  level,
  parent: parent === null ? null : generationId(new Date(parent)),
});
const ids = (gs: RetainedGeneration[]) => gs.map((x) => x.id);
const idOf = (iso: string) => generationId(new Date(iso));
const FAR_FUTURE = new Date('2030-01-01T00:00:00Z');

describe('planRetention', () => {
  it('keeps the newest N of each level and removes the rest', () => {
    const gens = [
      g('2026-01-01T03:00:00Z', 'quarterly'),
      g('2026-04-01T03:00:00Z', 'quarterly'),
      g('2026-07-01T03:00:00Z', 'quarterly'),
      g('2026-07-02T03:00:00Z', 'daily', '2026-07-01T03:00:00Z'),
      g('2026-07-03T03:00:00Z', 'daily', '2026-07-01T03:00:00Z'),
      g('2026-07-04T03:00:00Z', 'daily', '2026-07-01T03:00:00Z'),
    ];
    const plan = planRetention(gens, { ...NONE, quarterly: 2, daily: 2 }, FAR_FUTURE);
    expect(ids(plan.keep).sort()).toEqual(
      [idOf('2026-04-01T03:00:00Z'), idOf('2026-07-01T03:00:00Z'), idOf('2026-07-03T03:00:00Z'), idOf('2026-07-04T03:00:00Z')].sort(),
    );
    expect(ids(plan.remove)).toEqual([idOf('2026-07-02T03:00:00Z'), idOf('2026-01-01T03:00:00Z')]);
    expect(plan.reasons.get(idOf('2026-07-04T03:00:00Z'))).toContain('daily #1');
    expect(plan.reasons.get(idOf('2026-07-03T03:00:00Z'))).toContain('daily #2');
    expect(plan.reasons.has(idOf('2026-07-02T03:00:00Z'))).toBe(false);
  });

  it('keeps nothing with a zero policy, and everything is removed', () => {
    const gens = [g('2026-01-01T03:00:00Z', 'quarterly'), g('2026-01-02T03:00:00Z', 'daily', '2026-01-01T03:00:00Z')];
    const plan = planRetention(gens, NONE, FAR_FUTURE);
    expect(plan.keep).toEqual([]);
    expect(ids(plan.remove)).toEqual([gens[1]!.id, gens[0]!.id]);
  });

  it('keeps everything younger than keepWithin, and not what is older', () => {
    const now = new Date('2026-07-10T12:00:00Z');
    const gens = [
      g('2026-07-01T03:00:00Z', 'quarterly'),
      g('2026-07-08T11:59:59Z', 'daily', '2026-07-01T03:00:00Z'), // 2 d + 1 s old
      g('2026-07-08T12:00:00Z', 'daily', '2026-07-01T03:00:00Z'), // exactly 2 d old
      g('2026-07-09T03:00:00Z', 'daily', '2026-07-01T03:00:00Z'),
      g('2026-07-10T03:00:00Z', 'daily', '2026-07-01T03:00:00Z'),
    ];
    const plan = planRetention(gens, { ...NONE, keepWithinMs: 2 * DAY }, now);
    expect(ids(plan.remove)).toEqual([idOf('2026-07-08T11:59:59Z')]);
    expect(plan.reasons.get(idOf('2026-07-08T12:00:00Z'))).toContain('within keepWithin');
    // the quarterly stays only as their ancestor
    expect(plan.reasons.get(idOf('2026-07-01T03:00:00Z'))?.every((r) => r.startsWith('ancestor of'))).toBe(true);
  });

  it("keeps every ancestor of a kept generation even past its level's N", () => {
    const q1 = '2026-01-01T03:00:00Z';
    const m2 = '2026-02-01T03:00:00Z';
    const w = '2026-02-02T03:00:00Z';
    const gens = [
      g(q1, 'quarterly'),
      g('2026-04-01T03:00:00Z', 'quarterly'),
      g(m2, 'monthly', q1),
      g('2026-05-01T03:00:00Z', 'monthly', '2026-04-01T03:00:00Z'),
      g(w, 'weekly', m2),
      g('2026-05-04T03:00:00Z', 'weekly', '2026-05-01T03:00:00Z'),
      g('2026-02-03T03:00:00Z', 'daily', w), // an old daily, kept by daily: 1 when it is the only daily
    ];
    const plan = planRetention(gens, { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithinMs: 0 }, FAR_FUTURE);
    const kept = new Set(ids(plan.keep));
    for (const a of [q1, m2, w, '2026-02-03T03:00:00Z']) expect(kept.has(idOf(a)), a).toBe(true);
    expect(plan.reasons.get(idOf(q1))).toContain(`ancestor of ${idOf('2026-02-03T03:00:00Z')}`);
    // the newest of each level stay too; nothing to remove
    expect(plan.remove).toEqual([]);
    expect(plan.keep).toHaveLength(gens.length);

    // with the daily gone from the policy, its chain goes, and the newest of each level stays
    const plan2 = planRetention(gens, { daily: 0, weekly: 1, monthly: 1, quarterly: 1, keepWithinMs: 0 }, FAR_FUTURE);
    expect(ids(plan2.remove)).toEqual([idOf('2026-02-03T03:00:00Z'), idOf(w), idOf(m2), idOf(q1)]);
  });

  it('removes children before their parents', () => {
    // three old chains, all removed; two days' worth of dailies per chain
    const gens: RetainedGeneration[] = [];
    for (const month of ['01', '04', '07']) {
      const q = `2025-${month}-01T03:00:00Z`;
      const m = `2025-${month}-02T03:00:00Z`;
      const w = `2025-${month}-06T03:00:00Z`;
      gens.push(g(q, 'quarterly'), g(m, 'monthly', q), g(w, 'weekly', m));
      gens.push(g(`2025-${month}-07T03:00:00Z`, 'daily', w), g(`2025-${month}-08T03:00:00Z`, 'daily', w));
    }
    // shuffle deterministically
    const input = gens.map((x, i) => ({ x, k: (i * 7) % gens.length })).sort((a, b) => a.k - b.k).map((e) => e.x);
    const plan = planRetention(input, NONE, FAR_FUTURE);
    expect(plan.remove).toHaveLength(gens.length);
    const position = new Map(plan.remove.map((x, i) => [x.id, i]));
    for (const x of gens) {
      if (x.parent) expect(position.get(x.id)!, x.id).toBeLessThan(position.get(x.parent)!);
    }
  });

  it('tolerates a parent that is already gone', () => {
    const gens = [g('2026-02-03T03:00:00Z', 'daily', '2026-02-02T03:00:00Z')];
    const plan = planRetention(gens, { ...NONE, daily: 1 }, FAR_FUTURE);
    expect(ids(plan.keep)).toEqual([gens[0]!.id]);
    expect(plan.reasons.get(idOf('2026-02-02T03:00:00Z'))).toEqual([`ancestor of ${gens[0]!.id}`]);
    expect(plan.remove).toEqual([]);
  });
});

interface Simulation {
  repo: RetainedGeneration[];
  created: Record<Level, number>;
  removed: Set<string>;
  last: Date;
}

/** One backup a day at the same time, each followed by pruning, as the backup job does it. */
function simulate(policy: RetentionPolicy, days: number, zone: string, startIso: string): Simulation {
  let repo: RetainedGeneration[] = [];
  const created: Record<Level, number> = { quarterly: 0, monthly: 0, weekly: 0, daily: 0 };
  const removed = new Set<string>();
  const start = Date.parse(startIso);
  let now = new Date(start);
  for (let day = 0; day < days; day++) {
    now = new Date(start + day * DAY);
    const level = chooseLevel(now, repo, zone);
    const parent = chooseParent(level, repo);
    const gen: RetainedGeneration = { id: generationId(now), level, parent: parent?.id ?? null };
    if (level !== 'quarterly') expect(parent, gen.id).toBeDefined();
    created[level] += 1;
    repo.push(gen);

    const plan = planRetention(repo, policy, now);
    const keep = new Set(ids(plan.keep));
    expect(keep.has(gen.id)).toBe(true);
    expect(plan.keep.length + plan.remove.length).toBe(repo.length);
    // a removed generation is never an ancestor of a kept one, and goes after its children
    const position = new Map(plan.remove.map((x, i) => [x.id, i]));
    for (const x of repo) {
      if (x.parent && keep.has(x.id)) expect(keep.has(x.parent), `${x.id} → ${x.parent}`).toBe(true);
      if (x.parent && position.has(x.id) && position.has(x.parent)) {
        expect(position.get(x.id)!).toBeLessThan(position.get(x.parent)!);
      }
    }
    for (const x of plan.remove) removed.add(x.id);
    repo = plan.keep;
  }
  return { repo, created, removed, last: now };
}

/** Every kept generation's chain is kept, ends in a quarterly, and climbs in level. */
function expectWholeChains(repo: RetainedGeneration[]): void {
  const byId = new Map(repo.map((x) => [x.id, x]));
  for (const x of repo) {
    let chainLength = 1;
    let cur = x;
    while (cur.parent) {
      const p = byId.get(cur.parent);
      expect(p, `${x.id}: ancestor ${cur.parent}`).toBeDefined();
      expect(levelRank(p!.level)).toBeGreaterThan(levelRank(cur.level));
      cur = p!;
      chainLength += 1;
    }
    expect(cur.level).toBe('quarterly');
    expect(chainLength).toBeLessThanOrEqual(4);
  }
}

describe('400 days of daily backups, pruned after each', () => {
  it('ends with the default policy counts per level and every kept chain whole', () => {
    const { repo, created, removed, last } = simulate(DEFAULT, 400, 'Europe/Paris', '2025-11-20T02:15:00Z');
    expect(created.quarterly + created.monthly + created.weekly + created.daily).toBe(400);
    // 2025-Q4 (the first run) and 2026-Q1 to Q4; the last run is on 2026-12-24
    expect(created.quarterly).toBe(5);
    expect(created.monthly).toBe(9);
    expect(removed.size).toBe(400 - repo.length);
    for (const l of LEVELS) {
      expect(repo.filter((x) => x.level === l).length, l).toBe(Math.min(DEFAULT[l], created[l]));
    }
    expectWholeChains(repo);
    // the kept ones of a level are its newest, today's among them
    const dailies = ids(repo.filter((x) => x.level === 'daily')).sort();
    expect(dailies.at(-1)).toBe(generationId(last));
    expect(dailies.every((id) => last.getTime() - parseGenerationId(id).getTime() < 10 * DAY)).toBe(true);
  });

  it('hits every level limit with a tight policy, keeping extra generations only as ancestors', () => {
    const tight: RetentionPolicy = { daily: 2, weekly: 1, monthly: 1, quarterly: 2, keepWithinMs: 0 };
    const { repo, created } = simulate(tight, 400, 'America/New_York', '2025-11-20T08:00:00Z');
    for (const l of LEVELS) expect(created[l], l).toBeGreaterThan(tight[l]);
    expectWholeChains(repo);
    const plan = planRetention(repo, tight, new Date('2027-01-01T00:00:00Z'));
    for (const l of LEVELS) {
      const kept = repo.filter((x) => x.level === l);
      expect(kept.length, l).toBeGreaterThanOrEqual(tight[l]);
      const extra = kept.filter((x) => !plan.reasons.get(x.id)!.some((r) => r.startsWith(`${l} #`)));
      for (const x of extra) expect(plan.reasons.get(x.id)!.every((r) => r.startsWith('ancestor of')), x.id).toBe(true);
    }
    expect(repo.length).toBeLessThanOrEqual(2 + 1 + 1 + 2 + 3);
  });
});
