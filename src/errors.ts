/**
 * Typed errors. Every error a user can meet carries a code; the code decides the exit
 * status in exactly one place (`exitCodeFor`).
 */

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  warnings: 3,
  locked: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'USAGE' // bad flags or arguments
  | 'CONFIG' // config file missing, invalid, or a variable unset
  | 'KEY' // key missing, unreadable, wrong passphrase, wrong key
  | 'INTEGRITY' // repository data does not match its checksums or manifest
  | 'UNSAFE_PATH' // an archive entry would escape the restore folder
  | 'NOT_FOUND' // restore point, target or file not found
  | 'IO' // local file system trouble (unwritable, full, unreadable)
  | 'STORAGE' // a target failed
  | 'LOCKED' // another run holds the repository
  | 'GUARD' // a safety guard stopped a destructive step
  | 'SERVICE' // a service cerberus drives (Jenkins) refused or failed
  | 'HOOK' // a job's hook command failed, hung or could not start
  | 'SOURCE' // a remote source (FTPS, SFTP, S3) refused the login or failed
  | 'INTERRUPTED' // SIGINT or SIGTERM ended the run
  | 'INTERNAL';

export class CerberusError extends Error {
  readonly code: ErrorCode;
  /** what the user can do about it; printed after the message */
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CerberusError';
    this.code = code;
    this.hint = options.hint;
  }
}

export const usageError = (msg: string, hint?: string) => new CerberusError('USAGE', msg, { hint });
export const configError = (msg: string, hint?: string) => new CerberusError('CONFIG', msg, { hint });

export function exitCodeFor(err: unknown): ExitCode {
  if (!(err instanceof CerberusError)) return ExitCode.failed;
  switch (err.code) {
    case 'USAGE':
    case 'CONFIG':
      return ExitCode.usage;
    case 'LOCKED':
      return ExitCode.locked;
    case 'GUARD':
      return ExitCode.warnings;
    default:
      return ExitCode.failed;
  }
}

/** One line for the user: the problem, then what to do. Never a stack trace. */
export function describeError(err: unknown): string {
  if (err instanceof CerberusError) {
    return err.hint ? `${err.message} (${err.hint})` : err.message;
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? `${err.message} [${code}]` : err.message;
  }
  return String(err);
}

/** Wraps Node file-system errors into ones that say which path and what to do. */
export function ioError(err: unknown, what: string): CerberusError {
  const e = err as NodeJS.ErrnoException;
  const hints: Record<string, string> = {
    EACCES: 'check the permissions of that path',
    EPERM: 'check the permissions of that path',
    ENOSPC: 'free some space on that disk',
    EROFS: 'the file system is read-only',
    ENOENT: 'check that the path exists',
    ENOTDIR: 'a part of that path is not a folder',
    EEXIST: 'remove it or choose another path',
  };
  const hint = e?.code ? hints[e.code] : undefined;
  return new CerberusError('IO', `${what}: ${e?.code ?? ''} ${e?.message ?? String(err)}`.replace(/\s+/g, ' ').trim(), {
    hint,
    cause: err,
  });
}
