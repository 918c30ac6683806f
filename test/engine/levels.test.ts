import { describe, expect, it } from 'vitest';
import {
  chooseLevel,
  chooseParent,
  endOfLocalDay,
  generationId,
  isGenerationId,
  isoWeek,
  levelRank,
  localDate,
  parseGenerationId,
  periodKey,
  type DatedGeneration,
  type Level,
} from '../../src/engine/levels.js';

const at = (iso: string) => new Date(iso);
const gen = (iso: string, level: Level): DatedGeneration => ({ id: generationId(at(iso)), level });

describe('generation ids', () => {
  it('round-trips a whole-second instant', () => {
    const d = at('2026-11-22T03:00:12Z');
    const id = generationId(d);
    expect(id).toBe('2026-11-22T030012Z');
    expect(isGenerationId(id)).toBe(true);
    expect(parseGenerationId(id).getTime()).toBe(d.getTime());
  });

  it('drops milliseconds, and ids sort like their instants', () => {
    const id = generationId(at('2026-01-02T23:59:59.999Z'));
    expect(id).toBe('2026-01-02T235959Z');
    expect(parseGenerationId(id).toISOString()).toBe('2026-01-02T23:59:59.000Z');
    const ids = ['2026-03-01T00:00:00Z', '2025-12-31T23:59:59Z', '2026-03-01T00:00:01Z'].map((s) => generationId(at(s)));
    expect([...ids].sort()).toEqual([ids[1], ids[0], ids[2]]);
  });

  it('rejects what is not an id', () => {
    for (const s of ['2026-11-22T03:00:12Z', '2026-11-22T030012', '2026-11-22t030012Z', 'x2026-11-22T030012Z', '']) {
      expect(isGenerationId(s)).toBe(false);
      expect(() => parseGenerationId(s)).toThrow();
    }
  });

  it('ranks levels coarse to fine', () => {
    expect(levelRank('quarterly')).toBe(3);
    expect(levelRank('monthly')).toBe(2);
    expect(levelRank('weekly')).toBe(1);
    expect(levelRank('daily')).toBe(0);
  });
});

describe('isoWeek', () => {
  const w = (y: number, m: number, d: number) => isoWeek({ year: y, month: m, day: d });

  it('puts Dec 29-31 in week 1 of the next year when that week holds its Thursday', () => {
    expect(w(2025, 12, 29)).toEqual({ year: 2026, week: 1 }); // Monday
    expect(w(2025, 12, 31)).toEqual({ year: 2026, week: 1 });
    expect(w(2024, 12, 30)).toEqual({ year: 2025, week: 1 });
    expect(w(2019, 12, 30)).toEqual({ year: 2020, week: 1 });
    expect(w(2025, 12, 28)).toEqual({ year: 2025, week: 52 }); // Sunday before
  });

  it('puts Jan 1-3 in week 52 or 53 of the previous year', () => {
    expect(w(2021, 1, 1)).toEqual({ year: 2020, week: 53 }); // Friday
    expect(w(2021, 1, 3)).toEqual({ year: 2020, week: 53 }); // Sunday
    expect(w(2021, 1, 4)).toEqual({ year: 2021, week: 1 });
    expect(w(2022, 1, 1)).toEqual({ year: 2021, week: 52 }); // Saturday
    expect(w(2023, 1, 1)).toEqual({ year: 2022, week: 52 }); // Sunday
    expect(w(2023, 1, 2)).toEqual({ year: 2023, week: 1 });
    expect(w(2027, 1, 3)).toEqual({ year: 2026, week: 53 });
  });

  it('agrees with a day-by-day count over several years', () => {
    // reference: week 1 starts on the Monday on or before Jan 4; weeks count on from there
    const mondayOfWeek1 = (y: number) => {
      const jan4 = Date.UTC(y, 0, 4);
      const dow = new Date(jan4).getUTCDay() || 7;
      return jan4 - (dow - 1) * 86_400_000;
    };
    for (let t = Date.UTC(2019, 11, 1); t < Date.UTC(2028, 1, 1); t += 86_400_000) {
      const d = new Date(t);
      const y = d.getUTCFullYear();
      const year = t >= mondayOfWeek1(y + 1) ? y + 1 : t < mondayOfWeek1(y) ? y - 1 : y;
      const week = Math.floor((t - mondayOfWeek1(year)) / (7 * 86_400_000)) + 1;
      expect(w(y, d.getUTCMonth() + 1, d.getUTCDate()), d.toISOString()).toEqual({ year, week });
    }
  });
});

