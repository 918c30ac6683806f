import { CerberusError } from '../errors.js';

/**
 * A storage failure, classified once by the backend that saw it, so the retry wrapper can
 * decide without knowing HTTP or S3: retry a 5xx, a 429 or a reset; never a 401.
 */
export class StorageError extends CerberusError {
  readonly retryable: boolean;
  /** the server's Retry-After, when it gave one */
  readonly retryAfterMs: number | undefined;
  readonly status: number | undefined;

  constructor(
    message: string,
    options: { retryable: boolean; retryAfterMs?: number; status?: number; hint?: string; cause?: unknown; notFound?: boolean },
  ) {
    super(options.notFound ? 'NOT_FOUND' : 'STORAGE', message, { hint: options.hint, cause: options.cause });
    this.name = 'StorageError';
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.status = options.status;
  }
}

/**
 * A server that will not copy a whole folder in one request (403, 405, 501, 502, or a 207
 * naming members it could not copy): the caller copies file by file instead.
 */
export class FolderCopyRefusedError extends StorageError {
  constructor(message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { retryable: false, ...options });
    this.name = 'FolderCopyRefusedError';
  }
}

/** Network-level failures worth another try. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ERR_STREAM_PREMATURE_CLOSE',
]);

/** The errno-style code of an error or of any error in its cause chain. */
export function networkCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return code;
    const errno = (e as { errno?: unknown }).errno;
    if (typeof errno === 'string' && TRANSIENT_CODES.has(errno)) return errno;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

const CONNECTION_HINTS: Record<string, string> = {
  ENOTFOUND: 'the server name does not resolve: check the url or endpoint, and DNS',
  EAI_AGAIN: 'the name server did not answer: check the network',
  ECONNREFUSED: 'nothing answers at that address: check the url or endpoint and that the server is up',
  ECONNRESET: 'the server or the network dropped the connection',
  ETIMEDOUT: 'the server did not answer: check the network',
  EHOSTUNREACH: 'the server cannot be reached: check the network',
  ENETUNREACH: 'the network is unreachable: check the network',
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server uses a self-signed TLS certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's TLS certificate cannot be verified",
};

/** What a connection-level failure means for the person reading the log. */
export function connectionHint(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CONNECTION_HINTS[code]) return CONNECTION_HINTS[code];
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Seconds or an HTTP date, as RFC 9110 allows; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** One classification of an HTTP status for every HTTP-speaking backend. */
export function httpStorageError(
  target: string,
  what: string,
  status: number,
  extra: { retryAfter?: string | null; cause?: unknown } = {},
): StorageError {
  if (status === 401 || status === 403) {
    return new StorageError(`target ${target}: ${what}: ${status} ${status === 401 ? 'Unauthorized' : 'Forbidden'}`, {
      retryable: false,
      status,
      hint: `check the credentials and permissions of target ${target}`,
      cause: extra.cause,
    });
  }
  if (status === 404) return new StorageError(`target ${target}: ${what}: not found`, { retryable: false, status, notFound: true, cause: extra.cause });
  if (status === 507) {
    return new StorageError(`target ${target}: ${what}: 507 Insufficient Storage`, {
      retryable: false,
      status,
      hint: `free some space on target ${target}`,
      cause: extra.cause,
    });
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  const retryAfterMs = parseRetryAfter(extra.retryAfter);
  return new StorageError(`target ${target}: ${what}: HTTP ${status}`, {
    retryable,
    status,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    cause: extra.cause,
  });
}
