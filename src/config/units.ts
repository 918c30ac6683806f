import { configError } from '../errors.js';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  m: 1e6,
  g: 1e9,
  t: 1e12,
  ki: 2 ** 10,
  mi: 2 ** 20,
  gi: 2 ** 30,
  ti: 2 ** 40,
};
const SIZE_HINT = 'use a byte count or a number with a unit, e.g. 4096, 512MiB, 1.5GiB, 10MB';

/** Bytes from "512MiB", "2GiB", "10MB", "1.5GiB", "4096" or a number. Units are case-insensitive, the B optional. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isSafeInteger(s) || s < 0) throw configError(`invalid size ${s}: expected a whole number of bytes >= 0`, SIZE_HINT);
    return s;
  }
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgt]i?)?b?\s*$/i.exec(s);
  const mult = m ? SIZE_UNITS[(m[2] ?? '').toLowerCase()] : undefined;
  if (!m || mult === undefined) throw configError(`invalid size ${JSON.stringify(s)}`, SIZE_HINT);
  const value = Number(m[1]) * mult;
  // a fraction of a unit may round; a fraction of a byte is a mistake
  if (mult === 1 && !Number.isInteger(value)) throw configError(`invalid size ${JSON.stringify(s)}: not a whole number of bytes`, SIZE_HINT);
  const bytes = Math.round(value);
  if (!Number.isSafeInteger(bytes)) throw configError(`invalid size ${JSON.stringify(s)}: too large`, SIZE_HINT);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};
const DURATION_HINT = 'use a number with a unit (w, d, h, m, s, ms), e.g. 2d, 12h, 1d12h; 0 needs none';

/** Milliseconds from "2d", "12h", "30m", "45s", "1w", "1d12h". A bare number is refused (unit ambiguity) unless 0. */
export function parseDuration(s: string | number): number {
  if (typeof s === 'number') {
    if (s === 0) return 0;
    throw configError(`invalid duration ${s}: a unit is required`, DURATION_HINT);
  }
  const text = s.trim();
  if (/^0+(\.0+)?$/.test(text)) return 0;
  // units are lowercase only: "1M" could be read as a month
  if (!/^(\s*(\d+(\.\d+)?|\.\d+)\s*(ms|w|d|h|m|s))+\s*$/.test(text)) {
    throw configError(`invalid duration ${JSON.stringify(s)}`, DURATION_HINT);
  }
  let total = 0;
  for (const part of text.matchAll(/(\d+(?:\.\d+)?|\.\d+)\s*(ms|w|d|h|m|s)/g)) {
    total += Number(part[1]) * (DURATION_UNITS[part[2] ?? ''] ?? Number.NaN);
  }
  const ms = Math.round(total);
  if (!Number.isSafeInteger(ms)) throw configError(`invalid duration ${JSON.stringify(s)}: too large`, DURATION_HINT);
  return ms;
}

const PERCENT_HINT = 'use a percentage like 30% or a fraction like 0.3';

/** A fraction 0..1 from "30%", "0.3" or 0.3. */
export function parsePercent(s: string | number): number {
  let value: number;
  let fraction = true;
  if (typeof s === 'number') {
    value = s;
  } else {
    const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(%?)\s*$/.exec(s);
    if (!m) throw configError(`invalid percentage ${JSON.stringify(s)}`, PERCENT_HINT);
    fraction = !m[2];
    value = fraction ? Number(m[1]) : Number(m[1]) / 100;
  }
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    const shown = typeof s === 'number' ? String(s) : JSON.stringify(s);
    const guess = fraction && value > 1 && value <= 100 ? ` (did you mean ${value}%?)` : '';
    throw configError(`invalid percentage ${shown}: must be between 0% and 100%${guess}`, guess ? undefined : PERCENT_HINT);
  }
  return value;
}