describe('periodKey and localDate', () => {
  it('names periods in the job zone', () => {
    const t = at('2026-03-31T23:30:00Z');
    expect(localDate(t, 'UTC')).toEqual({ year: 2026, month: 3, day: 31 });
    expect(localDate(t, 'Europe/Paris')).toEqual({ year: 2026, month: 4, day: 1 });
    expect(periodKey('quarterly', t, 'UTC')).toBe('2026-Q1');
    expect(periodKey('quarterly', t, 'Europe/Paris')).toBe('2026-Q2');
    expect(periodKey('monthly', t, 'Europe/Paris')).toBe('2026-04');
    expect(periodKey('weekly', t, 'Europe/Paris')).toBe('2026-W14');
    expect(periodKey('daily', t, 'Europe/Paris')).toBe('2026-04-01');
    expect(periodKey('daily', at('2026-04-01T02:00:00Z'), 'America/New_York')).toBe('2026-03-31');
  });

  it('uses ISO week-years at the turn of the year', () => {
    expect(periodKey('weekly', at('2025-12-30T12:00:00Z'), 'UTC')).toBe('2026-W01');
    expect(periodKey('weekly', at('2021-01-02T12:00:00Z'), 'UTC')).toBe('2020-W53');
  });
});

describe('chooseLevel', () => {
  const Z = 'UTC';

  it('makes a quarterly on the first run ever', () => {
    expect(chooseLevel(at('2026-05-17T03:00:00Z'), [], Z)).toBe('quarterly');
  });

  it('makes a quarterly on the first run of a quarter', () => {
    const existing = [gen('2026-01-01T03:00:00Z', 'quarterly'), gen('2026-03-30T03:00:00Z', 'weekly'), gen('2026-03-31T03:00:00Z', 'daily')];
    expect(chooseLevel(at('2026-04-01T03:00:00Z'), existing, Z)).toBe('quarterly');
    // the first run of the quarter may come late in it
    expect(chooseLevel(at('2026-06-30T03:00:00Z'), existing, Z)).toBe('quarterly');
  });

  it('makes a monthly on the first run of a month, a weekly on the first of an ISO week, else a daily', () => {
    const q = gen('2026-01-01T03:00:00Z', 'quarterly'); // Thursday
    expect(chooseLevel(at('2026-01-02T03:00:00Z'), [q], Z)).toBe('daily');
    expect(chooseLevel(at('2026-01-05T03:00:00Z'), [q], Z)).toBe('weekly'); // Monday
    const w = gen('2026-01-05T03:00:00Z', 'weekly');
    expect(chooseLevel(at('2026-01-06T03:00:00Z'), [q, w], Z)).toBe('daily');
    expect(chooseLevel(at('2026-02-01T03:00:00Z'), [q, w], Z)).toBe('monthly');
    const m = gen('2026-02-01T03:00:00Z', 'monthly'); // Sunday: also stands for its week
    expect(chooseLevel(at('2026-02-01T15:00:00Z'), [q, w, m], Z)).toBe('daily');
    expect(chooseLevel(at('2026-02-02T03:00:00Z'), [q, w, m], Z)).toBe('weekly');
  });

  it('makes a daily for a second run on the same day, whatever the first was', () => {
    const q = gen('2026-01-01T03:00:00Z', 'quarterly');
    const cases: Array<[Level, DatedGeneration[], string]> = [
      ['quarterly', [q, gen('2026-03-30T03:00:00Z', 'weekly')], '2026-04-01'],
      ['monthly', [q, gen('2026-01-26T03:00:00Z', 'weekly')], '2026-02-01'],
      ['weekly', [q], '2026-01-05'],
      ['daily', [q], '2026-01-02'],
    ];
    for (const [level, existing, day] of cases) {
      const first = at(`${day}T01:00:00Z`);
      expect(chooseLevel(first, existing, Z), day).toBe(level);
      const after = [...existing, { id: generationId(first), level }];
      expect(chooseLevel(at(`${day}T22:00:00Z`), after, Z), day).toBe('daily');
      expect(chooseLevel(at(`${day}T23:59:59Z`), after, Z), day).toBe('daily');
    }
  });

  it('counts only levels at least as high as the period', () => {
    // a daily on the first of the month does not stand for the month
    const existing = [gen('2026-01-01T03:00:00Z', 'quarterly'), gen('2026-02-01T01:00:00Z', 'daily')];
    expect(chooseLevel(at('2026-02-01T05:00:00Z'), existing, Z)).toBe('monthly');
    // a weekly in the same ISO week does not stand for a new month
    const existing2 = [gen('2026-01-01T03:00:00Z', 'quarterly'), gen('2026-01-26T03:00:00Z', 'weekly')];
    expect(chooseLevel(at('2026-02-01T03:00:00Z'), existing2, Z)).toBe('monthly');
  });

  it('follows ISO weeks across the turn of the year', () => {
    const q = gen('2021-01-01T03:00:00Z', 'quarterly'); // Friday of 2020-W53
    expect(chooseLevel(at('2021-01-03T03:00:00Z'), [q], Z)).toBe('daily'); // Sunday, same week
    expect(chooseLevel(at('2021-01-04T03:00:00Z'), [q], Z)).toBe('weekly'); // 2021-W01
    // a weekly on Monday Dec 29 2025 (2026-W01) stands for Wednesday Dec 31's week
    const base = [gen('2025-10-01T03:00:00Z', 'quarterly'), gen('2025-12-01T03:00:00Z', 'monthly')];
    const w = gen('2025-12-29T03:00:00Z', 'weekly');
    expect(chooseLevel(at('2025-12-31T03:00:00Z'), [...base, w], Z)).toBe('daily');
    expect(chooseLevel(at('2025-12-31T03:00:00Z'), base, Z)).toBe('weekly');
    // ... and the quarterly of Jan 1 2026 stands for the week until Sunday Jan 4
    const q26 = gen('2026-01-01T03:00:00Z', 'quarterly');
    expect(chooseLevel(at('2026-01-04T03:00:00Z'), [...base, w, q26], Z)).toBe('daily');
    expect(chooseLevel(at('2026-01-05T03:00:00Z'), [...base, w, q26], Z)).toBe('weekly');
  });

  it('decides periods in the job time zone', () => {
    // at noon UTC, so these are on the same local day in all three zones
    const q1 = gen('2026-01-01T12:00:00Z', 'quarterly');
    const m3 = gen('2026-03-01T12:00:00Z', 'monthly');
    const w = gen('2026-03-30T12:00:00Z', 'weekly');
    const existing = [q1, m3, w];
    // 23:30 UTC on Mar 31 is 01:30 on Apr 1 in Paris
    expect(chooseLevel(at('2026-03-31T23:30:00Z'), existing, 'Europe/Paris')).toBe('quarterly');
    expect(chooseLevel(at('2026-03-31T23:30:00Z'), existing, 'UTC')).toBe('daily');
    // 02:00 UTC on Apr 1 is still Mar 31 in New York
    expect(chooseLevel(at('2026-04-01T02:00:00Z'), existing, 'America/New_York')).toBe('daily');
    expect(chooseLevel(at('2026-04-01T02:00:00Z'), existing, 'UTC')).toBe('quarterly');
  });

  it('uses the real offset on both sides of a DST change', () => {
    const Paris = 'Europe/Paris';
    // spring forward on Sunday 2026-03-29: from then on Paris is UTC+2
    const spring = [gen('2026-01-01T03:00:00Z', 'quarterly'), gen('2026-03-01T03:00:00Z', 'monthly'), gen('2026-03-23T02:00:00Z', 'weekly')];
    expect(chooseLevel(at('2026-03-29T21:30:00Z'), spring, Paris)).toBe('daily'); // Sun 23:30 CEST
    expect(chooseLevel(at('2026-03-29T22:30:00Z'), spring, Paris)).toBe('weekly'); // Mon 00:30 CEST (23:30 Sunday in CET)
    // fall back on Sunday 2026-10-25: from then on Paris is UTC+1
    const fall = [gen('2026-10-01T03:00:00Z', 'quarterly'), gen('2026-10-19T02:00:00Z', 'weekly')];
    expect(chooseLevel(at('2026-10-25T22:30:00Z'), fall, Paris)).toBe('daily'); // Sun 23:30 CET (00:30 Monday in CEST)
    expect(chooseLevel(at('2026-10-25T23:00:00Z'), fall, Paris)).toBe('weekly'); // Mon 00:00 CET
    // the repeated hour 02:00-03:00 on the fall-back night is one day
    const d = [gen('2026-10-01T03:00:00Z', 'quarterly'), gen('2026-10-19T02:00:00Z', 'weekly'), gen('2026-10-25T00:30:00Z', 'daily')];
    expect(periodKey('daily', at('2026-10-25T00:30:00Z'), Paris)).toBe('2026-10-25');
    expect(periodKey('daily', at('2026-10-25T01:30:00Z'), Paris)).toBe('2026-10-25');
    expect(chooseLevel(at('2026-10-25T01:30:00Z'), d, Paris)).toBe('daily');
  });
});

