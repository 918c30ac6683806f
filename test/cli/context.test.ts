import { describe, expect, it } from 'vitest';
import { durationOption, parseNow } from '../../src/cli/context.js';
import { errorOf } from '../helpers/errors.js';

describe('flag values', () => {
  it('reads a duration flag, and names the flag and good values when it is not one', async () => {
    expect(durationOption('90m', '--max-age', '26h or 3d')).toBe(90 * 60_000);
    expect(durationOption('2h', '--max-behind', '30m or 2h')).toBe(2 * 3600_000);
    const err = await errorOf(Promise.resolve().then(() => durationOption('soon', '--grace', '10m, 90s or 1h')));
    expect(err).toMatchObject({ code: 'USAGE', message: '--grace soon is not a duration', hint: 'use e.g. 10m, 90s or 1h' });
  });

  it('reads --now as ISO 8601, and refuses anything else', async () => {
    expect(parseNow('2026-11-22T03:00:00Z').toISOString()).toBe('2026-11-22T03:00:00.000Z');
    expect(await errorOf(Promise.resolve().then(() => parseNow('yesterday')))).toMatchObject({ code: 'USAGE', message: '--now yesterday is not a date and time' });
  });
});
