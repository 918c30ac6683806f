/**
 * One suite, every backend: the same verbs with the same expectations against a local
 * folder, a real Apache mod_dav server and a real s3rver, each opened the way cerberus
 * opens targets (openBackend: retry, limits and timeouts around the backend).
 */
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TargetConfig, TargetTransport } from '../../src/config/index.js';
import { copyFolder, fileBody, joinPath, openBackend, type Backend } from '../../src/storage/index.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { TEST_TMP } from '../helpers/cli.js';
import { errorOf } from '../helpers/errors.js';

const transport: TargetTransport = { retries: 2, timeoutMs: 30_000, concurrency: 4, bwlimit: undefined };

interface Subject {
  name: string;
  /** how copyFolder copies on this backend */
  folderCopy: 'tree' | 'files';
  setup(): Promise<TargetConfig>;
  teardown(): Promise<void>;
}

let apache: ApacheServer | undefined;
let s3: S3Server | undefined;
let localDir: string | undefined;

const subjects: Subject[] = [
  {
    name: 'local',
    folderCopy: 'tree',
    async setup() {
      localDir = await fsp.mkdtemp(path.join(TEST_TMP, 'cerberus-conf-local-'));
      return { name: 'usb', type: 'local', path: localDir, ...transport };
    },
    async teardown() {
      if (localDir) await fsp.rm(localDir, { recursive: true, force: true });
    },
  },
  {
    name: 'webdav (Apache mod_dav)',
    folderCopy: 'tree',
    async setup() {
      apache = await startApache();
      return {
        name: 'dav', type: 'webdav', url: apache.url, username: apache.username, password: apache.password, path: 'repo/documents',
        verify: 'size', ...transport,
      };
    },
    async teardown() {
      await apache?.stop();
    },
  },
  {
    name: 's3 (s3rver)',
    // S3 has no folders to copy: CopyObject per file
    folderCopy: 'files',
    async setup() {
      s3 = await startS3rver({ bucket: 'backups' });
      return {
        name: 's3', type: 's3', bucket: s3.bucket, prefix: 'documents', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true,
        accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: undefined, checksums: 'when_required',
        partSize: 16 * 2 ** 20, storageClass: undefined, ...transport,
      };
    },
    async teardown() {
      await s3?.stop();
    },
  },
];

async function readAll(backend: Backend, p: string, range?: { start: number; end?: number }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of await backend.get(p, range)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const put = (backend: Backend, p: string, data: Buffer) => backend.put(p, () => Readable.from([data]), data.length);

/** A deterministic stream of `size` bytes whose every MiB differs, hashed as it is produced. */
function bigStream(size: number, seed: Buffer): Readable {
  const block = 1 << 20;
  let sent = 0;
  let n = 0;
  return new Readable({
    read() {
      if (sent >= size) return this.push(null);
      const len = Math.min(block, size - sent);
      const chunk = Buffer.alloc(len);
      seed.copy(chunk, 0, 0, Math.min(seed.length, len));
      if (len >= 8) chunk.writeBigUInt64BE(BigInt(n++), 0);
      sent += len;
      this.push(chunk);
    },
  });
}

/** every file under dir with its size, by path relative to dir */
async function tree(backend: Backend, dir: string, rel = ''): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  for (const e of await backend.list(joinPath(dir, rel))) {
    const p = joinPath(rel, e.name);
    if (e.isDir) out.push(...(await tree(backend, dir, p)));
    else out.push([p, e.size]);
  }
  return out;
}

async function inBatches<T>(items: T[], n: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(each));
}

async function sha256Of(stream: Readable): Promise<{ hash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hash: h.digest('hex'), size };
}