describe('chooseParent', () => {
  const existing = [
    { ...gen('2026-01-01T03:00:00Z', 'quarterly'), tag: 'q1' },
    { ...gen('2026-02-01T03:00:00Z', 'monthly'), tag: 'm2' },
    { ...gen('2026-03-01T03:00:00Z', 'monthly'), tag: 'm3' },
    { ...gen('2026-03-02T03:00:00Z', 'weekly'), tag: 'w10' },
    { ...gen('2026-03-09T03:00:00Z', 'weekly'), tag: 'w11' },
    { ...gen('2026-03-10T03:00:00Z', 'daily'), tag: 'd' },
    { ...gen('2026-03-11T03:00:00Z', 'daily'), tag: 'd2' },
  ];
  const shuffled = [existing[4]!, existing[0]!, existing[6]!, existing[2]!, existing[5]!, existing[1]!, existing[3]!];

  it('picks the newest generation of a higher level, whatever the input order', () => {
    expect(chooseParent('daily', shuffled)?.tag).toBe('w11');
    expect(chooseParent('weekly', shuffled)?.tag).toBe('m3');
    expect(chooseParent('monthly', shuffled)?.tag).toBe('q1');
    expect(chooseParent('quarterly', shuffled)).toBeUndefined();
  });

  it('skips levels that are not there, and never picks its own level', () => {
    const noWeekly = shuffled.filter((g) => g.level !== 'weekly');
    expect(chooseParent('daily', noWeekly)?.tag).toBe('m3');
    const onlyDaily = shuffled.filter((g) => g.level === 'daily');
    expect(chooseParent('daily', onlyDaily)).toBeUndefined();
    // a newer monthly than the newest weekly is the daily's parent
    const m4 = { ...gen('2026-04-01T03:00:00Z', 'monthly'), tag: 'm4' };
    expect(chooseParent('daily', [...shuffled, m4])?.tag).toBe('m4');
  });
});

