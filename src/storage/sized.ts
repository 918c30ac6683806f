import { Transform } from 'node:stream';

/** A part of a body to pass on: skip bytes, then at most `limit`. */
export interface Window {
  skip: number;
  limit?: number;
}

/**
 * Passes a body through and fails it when it does not hold exactly `expected` bytes: an
 * upload whose source lied about its size, or a download cut short (which must fail the
 * read, not end it). With a window, only that part is passed on, for servers that answer a
 * range request with more than was asked. `onChunk` sees every byte of the body.
 */
export function sizedBody(
  expected: number | undefined,
  mismatch: (got: number) => Error,
  opts: { window?: Window; onChunk?: (chunk: Buffer) => void } = {},
): Transform {
  const { window, onChunk } = opts;
  let got = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const at = got;
      got += chunk.length;
      if (expected !== undefined && got > expected) return cb(mismatch(got));
      onChunk?.(chunk);
      if (!window) return cb(null, chunk);
      const from = Math.max(0, window.skip - at);
      const to = window.limit === undefined ? chunk.length : Math.min(chunk.length, window.skip + window.limit - at);
      cb(null, from < to ? chunk.subarray(from, to) : undefined);
    },
    flush(cb) {
      cb(expected !== undefined && got !== expected ? mismatch(got) : null);
    },
  });
}
