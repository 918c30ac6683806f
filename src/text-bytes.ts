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

/**
 * Reads what jsonArrayBytes or jsonObjectBytes wrote, an item a line, without the text as
 * one string: `each` gets every item in order, parsed. Returns the head object (with the
 * array member empty; undefined for a bare array), or `false` when `buf` is laid out
 * otherwise, before calling `each`: older files are one line, to be parsed whole.
 * Throws SyntaxError for a broken line, as JSON.parse does.
 */
export function readJsonLines(buf: Buffer, each: (item: unknown, index: number) => void): { head: unknown } | false {
  const first = buf.indexOf(NL);
  const last = buf.lastIndexOf(NL);
  if (first < 0 || last === first) return false;
  const open = buf.toString('utf8', 0, first);
  const close = buf.toString('utf8', last + 1);
  const bare = open === '[';
  if (!open.endsWith(':[') && !bare) return false;
  if (close !== (bare ? ']' : ']}')) return false;
  const head: unknown = bare ? undefined : JSON.parse(open + close);
  let index = 0;
  for (let at = first + 1; at < last; ) {
    const eol = buf.indexOf(NL, at);
    const isLast = eol === last;
    const comma = buf[eol - 1] === COMMA;
    if (comma === isLast) throw new SyntaxError(`line ${index + 2}: ${isLast ? 'a comma after the last item' : 'no comma after an item'}`);
    each(JSON.parse(buf.toString('utf8', at, comma ? eol - 1 : eol)), index++);
    at = eol + 1;
  }
  return { head };
}
