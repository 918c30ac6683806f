import { expect } from 'vitest';
import { CerberusError } from '../../src/errors.js';

/** The CerberusError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function errorOf(p: Promise<unknown>): Promise<CerberusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CerberusError);
  return err as CerberusError;
}
