import fs from 'node:fs';

/**
 * Big texts (a manifest, the hash cache, manifest.tsv) as UTF-8 bytes, built a batch of items
 * at a time. As one string, the text of 40,000 names is tens of megabytes, two bytes a
 * character once a single name is not Latin-1, and it lives beside the bytes made from it.
 */

const BATCH = 512;

/** `open`, the items joined by `sep`, then `close`, as UTF-8 pieces of a batch of items each. */
export function* joinedParts<T>(items: Iterable<T>, text: (item: T) => string, sep: string, open = '', close = ''): Generator<Buffer> {
  yield Buffer.from(open);
  let batch: string[] = [];
  let first = true;
  for (const item of items) {
    batch.push(text(item));
    if (batch.length === BATCH) {
      yield Buffer.from((first ? '' : sep) + batch.join(sep));
      first = false;
      batch = [];
    }
  }
  if (batch.length > 0) yield Buffer.from((first ? '' : sep) + batch.join(sep));
  yield Buffer.from(close);
}

/** The same, whole. */
export const joinedBytes = <T>(items: Iterable<T>, text: (item: T) => string, sep: string, open = '', close = ''): Buffer =>
  Buffer.concat([...joinedParts(items, text, sep, open, close)]);

/** A JSON array of `items`, one per line. */
export const jsonArrayParts = (items: Iterable<unknown>): Generator<Buffer> => joinedParts(items, (i) => JSON.stringify(i), ',\n', '[\n', '\n]');

export const jsonArrayBytes = (items: Iterable<unknown>): Buffer => Buffer.concat([...jsonArrayParts(items)]);

/** `head`'s JSON with one more member, `key`, the array of `items`, one per line. */
export function jsonObjectParts(head: object, key: string, items: Iterable<unknown>): Generator<Buffer> {
  const h = JSON.stringify(head);
  const open = `${h.slice(0, -1)}${h === '{}' ? '' : ','}${JSON.stringify(key)}:[\n`;
  return joinedParts(items, (i) => JSON.stringify(i), ',\n', open, '\n]}');
}

export const jsonObjectBytes = (head: object, key: string, items: Iterable<unknown>): Buffer => Buffer.concat([...jsonObjectParts(head, key, items)]);

const NL = 0x0a;
const COMMA = 0x2c;

/** Bytes to read a piece at a time: one buffer, or what gives the pieces afresh at each call (a file's). */
export type ByteSource = Uint8Array | (() => Iterable<Uint8Array>);

const PIECE = 1 << 20;

/** A file's bytes, a MiB at a time, read when iterated (into one buffer: a piece is valid until the next). */
export function fileBytes(file: string): () => Iterable<Uint8Array> {
  return function* () {
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.allocUnsafe(PIECE);
      for (let n = fs.readSync(fd, buf, 0, PIECE, null); n > 0; n = fs.readSync(fd, buf, 0, PIECE, null)) yield buf.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  };
}

export function wholeBytes(src: ByteSource): Buffer {
  return src instanceof Uint8Array ? Buffer.from(src.buffer, src.byteOffset, src.byteLength) : Buffer.concat([...src()].map((b) => Buffer.from(b)));
}

/**
 * Reads what jsonArrayBytes or jsonObjectBytes wrote, an item a line, without the text as
 * one string or (from a file) one buffer: `each` gets every item in order, parsed. Returns
 * the head object (with the array member empty; undefined for a bare array), or `false` when
 * the first line says the bytes are laid out otherwise, before calling `each`: older files
 * are one line, to be parsed whole. Throws SyntaxError for a broken line, as JSON.parse does.
 */
export function readJsonLines(src: ByteSource, each: (item: unknown, index: number) => void): { head: unknown } | false {
  let open: string | undefined;
  let bare = false;
  let index = 0;
  /** the last item had no comma: it must have been the last */
  let ended = false;
  const line = (b: Uint8Array): boolean => {
    const text = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    if (open === undefined) {
      open = text.toString('utf8');
      bare = open === '[';
      return bare || open.endsWith(':[');
    }
    if (ended) throw new SyntaxError(`line ${index + 2}: no comma after the item before it`);
    if (index === 0 && text.length === 0) {
      ended = true; // an empty list: its only line is empty
      return true;
    }
    const comma = text[text.length - 1] === COMMA;
    ended = !comma;
    each(JSON.parse(text.toString('utf8', 0, comma ? text.length - 1 : text.length)), index++);
    return true;
  };
  // the start of a line that a piece cut off
  let carry: Buffer | undefined;
  for (const piece of src instanceof Uint8Array ? [src] : src()) {
    let at = 0;
    for (let eol = piece.indexOf(NL); eol >= 0; eol = piece.indexOf(NL, at)) {
      const ok = line(carry ? Buffer.concat([carry, piece.subarray(at, eol)]) : piece.subarray(at, eol));
      if (!ok) return false;
      carry = undefined;
      at = eol + 1;
    }
    if (at < piece.length) carry = carry ? Buffer.concat([carry, piece.subarray(at)]) : Buffer.from(piece.subarray(at));
    // a first line this long is no head: an older file of one line
    if (open === undefined && carry !== undefined && carry.length > PIECE) return false;
  }
  // what follows the last newline closes the array, and the object around it
  const close = carry?.toString('utf8') ?? '';
  if (open === undefined) return false;
  if (close !== (bare ? ']' : ']}')) throw new SyntaxError(`the last line is ${JSON.stringify(close.slice(0, 20))}, not the end of the list`);
  if (index > 0 && !ended) throw new SyntaxError(`line ${index + 1}: a comma after the last item`);
  return { head: bare ? undefined : JSON.parse(open + close) };
}