describe('endOfLocalDay', () => {
  it('is the last millisecond of the day in UTC', () => {
    expect(endOfLocalDay('2026-01-01', 'UTC').toISOString()).toBe('2026-01-01T23:59:59.999Z');
    expect(endOfLocalDay('2024-02-29', 'UTC').toISOString()).toBe('2024-02-29T23:59:59.999Z');
  });

  it('follows the zone offset', () => {
    expect(endOfLocalDay('2026-01-15', 'Europe/Paris').toISOString()).toBe('2026-01-15T22:59:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'Europe/Paris').toISOString()).toBe('2026-07-15T21:59:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'America/New_York').toISOString()).toBe('2026-07-16T03:59:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'Asia/Kathmandu').toISOString()).toBe('2026-07-15T18:14:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'Pacific/Kiritimati').toISOString()).toBe('2026-07-15T09:59:59.999Z');
  });

  it('handles zones far west of UTC', () => {
    expect(endOfLocalDay('2026-07-15', 'Pacific/Honolulu').toISOString()).toBe('2026-07-16T09:59:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'Pacific/Pago_Pago').toISOString()).toBe('2026-07-16T10:59:59.999Z');
    expect(endOfLocalDay('2026-07-15', 'Etc/GMT+12').toISOString()).toBe('2026-07-16T11:59:59.999Z');
  });

  it('handles days of 23 and 25 hours', () => {
    expect(endOfLocalDay('2026-03-29', 'Europe/Paris').toISOString()).toBe('2026-03-29T21:59:59.999Z');
    expect(endOfLocalDay('2026-10-25', 'Europe/Paris').toISOString()).toBe('2026-10-25T22:59:59.999Z');
    expect(endOfLocalDay('2026-03-08', 'America/New_York').toISOString()).toBe('2026-03-09T03:59:59.999Z');
  });

  it('is on that local day, and the next millisecond is not', () => {
    for (const zone of ['UTC', 'Europe/Paris', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata']) {
      const end = endOfLocalDay('2026-10-04', zone);
      expect(periodKey('daily', end, zone), zone).toBe('2026-10-04');
      expect(periodKey('daily', new Date(end.getTime() + 1), zone), zone).toBe('2026-10-05');
    }
  });

  it('rejects what is not a date', () => {
    expect(() => endOfLocalDay('2026-1-4', 'UTC')).toThrow();
    expect(() => endOfLocalDay('yesterday', 'UTC')).toThrow();
  });
});
