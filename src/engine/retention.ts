import { LEVELS, levelRank, parseGenerationId, type Level } from './levels.js';

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  quarterly: number;
  keepWithinMs: number;
}

export interface RetainedGeneration {
  id: string;
  level: Level;
  parent: string | null;
  /** a suspicious generation never takes one of a level's N places; only keepWithin keeps it */
  suspicious?: boolean;
}

export interface RetentionPlan<G extends RetainedGeneration> {
  keep: G[];
  /** in the order they must go: children before their parents */
  remove: G[];
  /** why each kept generation stays */
  reasons: Map<string, string[]>;
}

/**
 * Grandfather-father-son by level: the newest N trusted generations of each level,
 * everything younger than keepWithin, and every ancestor of anything kept.
 */
export function planRetention<G extends RetainedGeneration>(gens: G[], policy: RetentionPolicy, now: Date): RetentionPlan<G> {
  const byId = new Map(gens.map((g) => [g.id, g]));
  const reasons = new Map<string, string[]>();
  const mark = (id: string, why: string) => {
    const r = reasons.get(id) ?? [];
    r.push(why);
    reasons.set(id, r);
  };

  for (const level of LEVELS) {
    const newest = gens
      .filter((g) => g.level === level && !g.suspicious)
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .slice(0, policy[level]);
    newest.forEach((g, i) => mark(g.id, `${level} #${i + 1}`));
  }
  const cutoff = now.getTime() - policy.keepWithinMs;
  for (const g of gens) {
    if (parseGenerationId(g.id).getTime() >= cutoff) mark(g.id, 'within keepWithin');
  }
  for (const id of [...reasons.keys()]) {
    let p = byId.get(id)?.parent;
    while (p) {
      mark(p, `ancestor of ${id}`);
      p = byId.get(p)?.parent;
    }
  }

  const keep = gens.filter((g) => reasons.has(g.id));
  const remove = gens
    .filter((g) => !reasons.has(g.id))
    .sort((a, b) => levelRank(a.level) - levelRank(b.level) || (a.id < b.id ? 1 : -1));
  return { keep, remove, reasons };
}
