import { describe, expect, it } from 'vitest';
import { StorageError, connectionHint, httpStorageError, networkCode, parseRetryAfter } from '../../src/storage/errors.js';

describe('storage error classification', () => {
  it('retries 408, 429 and 5xx; never 401, 403, 404 or 507', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) expect(httpStorageError('t', 'put x', s).retryable, String(s)).toBe(true);
    for (const s of [400, 401, 403, 404, 409, 412, 507]) expect(httpStorageError('t', 'put x', s).retryable, String(s)).toBe(false);
    expect(httpStorageError('t', 'get x', 404)).toMatchObject({ code: 'NOT_FOUND' });
    const auth = httpStorageError('pcloud', 'put x', 401);
    expect(auth.message).toBe('target pcloud: put x: 401 Unauthorized');
    expect(auth.hint).toBe('check the credentials and permissions of target pcloud');
    expect(httpStorageError('usb', 'put x', 507).hint).toMatch(/free some space on target usb/);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(parseRetryAfter('7')).toBe(7000);
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(parseRetryAfter('Sun, 22 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(httpStorageError('t', 'put x', 429, { retryAfter: '3' }).retryAfterMs).toBe(3000);
  });

  it('finds network codes and their meaning anywhere in the cause chain', () => {
    const deep = new Error('fetch failed', { cause: Object.assign(new Error('getaddrinfo'), { code: 'ENOTFOUND' }) });
    expect(connectionHint(deep)).toMatch(/does not resolve/);
    expect(networkCode(deep)).toBeUndefined(); // a wrong host name is not worth retrying
    const reset = new Error('socket', { cause: Object.assign(new Error('read'), { code: 'ECONNRESET' }) });
    expect(networkCode(reset)).toBe('ECONNRESET');
    expect(connectionHint(new StorageError('x', { retryable: false }))).toBeUndefined();
  });
});
