/**
 * Big texts (a manifest, the hash cache, manifest.tsv) as UTF-8 bytes, built a batch of items
 * at a time. As one string, the text of 40,000 names is tens of megabytes, two bytes a
 * character once a single name is not Latin-1, and it lives beside the bytes made from it.
 */

const BATCH = 512;

/** `open`, the items joined by `sep`, then `close`, as UTF-8. */
export function joinedBytes<T>(items: Iterable<T>, text: (item: T) => string, sep: string, open = '', close = ''): Buffer {
  const parts: Buffer[] = [Buffer.from(open)];
  let batch: string[] = [];
  let first = true;
  const flush = () => {
    if (batch.length === 0) return;
    parts.push(Buffer.from((first ? '' : sep) + batch.join(sep)));
    first = false;
    batch = [];
  };
  for (const item of items) {
    batch.push(text(item));
    if (batch.length === BATCH) flush();
  }
  flush();
  parts.push(Buffer.from(close));
  return Buffer.concat(parts);
}

/** A JSON array of `items`, one per line. */
export const jsonArrayBytes = (items: Iterable<unknown>): Buffer => joinedBytes(items, (i) => JSON.stringify(i), ',\n', '[\n', '\n]');

/** `head`'s JSON with one more member, `key`, the array of `items`, one per line. */
export function jsonObjectBytes(head: object, key: string, items: Iterable<unknown>): Buffer {
  const h = JSON.stringify(head);
  const open = `${h.slice(0, -1)}${h === '{}' ? '' : ','}${JSON.stringify(key)}:[\n`;
  return joinedBytes(items, (i) => JSON.stringify(i), ',\n', open, '\n]}');
}
