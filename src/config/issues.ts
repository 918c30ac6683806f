import type { z } from 'zod';
import { formatPath, locate, type ParsedYaml, type Problem } from './yaml-doc.js';
import { keyPattern } from './schema.js';

type RawIssue = z.core.$ZodRawIssue;

function typeWord(v: unknown): string {
  if (v === null) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  switch (typeof v) {
    case 'string':
      return 'text';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true/false';
    case 'object':
      return 'a mapping';
    default:
      return typeof v;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'text',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping (key: value)',
  record: 'a mapping (key: value)',
};

function listValues(values: readonly unknown[]): string {
  return values.map((v) => String(v)).join(', ');
}

/**
 * Our wording for zod's issues. It never quotes the input: that may be an interpolated secret.
 * Messages set on the schema itself take precedence over this map.
 */
export function errorMap(issue: RawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined || issue.expected === 'nonoptional') return 'required';
      if (issue.expected === 'int' && typeof issue.input === 'number') return 'must be a whole number';
      const quote = issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean') ? ' (put it in quotes)' : '';
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${typeWord(issue.input)}${quote}`;
    }
    case 'too_small':
      if (issue.origin === 'array') return Number(issue.minimum) === 1 ? 'must list at least one item' : `must list at least ${issue.minimum} items`;
      if (issue.origin === 'string') return 'must not be empty';
      return `must be at least ${issue.minimum}`;
    case 'too_big':
      if (issue.origin === 'array') return `must list at most ${issue.maximum} items`;
      return `must be at most ${issue.maximum}`;
    case 'invalid_value':
      return issue.values.length === 1 ? `must be ${listValues(issue.values)}` : `must be one of: ${listValues(issue.values)}`;
    case 'invalid_union': {
      const disc = 'discriminator' in issue && typeof issue.discriminator === 'string' ? issue.discriminator : undefined;
      const options = 'options' in issue && Array.isArray(issue.options) ? listValues(issue.options) : undefined;
      if (disc !== undefined && options !== undefined) {
        const input = issue.input;
        const missing = typeof input === 'object' && input !== null && !(disc in input);
        return missing ? `required (one of: ${options})` : `must be one of: ${options}`;
      }
      return undefined;
    }
    case 'invalid_key':
      return issue.issues[0]?.message;
    case 'unrecognized_keys':
      return 'unknown key';
    default:
      return undefined;
  }
}

/** Levenshtein distance, case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[t.length] ?? 0;
}

export function suggest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const k of known) {
    const d = editDistance(key, k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  return best;
}

/** One problem per issue (per key for unknown keys), located in the file. */
export function toProblems(issues: readonly z.core.$ZodIssue[], parsed: ParsedYaml, knownKeys: ReadonlyMap<string, string[]>): Problem[] {
  const problems: Problem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys.get(keyPattern(issue.path)) ?? [];
      for (const key of issue.keys) {
        const p = [...issue.path, key];
        const guess = suggest(key, known);
        const detail = guess !== undefined ? ` (did you mean ${JSON.stringify(guess)}?)` : known.length > 0 ? ` (known keys: ${known.join(', ')})` : '';
        problems.push({ line: locate(parsed, p), message: `${formatPath(p)}: unknown key${detail}` });
      }
    } else {
      problems.push({ line: locate(parsed, issue.path), message: `${formatPath(issue.path)}: ${issue.message}` });
    }
  }
  return problems;
}
