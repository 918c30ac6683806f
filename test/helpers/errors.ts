import { expect } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import type { RunResult } from './cli.js';

/** The CerberusError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function errorOf(p: Promise<unknown>): Promise<CerberusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CerberusError);
  return err as CerberusError;
}

/** One `cerberus: error:` line, said last, no stack trace; `alone`: nothing else on stderr. */
export function expectError(r: RunResult, code: number, patterns: RegExp[], opts: { alone?: boolean } = {}): string {
  expect(r.code, `stderr: ${r.stderr}`).toBe(code);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  const errors = lines.filter((l) => l.startsWith('cerberus: error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(lines.at(-1)).toBe(errors[0]);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  if (opts.alone) expect(r.stderr).toBe(`${errors[0]}\n`);
  for (const p of patterns) expect(errors[0]).toMatch(p);
  return errors[0]!;
}
