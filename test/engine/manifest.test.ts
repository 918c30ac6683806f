import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import { jsonObjectBytes } from '../../src/text-bytes.js';
import {
  isPlainEntry,
  isSafeRelativePath,
  manifestEntrySchema,
  manifestBytes,
  manifestTsv,
  parseManifest,
  sortEntries,
  type Manifest,
  type ManifestEntry,
} from '../../src/engine/manifest.js';

const ID = '2026-11-22T030012Z';
const PARENT = '2026-11-16T030010Z';
const FULL = '2026-10-01T030011Z';
const SHA = 'ab'.repeat(32);

const file = (path: string, extra: Partial<ManifestEntry> = {}): ManifestEntry =>
  ({ path, type: 'file', size: 3, mtimeNs: '1700000000123456789', mode: 0o644, uid: 1000, gid: 1000, sha256: SHA, holder: ID, ...extra }) as ManifestEntry;
const dir = (path: string): ManifestEntry => ({ path, type: 'dir', mtimeNs: '1700000000000000000', mode: 0o755, uid: 0, gid: 0 });
const link = (path: string, target: string): ManifestEntry => ({ path, type: 'symlink', mtimeNs: '1', mode: 0o777, uid: 0, gid: 0, target });

function manifest(entries: ManifestEntry[], over: Partial<Manifest> = {}): Manifest {
  return {
    format: 1,
    job: 'documents',
    id: ID,
    level: 'daily',
    parent: PARENT,
    chain: [FULL, PARENT, ID],
    createdAt: '2026-11-22T03:00:12.000Z',
    roots: ['/data/documents'],
    entries,
    stats: { files: 1, dirs: 1, symlinks: 0, bytes: 3, storedFiles: 1, storedBytes: 3, deleted: 0 },
    ...over,
  };
}

function attempt<T>(fn: () => T): { value?: T; error?: { code: string; message: string } } {
  try {
    return { value: fn() };
  } catch (err) {
    return { error: { code: (err as CerberusError).code, message: (err as Error).message } };
  }
}

/** Parses `m` from one line of JSON and from manifestBytes' layout (an entry a line): both must agree. */
const parse = (m: unknown) => {
  const whole = attempt(() => parseManifest(JSON.stringify(m), 'test manifest'));
  const { entries, ...head } = m as { entries: unknown[] };
  const byLine = attempt(() => parseManifest(jsonObjectBytes(head, 'entries', entries), 'test manifest'));
  expect(byLine).toEqual(whole);
  if (whole.error) throw Object.assign(new CerberusError(whole.error.code as 'INTEGRITY', whole.error.message));
  return whole.value!;
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CerberusError);
    return (err as CerberusError).code;
  }
  return undefined;
}

describe('parseManifest', () => {
  it('accepts a well-formed manifest and returns its content', () => {
    const entries = [dir('a'), dir('a/b'), file('a/b/c.txt'), link('a/l', '../../etc/passwd'), file('top name with spaces')];
    const m = parse(manifest(entries));
    expect(m.entries).toEqual(entries);
    expect(m.chain).toEqual([FULL, PARENT, ID]);
  });

  it('accepts a file below an unlisted folder (the folder is implied)', () => {
    expect(parse(manifest([file('x/y/z')])).entries).toHaveLength(1);
  });

  it.each([
    ['../escape', 'a parent segment'],
    ['a/../../escape', 'a parent segment inside'],
    ['a/..', 'a trailing parent segment'],
    ['/etc/passwd', 'an absolute path'],
    ['a//b', 'an empty segment'],
    ['a/b/', 'a trailing slash'],
    ['./a', 'a dot segment'],
    ['', 'an empty path'],
    ['a\0b', 'a NUL byte'],
  ])('rejects %j (%s) with UNSAFE_PATH', (p) => {
    expect(codeOf(() => parse(manifest([dir('a'), file(p)])))).toBe('UNSAFE_PATH');
    expect(codeOf(() => parse(manifest([dir(p)])))).toBe('UNSAFE_PATH');
    expect(codeOf(() => parse(manifest([link(p, 'x')])))).toBe('UNSAFE_PATH');
  });

  it('rejects a path listed twice', () => {
    const code = codeOf(() => parse(manifest([file('a'), file('b'), file('a', { size: 9 })])));
    expect(code).toBeDefined();
    expect(['INTEGRITY', 'UNSAFE_PATH']).toContain(code);
    expect(() => parse(manifest([dir('a'), file('a')]))).toThrow(/a twice/);
  });

  it('rejects a file below a symlink, however deep', () => {
    expect(codeOf(() => parse(manifest([link('a', '/etc'), file('a/passwd')])))).toBe('UNSAFE_PATH');
    expect(codeOf(() => parse(manifest([dir('a'), link('a/b', '/tmp'), dir('a/b/c'), file('a/b/c/d')])))).toBe('UNSAFE_PATH');
    // listed after the entry below it: order does not matter
    expect(codeOf(() => parse(manifest([file('a/passwd'), link('a', '/etc')])))).toBe('UNSAFE_PATH');
    expect(() => parse(manifest([link('a', '/etc'), link('a/b', 'x')]))).toThrow(/through the symlink a\b/);
  });

  it('rejects an entry below a file', () => {
    expect(codeOf(() => parse(manifest([file('a'), file('a/b')])))).toBe('UNSAFE_PATH');
    expect(codeOf(() => parse(manifest([file('a'), dir('a/b')])))).toBe('UNSAFE_PATH');
  });

  it('rejects a chain that does not end with its id', () => {
    expect(codeOf(() => parse(manifest([], { chain: [FULL, PARENT] })))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([], { chain: [ID, PARENT] })))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([], { chain: [] })))).toBe('INTEGRITY');
    expect(() => parse(manifest([], { chain: [FULL, PARENT] }))).toThrow(/chain/);
  });

  it('rejects broken JSON and wrong shapes with INTEGRITY', () => {
    expect(codeOf(() => parseManifest('{"format":1', 'm'))).toBe('INTEGRITY');
    expect(codeOf(() => parse({ ...manifest([]), format: 2 }))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([file('a', { sha256: 'xyz' })])))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([file('a', { holder: 'yesterday' })])))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([file('a', { size: -1 })])))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([{ ...file('a'), type: 'fifo' } as unknown as ManifestEntry])))).toBe('INTEGRITY');
    expect(codeOf(() => parse(manifest([link('a', '')])))).toBe('INTEGRITY');
  });
});

