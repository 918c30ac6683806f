import { describe, expect, it } from 'vitest';
import { parseDuration, parsePercent, parseSize } from '../../src/config/index.js';
import { CerberusError } from '../../src/errors.js';

function configErr(fn: () => unknown): CerberusError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('CONFIG');
    return err as CerberusError;
  }
  throw new Error('expected a CONFIG error');
}

describe('parseSize', () => {
  it.each([
    ['512MiB', 512 * 2 ** 20],
    ['2GiB', 2 * 2 ** 30],
    ['10MB', 10_000_000],
    ['4096', 4096],
    [4096, 4096],
    [0, 0],
    ['0', 0],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['1.5 gib', 1.5 * 2 ** 30],
    ['4KiB', 4096],
    ['4kib', 4096],
    ['4Ki', 4096],
    ['4k', 4000],
    ['4KB', 4000],
    ['1TiB', 2 ** 40],
    ['1TB', 1e12],
    ['100B', 100],
    [' 7 MiB ', 7 * 2 ** 20],
    ['.5KiB', 512],
  ])('%j -> %d', (input, expected) => {
    expect(parseSize(input)).toBe(expected);
  });

  it.each(['', 'abc', '-1', '1.5', '12XB', '1.5.5MiB', 'MiB', '1 PiB', '1iB', '9999999999TiB'])('rejects %j', (input) => {
    const err = configErr(() => parseSize(input));
    expect(err.message).toContain(JSON.stringify(input));
  });

  it.each([-1, 1.5, Number.POSITIVE_INFINITY, Number.NaN])('rejects the number %d', (input) => {
    configErr(() => parseSize(input));
  });
});

describe('parseDuration', () => {
  const s = 1000;
  const m = 60 * s;
  const h = 60 * m;
  const d = 24 * h;
  it.each([
    ['2d', 2 * d],
    ['12h', 12 * h],
    ['30m', 30 * m],
    ['45s', 45 * s],
    ['1w', 7 * d],
    ['1d12h', d + 12 * h],
    ['1d 12h', d + 12 * h],
    ['1h30m15s', h + 30 * m + 15 * s],
    ['500ms', 500],
    ['1.5d', 1.5 * d],
    ['0', 0],
    ['0d', 0],
    [0, 0],
  ])('%j -> %d', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it('refuses a bare number other than 0, naming the missing unit', () => {
    expect(configErr(() => parseDuration(5)).message).toMatch(/unit is required/);
    configErr(() => parseDuration('5'));
    configErr(() => parseDuration(2.5));
  });

  it.each(['', 'd', '2D', '1M', '1y', '-1d', '2 days', '1d-2h', 'h1'])('rejects %j', (input) => {
    configErr(() => parseDuration(input));
  });
});

describe('parsePercent', () => {
  it.each([
    ['30%', 0.3],
    [0.3, 0.3],
    ['0.3', 0.3],
    ['0%', 0],
    [0, 0],
    ['100%', 1],
    [1, 1],
    ['12.5%', 0.125],
    [' 50 % ', 0.5],
  ])('%j -> %d', (input, expected) => {
    expect(parsePercent(input)).toBeCloseTo(expected, 12);
  });

  it('suggests a percent sign for numbers that look like percentages', () => {
    expect(configErr(() => parsePercent(30)).message).toContain('did you mean 30%?');
    expect(configErr(() => parsePercent('30')).message).toContain('did you mean 30%?');
  });

  it.each(['101%', '-5%', 'abc', '', '%', '1.5'])('rejects %j', (input) => {
    configErr(() => parsePercent(input));
  });

  it.each([-0.1, 1.01, 500, Number.NaN])('rejects the number %d', (input) => {
    configErr(() => parsePercent(input));
  });
});