for (const subject of subjects) {
  describe(`backend conformance: ${subject.name}`, () => {
    let backend: Backend;
    beforeAll(async () => {
      backend = openBackend(await subject.setup(), { retryBaseDelayMs: 50 });
    }, 60_000);
    afterAll(() => subject.teardown());

    it('puts and gets exact bytes, including empty and 1-byte files, and replaces on a second put', async () => {
      const data = randomBytes(200_000);
      await put(backend, 'a/data.bin', data);
      await put(backend, 'a/empty', Buffer.alloc(0));
      await put(backend, 'a/one', Buffer.from('x'));
      expect((await readAll(backend, 'a/data.bin')).equals(data)).toBe(true);
      expect((await readAll(backend, 'a/empty')).length).toBe(0);
      expect((await readAll(backend, 'a/one')).toString()).toBe('x');
      const again = randomBytes(1000);
      await put(backend, 'a/data.bin', again);
      expect((await readAll(backend, 'a/data.bin')).equals(again)).toBe(true);
      expect(await backend.stat('a/empty')).toMatchObject({ size: 0, isDir: false });
    });

    it('handles names with spaces, #, %, ? and unicode', async () => {
      const names = ['with space.txt', 'hash#tag', '100% sure', 'what?.txt', 'café ☕ 日本.txt', 'plus+and&amp'];
      for (const [i, n] of names.entries()) await put(backend, `names/${n}`, Buffer.from(`file ${i}`));
      const listed = (await backend.list('names')).map((e) => e.name);
      expect(listed).toEqual([...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      for (const [i, n] of names.entries()) {
        expect((await readAll(backend, `names/${n}`)).toString()).toBe(`file ${i}`);
        expect((await backend.stat(`names/${n}`))?.size).toBe(`file ${i}`.length);
      }
      await put(backend, 'dir with space#1/inner ?.txt', Buffer.from('deep'));
      expect((await readAll(backend, 'dir with space#1/inner ?.txt')).toString()).toBe('deep');
    });

    it('lists direct children only, sorted, with folders flagged; an absent folder lists empty', async () => {
      await put(backend, 'l/b.txt', Buffer.from('bb'));
      await put(backend, 'l/a.txt', Buffer.from('a'));
      await put(backend, 'l/sub/deep/c.txt', Buffer.from('ccc'));
      expect(await backend.list('l')).toEqual([
        { name: 'a.txt', size: 1, isDir: false },
        { name: 'b.txt', size: 2, isDir: false },
        { name: 'sub', size: 0, isDir: true },
      ]);
      expect(await backend.list('nothing/here')).toEqual([]);
      expect((await backend.stat('l/sub'))?.isDir).toBe(true);
      expect(await backend.stat('l/missing')).toBeUndefined();
    });

    it('reads byte ranges', async () => {
      const data = randomBytes(100_000);
      await put(backend, 'r/data', data);
      expect((await readAll(backend, 'r/data', { start: 10, end: 19 })).equals(data.subarray(10, 20))).toBe(true);
      expect((await readAll(backend, 'r/data', { start: 99_000 })).equals(data.subarray(99_000))).toBe(true);
      expect((await readAll(backend, 'r/data', { start: 0, end: 0 })).equals(data.subarray(0, 1))).toBe(true);
    });

    it('reports a missing object as NOT_FOUND', async () => {
      const err = await errorOf(readAll(backend, 'no/such/file'));
      expect(err).toMatchObject({ code: 'NOT_FOUND' });
    });

    it('removes files and empty folders; absent is not an error', async () => {
      await put(backend, 'rm/x', Buffer.from('x'));
      await backend.remove('rm/x');
      expect(await backend.stat('rm/x')).toBeUndefined();
      await backend.remove('rm/x');
      await backend.remove('rm');
      expect(await backend.list('rm')).toEqual([]);
    });

    it('creates folders with their parents; existing is fine', async () => {
      await backend.mkdir('m/n/o');
      await backend.mkdir('m/n/o');
      await put(backend, 'm/n/o/f', Buffer.from('f'));
      expect((await backend.list('m/n')).map((e) => e.name)).toEqual(['o']);
    });

    it('moves files and whole folders when it can, and never over an existing target', async () => {
      if (!backend.move) {
        expect(backend.capabilities.move).toBe(false);
        return;
      }
      expect(backend.capabilities.move).toBe(true);
      await put(backend, 'mv/.incomplete-1/v.0001', Buffer.from('volume'));
      await put(backend, 'mv/.incomplete-1/SUMS', Buffer.from('sums'));
      await backend.move('mv/.incomplete-1', 'mv/1');
      expect((await backend.list('mv')).map((e) => e.name)).toEqual(['1']);
      expect((await readAll(backend, 'mv/1/v.0001')).toString()).toBe('volume');
      await put(backend, 'mv/f', Buffer.from('f'));
      await put(backend, 'mv/g', Buffer.from('g'));
      await expect(backend.move('mv/f', 'mv/g')).rejects.toThrow();
      expect((await readAll(backend, 'mv/g')).toString()).toBe('g');
    });

    it('copies a file on the server side when it can', async () => {
      if (!backend.copy) {
        expect(backend.capabilities.serverSideCopy).toBe(false);
        return;
      }
      const data = randomBytes(5000);
      await put(backend, 'cp/src', data);
      await backend.copy('cp/src', 'cp/dst');
      expect((await readAll(backend, 'cp/dst')).equals(data)).toBe(true);
      expect((await readAll(backend, 'cp/src')).equals(data)).toBe(true);
    });

    it('copies a whole folder on the server side; changing the copy leaves the source alone', async () => {
      const files = new Map<string, Buffer>([
        ['empty', Buffer.alloc(0)],
        ['big.bin', randomBytes(200 * 1024)],
        // (s3rver-main.mjs mends s3rver's CopyObject decoding of '#', '?' and '+')
        ['café ☕/日本 100% sure.c9r', Buffer.from('unicode')],
        ['c9r/Zm9v#b?a+r==.c9r', Buffer.from('cryptomator-like name')],
        ['a/b/c/deep.txt', Buffer.from('deep')],
      ]);
      for (let d = 0; d < 20; d++) {
        for (let i = 0; i < 15; i++) files.set(`d${String(d).padStart(2, '0')}/f${String(i).padStart(2, '0')}`, randomBytes(20 + d * 15 + i));
      }
      // folders first: many puts racing to MKCOL one folder is not what this is about
      for (const dir of new Set([...files.keys()].map((p) => p.split('/').slice(0, -1).join('/')))) await backend.mkdir(`ct/src/${dir}`);
      await inBatches([...files], 16, ([p, data]) => put(backend, `ct/src/${p}`, data));
      const source = await tree(backend, 'ct/src');
      expect(source).toHaveLength(files.size);

      let reported = 0;
      const way = await copyFolder(backend, 'ct/src', 'ct/gen/2', { onFile: (n) => (reported = n) });
      expect(way).toBe(subject.folderCopy);
      expect(reported).toBe(way === 'files' ? files.size : 0);
      expect(await tree(backend, 'ct/gen/2')).toEqual(source);
      await inBatches([...files], 16, async ([p, data]) => {
        expect((await readAll(backend, `ct/gen/2/${p}`)).equals(data), p).toBe(true);
      });

      // a hard-linked copy must be replaced by a put, never written through
      await put(backend, 'ct/gen/2/big.bin', Buffer.from('changed'));
      await put(backend, 'ct/gen/2/d01/new', Buffer.from('new'));
      await backend.remove('ct/gen/2/d00/f00');
      expect(await tree(backend, 'ct/src')).toEqual(source);
      expect((await readAll(backend, 'ct/src/big.bin')).equals(files.get('big.bin')!)).toBe(true);
      expect((await readAll(backend, 'ct/src/d00/f00')).equals(files.get('d00/f00')!)).toBe(true);
      expect((await readAll(backend, 'ct/gen/2/big.bin')).toString()).toBe('changed');
    });

    it('copies a folder only where nothing is, leaving an existing one untouched', async () => {
      await put(backend, 'cx/src/a', Buffer.from('a'));
      await put(backend, 'cx/src/sub/b', Buffer.from('b'));
      await put(backend, 'cx/dst/keep', Buffer.from('keep'));
      await expect(copyFolder(backend, 'cx/src', 'cx/dst')).rejects.toThrow(/exists/);
      expect(await tree(backend, 'cx/dst')).toEqual([['keep', 4]]);
      expect((await readAll(backend, 'cx/dst/keep')).toString()).toBe('keep');
      expect(await tree(backend, 'cx/src')).toEqual([['a', 1], ['sub/b', 1]]);
    });

    it('keeps deferred puts, small and large, and has them all after a flush', async () => {
      const files = [1, 5_000, 256 * 1024, 256 * 1024 + 1, 700_000].map((n, i) => ({ p: `deferred/d${i}/f`, data: randomBytes(n) }));
      await Promise.all(files.map((f) => backend.put(f.p, () => Readable.from([f.data]), f.data.length, { deferSync: true })));
      await backend.flush?.();
      for (const f of files) expect((await readAll(backend, f.p)).equals(f.data)).toBe(true);
      const again = randomBytes(3000);
      await backend.put(files[1]!.p, () => Readable.from([again]), again.length, { deferSync: true });
      await backend.flush?.();
      expect((await readAll(backend, files[1]!.p)).equals(again)).toBe(true);
      expect((await backend.list('deferred/d1')).map((e) => e.name)).toEqual(['f']);
    });

    it('writes unpublished puts, small and large, new or over an existing object, whole', async () => {
      const files = [0, 5_000, 256 * 1024 + 1].map((n, i) => ({ p: `unpublished/u${i}`, data: randomBytes(n) }));
      for (const deferSync of [true, false]) {
        for (const f of files) await backend.put(f.p, () => Readable.from([f.data]), f.data.length, { deferSync, unpublished: true });
        await backend.flush?.();
        for (const f of files) expect((await readAll(backend, f.p)).equals(f.data)).toBe(true);
        for (const f of files) f.data = randomBytes(f.data.length + 7);
      }
      expect((await backend.list('unpublished')).map((e) => e.name)).toEqual(['u0', 'u1', 'u2']);
    });

    it('keeps a file handed over (handOver) after the caller removes it', async () => {
      const data = randomBytes(300_000);
      const file = path.join(await fsp.mkdtemp(path.join(TEST_TMP, 'cerberus-conf-spool-')), 'volume');
      await fsp.writeFile(file, data);
      await backend.put('handed/v', fileBody(file), data.length, { handOver: true });
      await fsp.rm(path.dirname(file), { recursive: true });
      expect((await readAll(backend, 'handed/v')).equals(data)).toBe(true);
    });

    it('takes concurrent puts', async () => {
      const files = Array.from({ length: 12 }, (_, i) => ({ p: `conc/f${String(i).padStart(2, '0')}`, data: randomBytes(300_000 + i) }));
      await Promise.all(files.map((f) => put(backend, f.p, f.data)));
      const listed = await backend.list('conc');
      expect(listed.map((e) => [e.name, e.size])).toEqual(files.map((f) => [f.p.slice(5), f.data.length]));
      for (const f of files) expect((await readAll(backend, f.p)).equals(f.data)).toBe(true);
    });

    it('streams a 1.5 GiB object in and out in bounded memory', async () => {
      const size = 1.5 * 2 ** 30;
      const seed = randomBytes(1 << 20);
      const sent = await sha256Of(bigStream(size, seed));
      const base = process.memoryUsage().rss;
      let peak = base;
      const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
      try {
        await backend.put('big/volume', () => bigStream(size, seed), size);
        expect((await backend.stat('big/volume'))?.size).toBe(size);
        const got = await sha256Of(await backend.get('big/volume'));
        expect(got).toEqual(sent);
      } finally {
        clearInterval(sampler);
      }
      // holding the object in memory would add 1.5 GiB
      expect(peak - base).toBeLessThan(400 * 2 ** 20);
      await backend.remove('big/volume');
    }, 600_000);
  });
}