describe('isPlainEntry', () => {
  it('takes the well-formed entries of every type, and accepts nothing the schema refuses or would change', () => {
    const good = [file('a/b.txt'), dir('a'), link('a/l', 'b.txt'), file('x', { size: 0, mtimeNs: '-5', uid: 0, gid: 0, mode: 0 })];
    for (const e of good) expect(isPlainEntry(e), e.path).toBe(true);
    const odd: unknown[] = [
      1, 2.5, -1, 2 ** 53, Number.NaN, Infinity, '3', '', 'x', '/abs', 'a/../b', null, undefined, true, {}, [], 'file', 'dir', 'symlink', 'ab'.repeat(32), 'AB'.repeat(32), '2026-11-22T030012Z', '12a', '-',
    ];
    let tried = 0;
    for (const base of good) {
      const keys = [...Object.keys(base), 'extra', 'target', 'size', 'holder'];
      for (const k of keys) {
        const without = { ...base } as Record<string, unknown>;
        delete without[k];
        for (const variant of [without, ...odd.map((v) => ({ ...base, [k]: v }))]) {
          tried++;
          const z = manifestEntrySchema.safeParse(variant);
          if (isPlainEntry(variant)) {
            expect(z.success, JSON.stringify(variant)).toBe(true);
            expect(z.data).toEqual(variant);
          }
        }
      }
    }
    expect(tried).toBeGreaterThan(300);
  });
});

describe('manifestBytes', () => {
  it('writes an entry a line, and parseManifest reads it back; a broken line is INTEGRITY', () => {
    const m = manifest([dir('ä'), file('ä/new\nline "q".txt'), link('ä/l', 'x')]);
    const bytes = manifestBytes(m);
    expect(bytes.toString('utf8').split('\n')).toHaveLength(m.entries.length + 2);
    expect(parseManifest(bytes, 'm')).toEqual(m);
    expect(parseManifest(manifestBytes(manifest([])), 'm').entries).toEqual([]);
    const noComma = Buffer.from(bytes.toString('utf8').replace('},\n', '}\n'));
    expect(codeOf(() => parseManifest(noComma, 'm'))).toBe('INTEGRITY');
    const cut = bytes.subarray(0, bytes.length - 10);
    expect(codeOf(() => parseManifest(cut, 'm'))).toBe('INTEGRITY');
  });
});

describe('isSafeRelativePath', () => {
  it('accepts names that only look odd', () => {
    for (const p of ['..a', 'a..', '...', 'a/.b', 'ü/日本/x y', 'a\\..\\b', '-rf']) expect(isSafeRelativePath(p), p).toBe(true);
  });
});

describe('sortEntries', () => {
  it('sorts by path so parents come before children', () => {
    const sorted = sortEntries([file('b'), file('a/b'), dir('a'), file('a b'), file('B')]).map((e) => e.path);
    expect(sorted).toEqual(['B', 'a', 'a b', 'a/b', 'b']);
  });
});

describe('manifestTsv', () => {
  it('writes one escaped line per entry under a header', () => {
    const entries = [
      file('tab\there', { size: 12, mode: 0o100640 }),
      file('new\nline\r', { size: 0 }),
      file('back\\slash'),
      link('l\tink', 'to\nwhere\\'),
      dir('d'),
    ];
    const tsv = manifestTsv(entries).toString('utf8');
    const lines = tsv.split('\n');
    expect(tsv.endsWith('\n')).toBe(true);
    expect(lines).toHaveLength(entries.length + 2); // header, entries, final empty string
    expect(lines[0]).toBe('# path\ttype\tsize\tmode\tmtime_ns\tsha256\tholder\tlink_target');
    const rows = lines.slice(1, -1).map((l) => l.split('\t'));
    for (const r of rows) expect(r).toHaveLength(8);
    expect(rows[0]).toEqual(['tab\\there', 'file', '12', '640', '1700000000123456789', SHA, ID, '']);
    expect(rows[1]![0]).toBe('new\\nline\\r');
    expect(rows[2]![0]).toBe('back\\\\slash');
    expect(rows[3]).toEqual(['l\\tink', 'symlink', '', '777', '1', '', '', 'to\\nwhere\\\\']);
    expect(rows[4]).toEqual(['d', 'dir', '', '755', '1700000000000000000', '', '', '']);
  });
});
