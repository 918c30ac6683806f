import { describe, expect, it } from 'vitest';
import { objectKey, objectStem, parseCopyName } from '../../src/worker/layout.js';
import { errorOf } from '../helpers/errors.js';

describe('where copies go', () => {
  it('is <bucket>/<path without its extension>/v<version>.gzip, .gzip.gpg when encrypted', () => {
    expect(objectKey(objectStem('car-erp', '/cars/id-1/thumbnail.png'), 1, false)).toBe('car-erp/cars/id-1/thumbnail/v1.gzip');
    expect(objectKey(objectStem('car-erp', 'cars//id-1/./thumbnail.png'), 12, true)).toBe('car-erp/cars/id-1/thumbnail/v12.gzip.gpg');
    expect(objectStem('b', '/a/archive.tar.gz')).toBe('b/a/archive.tar');
    expect(objectStem('b', '/a/.htaccess')).toBe('b/a/.htaccess');
    expect(objectStem('b', '/README')).toBe('b/README');
    expect(objectStem('b', '/a/Grüße 日本.pdf')).toBe('b/a/Grüße 日本');
  });

  it('refuses a Path that would leave the bucket\'s folder, or has no name', async () => {
    for (const p of ['/a/../../etc/passwd', '..', '/', '', 'a/\u0000b', 'a\nb']) {
      const err = await errorOf(Promise.resolve().then(() => objectStem('b', p)));
      expect(err.code).toBe('UNSAFE_PATH');
    }
  });

  it('reads a copy\'s version back from its name, and nothing else', () => {
    expect(parseCopyName('v3.gzip')).toEqual({ version: 3, encrypted: false });
    expect(parseCopyName('v10.gzip.gpg')).toEqual({ version: 10, encrypted: true });
    for (const n of ['v0.gzip', 'v1.gz', '.tmp-v1.gzip', 'v1.gzip.part-ab12', 'x']) expect(parseCopyName(n)).toBeUndefined();
  });
});
