import { CerberusError, type ErrorCode } from '../../errors.js';
import type { SpooledVolume } from '../volumes.js';

/** What the sealing worker is started with (structured-cloned; the key never leaves the process). */
export interface WorkerSetup {
  spoolDir: string;
  volumeSize: number;
  preamble: Uint8Array;
  sessionKey: Uint8Array;
  compression: 'none' | 'zlib';
  /** Int32Array over it, indexed by CONTROL */
  control: SharedArrayBuffer;
}

/** Slots of the shared control array. */
export const CONTROL = { released: 0, stop: 1 } as const;

export type ToWorker = { type: 'data'; buf: ArrayBuffer; length: number } | { type: 'end' } | { type: 'abort' };

export type FromWorker =
  | { type: 'free'; buf: ArrayBuffer }
  | { type: 'volume'; volume: SpooledVolume }
  | { type: 'done' }
  | { type: 'error'; error: SerializedError };

export interface SerializedError {
  message: string;
  code?: string;
  hint?: string;
  cerberus: boolean;
  syscall?: string;
  path?: string;
}

/** Errors cross the thread boundary as plain data; codes and hints must survive it. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof CerberusError) return { message: err.message, code: err.code, hint: err.hint, cerberus: true };
  const e = err as NodeJS.ErrnoException;
  return {
    message: e instanceof Error ? e.message : String(err),
    cerberus: false,
    ...(e?.code ? { code: e.code } : {}),
    ...(e?.syscall ? { syscall: e.syscall } : {}),
    ...(e?.path ? { path: e.path } : {}),
  };
}

export function deserializeError(s: SerializedError): Error {
  if (s.cerberus) return new CerberusError(s.code as ErrorCode, s.message, { hint: s.hint });
  return Object.assign(new Error(s.message), { code: s.code, syscall: s.syscall, path: s.path });
}
