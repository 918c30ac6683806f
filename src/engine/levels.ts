/**
 * Generation levels, their calendar periods in the job's time zone, and the level choice
 * of DESIGN.md §4.
 */

export const LEVELS = ['quarterly', 'monthly', 'weekly', 'daily'] as const;
export type Level = (typeof LEVELS)[number];

/** higher is coarser: quarterly 3 … daily 0 */
export function levelRank(level: Level): number {
  return LEVELS.length - 1 - LEVELS.indexOf(level);
}

export function isLevel(s: string): s is Level {
  return (LEVELS as readonly string[]).includes(s);
}

/** `2026-11-22T030012Z`: sortable, and valid as a folder name everywhere. */
export function generationId(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '');
}

const ID_PATTERN = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export function isGenerationId(s: string): boolean {
  return ID_PATTERN.test(s);
}

export function parseGenerationId(id: string): Date {
  const m = ID_PATTERN.exec(id);
  if (!m) throw new Error(`not a generation id: ${id}`);
  const [, y, mo, d, h, mi, s] = m;
  return new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
}

export interface LocalDate {
  year: number;
  month: number; // 1..12
  day: number; // 1..31
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The calendar date of an instant in a time zone. */
export function localDate(date: Date, timeZone: string): LocalDate {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(date).map((p) => [p.type, p.value]));
  return { year: Number(parts.year), month: Number(parts.month), day: Number(parts.day) };
}

/** ISO 8601 week: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeek(d: LocalDate): { year: number; week: number } {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day));
  const dow = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - dow); // the Thursday of this week decides the year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return { year: t.getUTCFullYear(), week };
}

/** A key naming the period of `level` that holds `date`. */
export function periodKey(level: Level, date: Date, timeZone: string): string {
  const d = localDate(date, timeZone);
  switch (level) {
    case 'quarterly':
      return `${d.year}-Q${Math.floor((d.month - 1) / 3) + 1}`;
    case 'monthly':
      return `${d.year}-${String(d.month).padStart(2, '0')}`;
    case 'weekly': {
      const w = isoWeek(d);
      return `${w.year}-W${String(w.week).padStart(2, '0')}`;
    }
    case 'daily':
      return `${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
  }
}

export interface DatedGeneration {
  id: string;
  level: Level;
}

/**
 * The highest level whose current period holds no generation of that level or higher.
 * `existing` should hold only committed, trusted (not suspicious) generations.
 */
export function chooseLevel(now: Date, existing: DatedGeneration[], timeZone: string): Level {
  for (const level of LEVELS) {
    const key = periodKey(level, now, timeZone);
    const covered = existing.some(
      (g) => levelRank(g.level) >= levelRank(level) && periodKey(level, parseGenerationId(g.id), timeZone) === key,
    );
    if (!covered) return level;
  }
  return 'daily';
}

/** The parent of a new generation: the newest existing one of a higher level. */
export function chooseParent<G extends DatedGeneration>(level: Level, existing: G[]): G | undefined {
  if (level === 'quarterly') return undefined;
  return existing
    .filter((g) => levelRank(g.level) > levelRank(level))
    .sort((a, b) => (a.id < b.id ? 1 : -1))[0];
}

/** The end of a calendar day in a zone, for "restore the newest point on or before DATE". */
export function endOfLocalDay(dateText: string, timeZone: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(dateText);
  if (!m) throw new Error(`not a date: ${dateText}`);
  const target = `${m[1]}-${m[2]}-${m[3]}`;
  // step by 15 minutes through every instant that can be on that date somewhere (UTC+14 to
  // UTC-12) and keep the last one still on it
  const base = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - 14 * 3_600_000;
  let last = base;
  for (let t = base; t < base + 50 * 3_600_000; t += 60_000 * 15) {
    const d = localDate(new Date(t), timeZone);
    const key = `${d.year}-${String(d.month).padStart(2, '0')}-${String(d.day).padStart(2, '0')}`;
    if (key === target) last = t;
  }
  return new Date(last + 15 * 60_000 - 1);
}
