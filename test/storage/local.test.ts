import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorOf } from '../helpers/errors.js';
import { fileBody, joinPath, removeTree } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';

let root: string;
let b: LocalBackend;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-local-'));
  b = new LocalBackend(root);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const body = (...parts: Array<string | Buffer>) => () => Readable.from(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
const put = (p: string, data: string | Buffer) => b.put(p, body(data), Buffer.byteLength(data));
const read = async (p: string, range?: { start: number; end?: number }) => {
  const out: Buffer[] = [];
  for await (const c of await b.get(p, range)) out.push(c as Buffer);
  return Buffer.concat(out).toString();
};
/** every entry under root, temp files included */
async function everything(dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(path.relative(root, p));
    if (e.isDirectory()) out.push(...(await everything(p)));
  }
  return out.sort();
}

describe('LocalBackend', () => {
  it('declares what it can do', () => {
    expect(b.capabilities).toMatchObject({ atomicPut: true, move: true, serverSideCopy: true, hardLink: true });
    expect(b.description).toBe(`local:${root}`);
  });

  it('puts and gets a file, creating its folders', async () => {
    await b.put('a/b/c.txt', body('hello ', 'world'), 11);
    expect(await read('a/b/c.txt')).toBe('hello world');
    expect(await fsp.readFile(path.join(root, 'a/b/c.txt'), 'utf8')).toBe('hello world');
    expect(await everything()).toEqual(['a', 'a/b', 'a/b/c.txt']);
  });

  it('gets a byte range, end inclusive', async () => {
    await put('r', '0123456789');
    expect(await read('r', { start: 3, end: 5 })).toBe('345');
    expect(await read('r', { start: 7 })).toBe('789');
    expect(await read('r', { start: 0, end: 0 })).toBe('0');
    expect(await read('r', { start: 9, end: 100 })).toBe('9');
  });

  it('reads a small file in one piece of its own size, a big one in pieces of 1 MiB, and a range past the end as nothing', async () => {
    const pieces = async (p: string, range?: { start: number; end?: number }) => {
      const out: Buffer[] = [];
      for await (const c of await b.get(p, range)) out.push(c as Buffer);
      return out;
    };
    const small = Buffer.alloc(5000, 1);
    await put('s', small);
    const got = await pieces('s');
    expect(got).toHaveLength(1);
    expect(got[0]!.equals(small)).toBe(true);
    // reads sized to the file: each read allocates its whole buffer, 1 MiB for a 5 KB file before
    const s = await b.get('s');
    expect(s.readableHighWaterMark).toBe(5000);
    s.destroy();
    const big = Buffer.alloc(2.5 * (1 << 20), 2);
    await put('b', big);
    expect((await pieces('b')).map((c) => c.length)).toEqual([1 << 20, 1 << 20, 0.5 * (1 << 20)]);
    expect(await pieces('s', { start: 5000 })).toEqual([]);
    expect(Buffer.concat(await pieces('s', { start: 4990, end: 1_000_000 })).length).toBe(10);
  });

  it('overwrites a file whole', async () => {
    await put('f', 'first version, long');
    await put('f', 'second');
    expect(await read('f')).toBe('second');
    expect(await everything()).toEqual(['f']);
  });

  it('fails a put whose size is wrong and leaves nothing behind', async () => {
    const e = await errorOf(b.put('dir/f', body('12345'), 6));
    expect(e.code).toBe('STORAGE');
    expect(e.message).toMatch(/wrote 5 bytes .*expected 6/);
    expect(await b.stat('dir/f')).toBeUndefined();
    expect(await everything()).toEqual(['dir']);
    expect((await errorOf(b.put('dir/g', body('1234567'), 6))).code).toBe('STORAGE');
    expect(await everything()).toEqual(['dir']);
  });

  it('copies a body that is a local file without reading it through, size checked, the source left alone', async () => {
    const src = path.join(os.tmpdir(), `cerb-local-src-${process.pid}`);
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 'volume ');
    await fsp.writeFile(src, data);
    try {
      const hinted = fileBody(src);
      expect(hinted.file).toBe(src);
      await b.put('gen/data.tar.gpg.0001', hinted, data.length);
      expect((await fsp.readFile(path.join(root, 'gen/data.tar.gpg.0001'))).equals(data)).toBe(true);
      expect((await fsp.readFile(src)).equals(data)).toBe(true);
      // the hint changes nothing about the checks: a wrong size fails and leaves nothing
      expect((await errorOf(b.put('gen/data.tar.gpg.0002', fileBody(src), data.length + 1))).code).toBe('STORAGE');
      expect(await everything()).toEqual(['gen', 'gen/data.tar.gpg.0001']);
      // a source gone is an IO error, not a silent empty file
      expect((await errorOf(b.put('gen/x', fileBody(`${src}.absent`), 1))).code).toBe('IO');
      expect(await b.stat('gen/x')).toBeUndefined();
    } finally {
      await fsp.rm(src, { force: true });
    }
  });

  it('keeps the old file when a put over it fails', async () => {
    await put('keep', 'old content');
    expect((await errorOf(b.put('keep', body('new'), 99))).code).toBe('STORAGE');
    const broken = () =>
      Readable.from(
        (async function* () {
          yield Buffer.from('partial');
          throw new Error('connection reset');
        })(),
      );
    const e = await errorOf(b.put('keep', broken, 100));
    expect(e.code).toBe('IO');
    expect(await read('keep')).toBe('old content');
    expect(await everything()).toEqual(['keep']);
  });

  it('handles names with spaces, #, %, ?, unicode, and empty files', async () => {
    const names = ['with space.txt', 'hash#tag', '100%', 'what?', 'ünïcödé 日本語.txt', 'a%20b', 'plus+sign', "quote'\"", 'semi;colon', 'amp&er=sand'];
    for (const n of names) await put(`odd dir #1/${n}`, `content of ${n}`);
    await put('odd dir #1/empty', '');
    for (const n of names) expect(await read(`odd dir #1/${n}`)).toBe(`content of ${n}`);
    expect(await read('odd dir #1/empty')).toBe('');
    expect(await b.stat('odd dir #1/empty')).toEqual({ name: 'empty', size: 0, isDir: false });
    const listed = await b.list('odd dir #1');
    expect(listed.map((e) => e.name).sort()).toEqual([...names, 'empty'].sort());
    // the names on disk are the names given: no escaping
    expect((await fsp.readdir(path.join(root, 'odd dir #1'))).sort()).toEqual([...names, 'empty'].sort());
  });

  it('stats files and folders, and nothing for what is absent', async () => {
    await put('d/f', 'abc');
    expect(await b.stat('d/f')).toEqual({ name: 'f', size: 3, isDir: false });
    expect(await b.stat('d')).toMatchObject({ name: 'd', isDir: true });
    expect(await b.stat('d/absent')).toBeUndefined();
    expect(await b.stat('absent/deeper')).toBeUndefined();
  });

  it('lists direct children, sorted, with sizes; an absent folder is empty', async () => {
    await put('l/b.txt', '22');
    await put('l/a.txt', '1');
    await put('l/sub/deep.txt', 'x');
    await b.mkdir('l/empty');
    expect(await b.list('l')).toEqual([
      { name: 'a.txt', size: 1, isDir: false },
      { name: 'b.txt', size: 2, isDir: false },
      { name: 'empty', size: 0, isDir: true },
      { name: 'sub', size: 0, isDir: true },
    ]);
    expect(await b.list('nothing/here')).toEqual([]);
    expect(await b.list('')).toEqual([{ name: 'l', size: 0, isDir: true }]);
  });

  it('removes files and empty folders; absent is fine; a full folder is not removed', async () => {
    await put('x/f', 'f');
    await b.remove('x/f');
    expect(await b.stat('x/f')).toBeUndefined();
    await b.remove('x/f');
    await b.remove('never/was');
    await put('x/g', 'g');
    const e = await errorOf(b.remove('x'));
    expect(e.code).toBe('IO');
    expect(await read('x/g')).toBe('g');
    await b.remove('x/g');
    await b.remove('x');
    expect(await everything()).toEqual([]);
  });

  it('removes a tree through the interface', async () => {
    await put('t/a', '1');
    await put('t/b/c', '2');
    await b.mkdir('t/b/d/e');
    await put('other', '3');
    await removeTree(b, 't');
    expect(await everything()).toEqual(['other']);
  });

  it('makes folders, nested, and again without error', async () => {
    await b.mkdir('m/n/o');
    await b.mkdir('m/n/o');
    expect(await b.stat('m/n/o')).toMatchObject({ isDir: true });
  });

  it('moves files and folders, creating the new parent', async () => {
    await put('from/f', 'file');
    await put('from/sub/g', 'deep');
    await b.move('from/f', 'to/here/f2');
    expect(await read('to/here/f2')).toBe('file');
    expect(await b.stat('from/f')).toBeUndefined();
    await b.move('from', 'moved');
    expect(await read('moved/sub/g')).toBe('deep');
    expect(await b.stat('from')).toBeUndefined();
    expect((await errorOf(b.move('absent', 'x'))).code).toBe('IO');
  });

  it('copies by hard link: same inode, same content', async () => {
    await put('src/f', 'shared bytes');
    await b.copy('src/f', 'dst/deeper/f');
    const [s, d] = await Promise.all([fsp.stat(path.join(root, 'src/f')), fsp.stat(path.join(root, 'dst/deeper/f'))]);
    expect(d.ino).toBe(s.ino);
    expect(d.dev).toBe(s.dev);
    expect(s.nlink).toBe(2);
    expect(await read('dst/deeper/f')).toBe('shared bytes');
    // a later put replaces the name, not the shared inode: the copy keeps its content
    await put('src/f', 'changed');
    expect(await read('dst/deeper/f')).toBe('shared bytes');
    expect((await errorOf(b.copy('src/f', 'dst/deeper/f'))).code).toBe('IO');
  });

  it('gives NOT_FOUND for a missing file at get time, not mid-stream', async () => {
    const e = await errorOf(b.get('nope'));
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toContain('nope');
  });

  it("refuses paths with '..' and ignores empty and '.' segments", async () => {
    for (const p of ['../escape', 'a/../../escape', 'a/..']) {
      await expect(b.put(p, body('x'), 1)).rejects.toThrow(/\.\./);
      await expect(b.stat(p)).rejects.toThrow(/\.\./);
    }
    await put('./a//b/./c', 'ok');
    expect(await read('a/b/c')).toBe('ok');
    expect(await fsp.readdir(path.dirname(root))).not.toContain('escape');
  });

  it('joins paths the same way', () => {
    expect(joinPath('a/', '/b', './c', '', 'd/e')).toBe('a/b/c/d/e');
    expect(joinPath('', '')).toBe('');
  });

  it('writes an unpublished put in place, never into a hard link it replaces, and leaves no partial file on failure', async () => {
    for (const [size, deferSync] of [[100, true], [300_000, true], [100, false]] as const) {
      await fsp.rm(path.join(root, 'g'), { recursive: true, force: true });
      const old = Buffer.alloc(size, 1);
      await put('g/old/f', old);
      await b.copyTree('g/old', 'g/new'); // hard links, as a vault generation starts
      const data = Buffer.alloc(size + 3, 2);
      await b.put('g/new/f', () => Readable.from([data]), data.length, { deferSync, unpublished: true });
      await b.flush();
      expect(await fsp.readFile(path.join(root, 'g/new/f'))).toEqual(data);
      expect(await fsp.readFile(path.join(root, 'g/old/f'))).toEqual(old); // the committed copy is whole
      expect((await fsp.stat(path.join(root, 'g/old/f'))).nlink).toBe(1);
      expect((await everything()).filter((e) => e.includes('.tmp-'))).toEqual([]);
      // a put of the wrong size leaves nothing at the name
      expect((await errorOf(b.put('g/new/bad', () => Readable.from([data]), data.length + 1, { deferSync, unpublished: true }))).code).toBe('STORAGE');
      expect((await everything()).filter((e) => e.startsWith('g/new/bad'))).toEqual([]);
    }
  });

  it('links a handed-over file into place on the same file system, and copies it otherwise', async () => {
    const spool = path.join(root, 'spool');
    await fsp.mkdir(spool);
    const data = Buffer.alloc(70_000, 7);
    for (const [name, handOver] of [['linked', true], ['copied', false]] as const) {
      const file = path.join(spool, name);
      await fsp.writeFile(file, data, { mode: 0o600 });
      await b.put(`gen/${name}`, fileBody(file), data.length, { handOver });
      const [src, dst] = await Promise.all([fsp.stat(file), fsp.stat(path.join(root, 'gen', name))]);
      expect(dst.ino === src.ino, name).toBe(handOver);
      expect(dst.mode & 0o777, name).toBe(0o600); // as the spool's, linked or copied
      await fsp.rm(file); // what the caller does with a file it handed over
      expect(await fsp.readFile(path.join(root, 'gen', name))).toEqual(data);
    }
    // the wrong size is refused after the link too, and nothing is left at the name
    const file = path.join(spool, 'short');
    await fsp.writeFile(file, data);
    expect((await errorOf(b.put('gen/short', fileBody(file), data.length + 1, { handOver: true }))).code).toBe('STORAGE');
    expect((await everything()).filter((e) => e.startsWith('gen/short') || e.includes('.tmp-'))).toEqual([]);
    expect(await fsp.readFile(file)).toEqual(data);
  });

  describe('deferred durability (deferSync, flush)', () => {
    const deferred = (backend: LocalBackend, p: string, data: Buffer, size = data.length) =>
      backend.put(p, () => Readable.from([data]), size, { deferSync: true });

    it('writes small deferred puts whole, syncs the file system once per flush, and in the background in between', async () => {
      const syncs: string[] = [];
      const d = new LocalBackend(root, { syncFileSystem: async (dir) => void syncs.push(dir), writeBehindBytes: 100_000 });
      await d.flush();
      expect(syncs).toEqual([]); // nothing deferred: nothing to do
      const files = Array.from({ length: 12 }, (_, i) => ({ p: `v/${i % 3}/f${i}`, data: Buffer.alloc(20_000 + i, i) }));
      for (const f of files) await deferred(d, f.p, f.data);
      // one probe (sync -f works here), then a write-behind per 100,000 bytes of the 240,066
      expect(syncs).toEqual([root, root, root]);
      await d.flush();
      expect(syncs).toHaveLength(4);
      await d.flush();
      expect(syncs).toHaveLength(4); // flushed already
      for (const f of files) expect(await fsp.readFile(path.join(root, f.p))).toEqual(f.data);
      expect((await everything()).filter((e) => e.includes('.tmp-'))).toEqual([]);
    });

    it('fails a deferred put of the wrong size and leaves nothing behind', async () => {
      const d = new LocalBackend(root, { syncFileSystem: async () => undefined });
      const short = await errorOf(deferred(d, 'x/short', Buffer.alloc(10), 11));
      expect(short.code).toBe('STORAGE');
      expect(short.message).toMatch(/wrote 10 bytes of x\/short, expected 11/);
      expect((await errorOf(deferred(d, 'x/long', Buffer.alloc(12), 11))).code).toBe('STORAGE');
      expect(await everything()).toEqual([]);
    });

    it('reports a failed background sync at the flush, where the commit would follow', async () => {
      let calls = 0;
      const d = new LocalBackend(root, {
        syncFileSystem: async () => {
          if (++calls === 2) throw new Error('sync: error syncing: Input/output error');
        },
        writeBehindBytes: 1,
      });
      await deferred(d, 'a', Buffer.from('first'));
      const e = await errorOf(d.flush());
      expect(e.code).toBe('STORAGE');
      expect(e.message).toMatch(/cannot write the new files out to the disk: sync: error syncing: Input\/output error/);
      expect(e.hint).toMatch(/this run commits nothing/);
      // the kernel reports such an error once: a later flush must not pass
      expect((await errorOf(d.flush())).code).toBe('STORAGE');
    });

    it('syncs every put itself where `sync -f` cannot run, and then has nothing to flush', async () => {
      let calls = 0;
      const d = new LocalBackend(root, {
        syncFileSystem: async () => {
          calls++;
          throw Object.assign(new Error('spawn sync ENOENT'), { code: 'ENOENT' });
        },
      });
      await deferred(d, 'n/a', Buffer.from('no sync binary'));
      await d.flush();
      expect(calls).toBe(1); // the probe only
      expect(await read('n/a')).toBe('no sync binary');
    });

    it('flushes for real with coreutils sync', async () => {
      await deferred(b, 'real/f', Buffer.from('on the disk'));
      await b.flush();
      expect(await read('real/f')).toBe('on the disk');
    });
  });
});
