import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebdavTargetConfig } from '../../src/config/types.js';
import { describeError } from '../../src/errors.js';
import { copyFolder } from '../../src/storage/copy-tree.js';
import { FolderCopyRefusedError, StorageError } from '../../src/storage/errors.js';
import { openBackend } from '../../src/storage/open.js';
import { WebdavBackend } from '../../src/storage/webdav.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { errorOf } from '../helpers/errors.js';

let server: ApacheServer;
let proxy: TamperProxy;
let seq = 0;

/** a fresh repository folder per call, its name itself in need of encoding */
function target(over: Partial<WebdavTargetConfig> = {}): { b: WebdavBackend; cfg: WebdavTargetConfig; dir: string } {
  const repo = `repo ${++seq} ü#`;
  const cfg: WebdavTargetConfig = {
    name: 'nas',
    type: 'webdav',
    url: server.url,
    username: server.username,
    password: server.password,
    path: `backups/${repo}`,
    verify: 'size',
    retries: 0,
    timeoutMs: 30_000,
    concurrency: 1,
    bwlimit: undefined,
    ...over,
  };
  return { b: new WebdavBackend(cfg), cfg, dir: path.join(server.dataDir, ...cfg.path.split('/')) };
}

const body = (data: Buffer | string) => () => Readable.from([Buffer.from(data)]);
const put = (b: WebdavBackend, p: string, data: Buffer | string) => b.put(p, body(data), Buffer.byteLength(data));

/** by digest: vitest's deep equality crawls a large Buffer byte by byte */
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readAll(s: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** every entry under dir, temp files included */
async function everything(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true }).catch(() => [])) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(p);
    if (e.isDirectory()) out.push(...(await everything(dir, p)));
  }
  return out.sort();
}

/** access log lines of requests under the repository folder of `cfg` */
async function requestsFor(cfg: WebdavTargetConfig): Promise<string[]> {
  const prefix = `/dav/${cfg.path.split('/').map(encodeURIComponent).join('/')}`;
  return (await server.accessLog()).filter((l) => l.includes(` ${prefix}`));
}

describe('WebdavBackend against Apache mod_dav', () => {
  beforeAll(async () => {
    server = await startApache();
    proxy = await startTamperProxy(server.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  });

  it('declares what it can do, and names itself without credentials', () => {
    const { b, cfg } = target({ url: server.url.replace('http://', `http://someone:${encodeURIComponent(server.password)}@`) });
    expect(b.capabilities).toEqual({ atomicPut: true, move: true, serverSideCopy: true, hardLink: false, maxObjectSize: Number.MAX_SAFE_INTEGER });
    expect(b.description).toBe(`webdav:${server.url}/${cfg.path}`);
    expect(b.description).not.toContain(server.password);
    expect(b.description).not.toContain('someone');
  });

  it('puts, gets, stats, lists and removes, creating the folders on the way', async () => {
    const { b, dir } = target();
    const data = randomBytes(100_000);
    await b.put('a/b/vol.bin', body(data), data.length);
    expect(sha(await fsp.readFile(path.join(dir, 'a/b/vol.bin')))).toBe(sha(data));
    expect(sha(await readAll(await b.get('a/b/vol.bin')))).toBe(sha(data));
    expect(await b.stat('a/b/vol.bin')).toEqual({ name: 'vol.bin', size: data.length, isDir: false });
    expect(await b.stat('a/b')).toEqual({ name: 'b', size: 0, isDir: true });
    expect(await b.stat('a/none')).toBeUndefined();
    await put(b, 'a/z.txt', 'zz');
    await put(b, 'a/c.txt', 'ccc');
    expect(await b.list('a')).toEqual([
      { name: 'b', size: 0, isDir: true },
      { name: 'c.txt', size: 3, isDir: false },
      { name: 'z.txt', size: 2, isDir: false },
    ]);
    expect(await b.list('')).toEqual([{ name: 'a', size: 0, isDir: true }]);
    expect(await b.list('nowhere')).toEqual([]);

    await b.remove('a/c.txt');
    await b.remove('a/c.txt'); // absent is fine
    expect(await everything(dir)).toEqual(['a', 'a/b', 'a/b/vol.bin', 'a/z.txt']);
    const notEmpty = await errorOf(b.remove('a/b'));
    expect(notEmpty).toBeInstanceOf(StorageError);
    expect(notEmpty.message).toMatch(/not empty/);
    expect(fs.existsSync(path.join(dir, 'a/b/vol.bin'))).toBe(true);
    await b.remove('a/b/vol.bin');
    await b.remove('a/b');
    expect(await everything(dir)).toEqual(['a', 'a/z.txt']);
  });

  it('overwrites a file whole, and streams a large one both ways', async () => {
    const { b, dir } = target();
    await put(b, 'f', 'first version, longer');
    await put(b, 'f', 'second');
    expect((await readAll(await b.get('f'))).toString()).toBe('second');
    const big = randomBytes(6 * 1024 * 1024 + 17);
    const chunks = Array.from({ length: Math.ceil(big.length / 65536) }, (_, i) => big.subarray(i * 65536, (i + 1) * 65536));
    await b.put('big', () => Readable.from(chunks), big.length);
    expect(sha(await readAll(await b.get('big')))).toBe(sha(big));
    expect(sha(await fsp.readFile(path.join(dir, 'big')))).toBe(sha(big));
    expect(await everything(dir)).toEqual(['big', 'f']);
  });

  it('handles names that need encoding: spaces, #, %, ?, &, quotes, unicode', async () => {
    const { b, dir } = target();
    const names = ['with space.txt', 'hash#tag', '100%', '%41%2F', 'what?x=1', 'a&b<c>.txt', `quote'"`, 'plus+eq=;,@$!*()', 'ünïcödé ✓ 日本.txt', '1e5', '0x10'];
    const folder = 'dir # % ? é';
    for (const [i, n] of names.entries()) await put(b, `${folder}/${n}`, `content ${i}`);
    expect((await b.list(folder)).map((e) => e.name)).toEqual([...names].sort((a, c) => (a < c ? -1 : a > c ? 1 : 0)));
    expect(await everything(path.join(dir, folder))).toEqual([...names].sort());
    for (const [i, n] of names.entries()) {
      expect(await fsp.readFile(path.join(dir, folder, n), 'utf8')).toBe(`content ${i}`);
      expect((await readAll(await b.get(`${folder}/${n}`))).toString()).toBe(`content ${i}`);
      expect(await b.stat(`${folder}/${n}`)).toEqual({ name: n, size: Buffer.byteLength(`content ${i}`), isDir: false });
    }
    expect((await b.list('')).map((e) => e.name)).toEqual([folder]);
    await b.move(`${folder}/hash#tag`, `${folder}/moved ?#%`);
    await b.copy(`${folder}/100%`, `other ✓/copy %20`);
    expect(await fsp.readFile(path.join(dir, folder, 'moved ?#%'), 'utf8')).toBe('content 1');
    expect(await fsp.readFile(path.join(dir, 'other ✓/copy %20'), 'utf8')).toBe('content 2');
    for (const e of await b.list(folder)) await b.remove(`${folder}/${e.name}`);
    await b.remove(folder);
    expect(await everything(dir)).toEqual(['other ✓', 'other ✓/copy %20']);
  });

  it('gets byte ranges, end inclusive', async () => {
    const { b } = target();
    await put(b, 'r', '0123456789');
    const read = async (start: number, end?: number) => (await readAll(await b.get('r', end === undefined ? { start } : { start, end }))).toString();
    expect(await read(3, 5)).toBe('345');
    expect(await read(7)).toBe('789');
    expect(await read(0, 0)).toBe('0');
    expect(await read(9, 100)).toBe('9');
    expect(await read(0)).toBe('0123456789');
    expect(await read(10)).toBe('');
  });

  it('cuts the range out itself when the server answers 200 to a Range request', async () => {
    const { b: direct, cfg } = target();
    await put(direct, 'r', '0123456789');
    const b = new WebdavBackend({ ...cfg, url: proxy.url('ignore-range') });
    expect((await readAll(await b.get('r', { start: 3, end: 5 })) ).toString()).toBe('345');
    expect((await readAll(await b.get('r', { start: 8 }))).toString()).toBe('89');
    expect(proxy.rangesSeen).toBeGreaterThan(0);
  });

  it('sends every put with Content-Length, never chunked, through a temp name and MOVE', async () => {
    const { b, cfg, dir } = target();
    const sizes = [0, 1, 70_000, 1_000_003];
    for (const [i, n] of sizes.entries()) {
      const data = randomBytes(n);
      // many small chunks: a stream the package would otherwise send chunked
      await b.put(`d/f${i}`, () => Readable.from(Array.from({ length: Math.ceil(n / 1000) }, (_, k) => data.subarray(k * 1000, (k + 1) * 1000))), n);
      expect(sha(await fsp.readFile(path.join(dir, `d/f${i}`)))).toBe(sha(data));
    }
    const lines = await requestsFor(cfg);
    const puts = lines.filter((l) => l.startsWith('"PUT '));
    expect(puts).toHaveLength(sizes.length);
    for (const [i, l] of puts.entries()) {
      expect(l).toMatch(/^"PUT \/dav\/\S+\/d\/\.tmp-[0-9a-f]+-f\d HTTP\/1\.1" 201 /);
      expect(l).toContain(` len=${sizes[i]} `);
      expect(l).toContain(' te=- ');
    }
    expect(lines.filter((l) => l.startsWith('"MOVE '))).toHaveLength(sizes.length);
    expect(await everything(dir)).toEqual(['d', 'd/f0', 'd/f1', 'd/f2', 'd/f3']);
  });

  it('asks PROPFIND with Depth 0 or 1, never infinity', async () => {
    const { b, cfg } = target();
    await put(b, 'x/y/z', 'z');
    await b.list('x');
    await b.list('x/y');
    await b.stat('x/y/z');
    await b.remove('x/y/z');
    await b.remove('x/y');
    await b.list('');
    const propfinds = (await requestsFor(cfg)).filter((l) => l.startsWith('"PROPFIND '));
    expect(propfinds.length).toBeGreaterThanOrEqual(6);
    for (const l of propfinds) expect(l).toMatch(/ depth=[01]$/);
  });

  it('never shows temp files, and removes a folder holding only those', async () => {
    const { b, dir } = target();
    await put(b, 'g/keep', 'k');
    // a put a crash cut short
    await fsp.writeFile(path.join(dir, 'g/.tmp-0123-keep'), 'partial');
    expect(await b.list('g')).toEqual([{ name: 'keep', size: 1, isDir: false }]);
    await b.remove('g/keep');
    expect(await b.list('g')).toEqual([]);
    await b.remove('g');
    expect(await everything(dir)).toEqual([]);
  });

  it('creates folders recursively, the repository folder too; existing is fine', async () => {
    const { b, dir } = target();
    await b.mkdir('p/q/r');
    await b.mkdir('p/q/r');
    await b.mkdir('p');
    expect(await everything(dir)).toEqual(['p', 'p/q', 'p/q/r']);
    expect(await b.stat('')).toMatchObject({ isDir: true });
  });

  it('moves files and folders, refusing to overwrite', async () => {
    const { b, dir } = target();
    await put(b, 'm/a', 'A');
    await put(b, 'm/sub/b', 'B');
    await put(b, 'taken', 'T');
    await b.move('m/a', 'n/a2');
    await b.move('m/sub', 'n/sub2');
    expect(await everything(dir)).toEqual(['m', 'n', 'n/a2', 'n/sub2', 'n/sub2/b', 'taken']);
    const e = await errorOf(b.move('n/a2', 'taken'));
    expect(e.message).toMatch(/taken exists/);
    expect((e as StorageError).retryable).toBe(false);
    expect(await fsp.readFile(path.join(dir, 'taken'), 'utf8')).toBe('T');
    expect(await fsp.readFile(path.join(dir, 'n/a2'), 'utf8')).toBe('A');
    expect((await errorOf(b.move('n/sub2', 'm'))).message).toMatch(/exists/);
    expect((await errorOf(b.move('missing', 'elsewhere'))).code).toBe('NOT_FOUND');
  });

  it('copies a file on the server, refusing to overwrite', async () => {
    const { b, dir } = target();
    await put(b, 'c/src', 'source bytes');
    await b.copy('c/src', 'c2/dst');
    expect(await fsp.readFile(path.join(dir, 'c2/dst'), 'utf8')).toBe('source bytes');
    expect(await fsp.readFile(path.join(dir, 'c/src'), 'utf8')).toBe('source bytes');
    await put(b, 'c/other', 'other');
    expect((await errorOf(b.copy('c/src', 'c/other'))).message).toMatch(/exists/);
    expect(await fsp.readFile(path.join(dir, 'c/other'), 'utf8')).toBe('other');
  });

  it('copies a folder in one COPY with Depth infinity, creating parents, refusing to overwrite', async () => {
    const { b, cfg, dir } = target();
    await put(b, 'g/1/a', 'A');
    await put(b, 'g/1/d/ü b', 'B');
    await b.mkdir('g/1/empty');
    await b.copyTree('g/1', 'h/2/3');
    expect(await everything(path.join(dir, 'h/2/3'))).toEqual(['a', 'd', 'd/ü b', 'empty']);
    expect(await fsp.readFile(path.join(dir, 'h/2/3/d/ü b'), 'utf8')).toBe('B');
    const copies = (await requestsFor(cfg)).filter((l) => l.startsWith('"COPY '));
    expect(copies).toHaveLength(1);
    expect(copies[0]).toMatch(/^"COPY \S+\/g\/1\/ HTTP\/1\.1" 201 .* depth=infinity$/);

    const e = await errorOf(b.copyTree('g/1', 'h/2/3'));
    expect(e.message).toMatch(/exists/);
    expect(e).not.toBeInstanceOf(FolderCopyRefusedError);
    expect((await errorOf(b.copyTree('missing', 'elsewhere'))).code).toBe('NOT_FOUND');
  });

  for (const status of [403, 207]) {
    it(`copies file by file when the server refuses a folder COPY (${status}), leaving nothing else behind`, async () => {
      const fault = await startFaultProxy(server.url);
      try {
        const { b: direct, cfg, dir } = target();
        const b = openBackend({ ...cfg, url: fault.url, retries: 2 }, { retryBaseDelayMs: 1 });
        const files = new Map<string, string>([['top', 'T'], ['empty-file', '']]);
        for (let d = 0; d < 4; d++) for (let i = 0; i < 5; i++) files.set(`d${d}/sub ü/f${i}`, `file ${d}.${i}`);
        for (const [p, data] of files) await put(direct, `src/${p}`, data);
        await direct.mkdir('src/empty');
        // a folder COPY names the collection, with its trailing '/'; a file COPY does not
        fault.faults.push({ kind: 'status', status, method: 'COPY', path: /\/$/, times: Infinity, ...(status === 207 ? { body: '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>/x</D:href><D:status>HTTP/1.1 423 Locked</D:status></D:response></D:multistatus>' } : {}) });

        let reported = 0;
        expect(await copyFolder(b, 'src', 'gen/2', { parallel: 3, onFile: (n) => (reported = n) })).toBe('files');
        expect(reported).toBe(files.size);
        const refused = fault.requests.filter((r) => r.fault === 'status');
        expect(refused).toHaveLength(1);
        expect(refused[0]).toMatchObject({ method: 'COPY', status });
        expect(await everything(path.join(dir, 'gen/2'))).toEqual(await everything(path.join(dir, 'src')));
        for (const [p, data] of files) expect(await fsp.readFile(path.join(dir, 'gen/2', p), 'utf8')).toBe(data);
        expect(await everything(dir)).not.toContainEqual(expect.stringMatching(/\.tmp-/));
        const copies = (await requestsFor(cfg)).filter((l) => l.startsWith('"COPY '));
        expect(copies).toHaveLength(files.size);
        for (const l of copies) expect(l).toMatch(/ 201 .* depth=0$/);
      } finally {
        await fault.stop();
      }
    });
  }

  it('says a refused folder COPY is one, not retryable', async () => {
    const fault = await startFaultProxy(server.url);
    try {
      const { b: direct, cfg } = target();
      await put(direct, 's/x', 'x');
      for (const status of [403, 405, 501, 502]) {
        fault.faults.push({ kind: 'status', status, method: 'COPY' });
        const e = await errorOf(new WebdavBackend({ ...cfg, url: fault.url }).copyTree('s', `t${status}`));
        expect(e, String(status)).toBeInstanceOf(FolderCopyRefusedError);
        expect(e).toMatchObject({ status, retryable: false });
      }
    } finally {
      await fault.stop();
    }
  });

  it('reports a missing object as NOT_FOUND', async () => {
    const { b } = target();
    const e = await errorOf(b.get('no/such/file'));
    expect(e.code).toBe('NOT_FOUND');
    expect(e).toBeInstanceOf(StorageError);
    expect(e.message).toContain('target nas');
  });

  it('fails fast on a wrong password, naming the target and not the password', async () => {
    const { b } = target({ password: 'wrong-password-123' });
    const t0 = Date.now();
    const calls = [() => b.put('x', body('x'), 1), () => b.get('x'), () => b.list(''), () => b.stat('x'), () => b.mkdir('m'), () => b.remove('x')];
    for (const call of calls) {
      const e = await errorOf(call());
      expect(e).toBeInstanceOf(StorageError);
      expect((e as StorageError).retryable).toBe(false);
      expect((e as StorageError).status).toBe(401);
      expect(describeError(e)).toContain('nas');
      expect(describeError(e)).not.toContain('wrong-password-123');
      expect(JSON.stringify(e)).not.toContain('wrong-password-123');
    }
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('sends credentials as UTF-8 (the test password is not ASCII)', async () => {
    expect(/[^\x20-\x7e]/.test(server.password)).toBe(true);
    const { b } = target();
    await put(b, 'ok', 'ok');
    expect(await b.stat('ok')).toMatchObject({ size: 2 });
  });

  it('in readback mode, detects a server that hands back different bytes', async () => {
    const { cfg, dir } = target({ verify: 'readback' });
    const good = new WebdavBackend(cfg);
    let progress = 0;
    await good.put('v/fine', body('read back and compared'), 22, { progress: () => progress++ });
    // the read-back reports its progress, or an idle timeout would count it as silence
    expect(progress).toBeGreaterThan(0);
    expect((await requestsFor(cfg)).filter((l) => l.startsWith('"GET ')).map((l) => l.split(' ')[1])).toEqual([
      `/dav/${cfg.path.split('/').map(encodeURIComponent).join('/')}/v/fine`,
    ]);
    expect(await fsp.readFile(path.join(dir, 'v/fine'), 'utf8')).toBe('read back and compared');

    const b = new WebdavBackend({ ...cfg, url: proxy.url('corrupt-get') });
    const e = await errorOf(put(b, 'v/vol', 'these bytes come back altered'));
    expect(e).toBeInstanceOf(StorageError);
    expect((e as StorageError).retryable).toBe(true);
    expect(e.message).toMatch(/stored different bytes/);
    // neither the bad file nor a temp file stays
    expect(await everything(dir)).toEqual(['v', 'v/fine']);

    // size mode does not read back, so it cannot tell
    await put(new WebdavBackend({ ...cfg, verify: 'size', url: proxy.url('corrupt-get') }), 'v/unseen', 'abc');
    expect(await fsp.readFile(path.join(dir, 'v/unseen'), 'utf8')).toBe('abc');
  });

  it('checks the stored size after the move, and removes a file of the wrong size', async () => {
    const { cfg, dir } = target();
    const b = new WebdavBackend({ ...cfg, url: proxy.url('wrong-size') });
    const e = await errorOf(put(b, 'w/vol', 'twelve bytes'));
    expect(e).toBeInstanceOf(StorageError);
    expect((e as StorageError).retryable).toBe(true);
    expect(e.message).toBe('target nas: put w/vol: the server holds 13 bytes after an upload of 12 bytes');
    expect(await everything(dir)).toEqual(['w']);
  });

  it('treats a 207 Multi-Status answer to DELETE as a failure', async () => {
    const { b: direct, cfg, dir } = target();
    await put(direct, 'locked', 'l');
    const b = new WebdavBackend({ ...cfg, url: proxy.url('multistatus') });
    const e = (await errorOf(b.remove('locked'))) as StorageError;
    expect(e.message).toBe('target nas: remove locked: failed in part (207 Multi-Status, 423 for a member)');
    expect(e.retryable).toBe(false);
    expect(await everything(dir)).toEqual(['locked']);
  });

  it('fails the read when the connection drops before Content-Length bytes arrived', async () => {
    const { b: direct, cfg } = target();
    const data = randomBytes(200_000);
    await direct.put('t', body(data), data.length);
    const b = new WebdavBackend({ ...cfg, url: proxy.url('truncate-get') });
    const s = await b.get('t');
    const err = await readAll(s).then((b) => b.length, (e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).retryable).toBe(true);
    expect((err as StorageError).message).toMatch(/^target nas: get t: /);
  });

  it('classifies 503 as retryable and honours Retry-After', async () => {
    const { cfg } = target();
    const b = new WebdavBackend({ ...cfg, url: proxy.url('status-503') });
    const e = (await errorOf(b.stat('x'))) as StorageError;
    expect(e.retryable).toBe(true);
    expect(e.status).toBe(503);
    expect(e.retryAfterMs).toBe(7000);
  });

  it('classifies a refused connection as retryable, naming the target', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const { cfg } = target();
    const e = (await errorOf(new WebdavBackend({ ...cfg, url: `http://127.0.0.1:${port}/dav` }).stat('x'))) as StorageError;
    expect(e.retryable).toBe(true);
    expect(e.message).toBe('target nas: stat x: ECONNREFUSED');
  });

  it('fails retryably while the server is down, and works again once it is back', async () => {
    const own = await startApache({ username: 'other', password: 'x' });
    try {
      const b = new WebdavBackend({ ...target().cfg, url: own.url, username: 'other', password: 'x' });
      await put(b, 'kept', 'still here');
      await own.stop({ keepData: true });
      const e = (await errorOf(b.get('kept'))) as StorageError;
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(/^target nas: get kept: (ECONNREFUSED|ECONNRESET)$/);
      await own.start();
      expect((await readAll(await b.get('kept'))).toString()).toBe('still here');
    } finally {
      await own.stop();
    }
    expect(fs.existsSync(own.dataDir)).toBe(false);
  });

  it('stops an upload when the signal aborts, and leaves no temp file', async () => {
    const { b, dir } = target();
    await b.mkdir('slow');
    const ac = new AbortController();
    let sent = 0;
    const endless = () =>
      new Readable({
        read() {
          if (sent >= 64 * 1024) return; // then stall: only the abort can end this
          sent += 16 * 1024;
          this.push(Buffer.alloc(16 * 1024, 1));
          if (sent >= 64 * 1024) setTimeout(() => ac.abort(new Error('stop')), 100);
        },
      });
    const err = await b.put('slow/never', endless, 10 * 1024 * 1024, { signal: ac.signal }).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(ac.signal.aborted).toBe(true);
    // Apache drops its own upload file once it sees the connection gone
    for (let i = 0; i < 50 && (await everything(dir)).length > 1; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await everything(dir)).toEqual(['slow']);
  });

  it('closes the connection of every verb when the signal aborts, even with no answer yet', async () => {
    const { cfg } = target();
    const b = new WebdavBackend({ ...cfg, url: proxy.url('stall') });
    const calls: Array<[string, (o: { signal: AbortSignal }) => Promise<unknown>]> = [
      ['put', (o) => b.put('p', body('xyz'), 3, o)],
      ['get', (o) => b.get('g', undefined, o)],
      ['stat', (o) => b.stat('s', o)],
      ['list', (o) => b.list('l', o)],
      ['remove', (o) => b.remove('r', o)],
      ['mkdir', (o) => b.mkdir('m', o)],
      ['move', (o) => b.move('a', 'b', o)],
      ['copy', (o) => b.copy('a', 'b', o)],
    ];
    for (const [verb, call] of calls) {
      const ac = new AbortController();
      const before = proxy.stalled.opened;
      const p = call({ signal: ac.signal }).then(() => undefined, (e: unknown) => e);
      for (let i = 0; i < 100 && proxy.stalled.opened === before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(proxy.stalled.opened, verb).toBe(before + 1);
      ac.abort();
      expect(await p, verb).toMatchObject({ name: 'AbortError' });
      for (let i = 0; i < 100 && proxy.stalled.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(proxy.stalled.open, verb).toBe(0);
    }
  });

  it('works under the shared layers: a round trip, and a stalled server timing out', async () => {
    const { cfg, dir } = target({ verify: 'readback', retries: 1 });
    const b = openBackend(cfg, { retryBaseDelayMs: 1 });
    await b.put('l/x', body('layered'), 7);
    expect((await readAll(await b.get('l/x'))).toString()).toBe('layered');
    expect(await fsp.readFile(path.join(dir, 'l/x'), 'utf8')).toBe('layered');
    const stalled = openBackend({ ...cfg, url: proxy.url('stall'), timeoutMs: 300, retries: 0 });
    const e = await errorOf(stalled.stat('x'));
    expect(e.message).toMatch(/^target nas: stat x: no response for /);
    for (let i = 0; i < 100 && proxy.stalled.open > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(proxy.stalled.open).toBe(0);
  });

  it('stops a download when the signal aborts', async () => {
    const { b } = target();
    const data = randomBytes(3 * 1024 * 1024);
    await b.put('dl', body(data), data.length);
    const early = new AbortController();
    early.abort();
    expect(await b.get('dl', undefined, { signal: early.signal }).then(() => undefined, (e: unknown) => e)).toMatchObject({ name: 'AbortError' });

    const ac = new AbortController();
    const s = await b.get('dl', undefined, { signal: ac.signal });
    let got = 0;
    const err = await (async () => {
      for await (const c of s) {
        got += (c as Buffer).length;
        if (got > 0) ac.abort();
      }
    })().then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(got).toBeLessThan(data.length);
  });

  it('refuses a body that does not match the announced size, leaving nothing behind', async () => {
    const { b, dir } = target();
    const short = await errorOf(b.put('s', body('abc'), 10));
    expect(short.message).toMatch(/gave 3 of the 10 bytes/);
    const long = await errorOf(b.put('s', body('abcdefghijkl'), 10));
    expect(long.message).toMatch(/longer than the 10 bytes/);
    expect(await everything(dir)).toEqual([]);
  });
});

type Mode = 'corrupt-get' | 'truncate-get' | 'ignore-range' | 'status-503' | 'wrong-size' | 'multistatus' | 'stall';

interface TamperProxy {
  /** the WebDAV root as seen through the proxy in `mode` */
  url(mode: Mode): string;
  /** Range headers the proxy dropped */
  rangesSeen: number;
  /** requests in 'stall' mode: all so far, and those whose connection the client has not closed */
  stalled: { opened: number; open: number };
  close(): Promise<void>;
}

/**
 * A small HTTP proxy in front of Apache that misbehaves on purpose, chosen by the first path
 * segment: alters GET bodies, cuts them short, ignores Range, answers 503, reports every size
 * in a PROPFIND one byte larger, answers DELETE with a 207 as for a locked member, or never
 * answers at all (and counts the connections the client left open).
 */
async function startTamperProxy(upstreamPort: number): Promise<TamperProxy> {
  const state = { rangesSeen: 0 };
  const stalled = { opened: 0, open: 0 };
  const srv = http.createServer((req, res) => {
    const m = /^\/([a-z0-9-]+)(\/.*)$/.exec(req.url ?? '');
    const mode = m?.[1] as Mode | undefined;
    const rest = m?.[2] ?? '/';
    if (mode === 'status-503') {
      req.resume();
      res.writeHead(503, { 'Retry-After': '7', 'Content-Length': '0' }).end();
      return;
    }
    if (mode === 'stall') {
      stalled.opened++;
      stalled.open++;
      req.socket.once('close', () => stalled.open--);
      req.resume();
      return;
    }
    if (mode === 'multistatus' && req.method === 'DELETE') {
      req.resume();
      const xml = `<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:"><D:response><D:href>${rest}</D:href><D:status>HTTP/1.1 423 Locked</D:status></D:response></D:multistatus>`;
      res.writeHead(207, { 'Content-Type': 'application/xml; charset="utf-8"' }).end(xml);
      return;
    }
    const headers = { ...req.headers };
    if (mode === 'ignore-range' && headers.range) {
      delete headers.range;
      state.rangesSeen++;
    }
    // Destination names the proxy: point it at the same path on the upstream side
    if (typeof headers.destination === 'string') {
      const d = new URL(headers.destination);
      headers.destination = `http://127.0.0.1:${upstreamPort}${d.pathname.replace(/^\/[a-z0-9-]+/, '')}`;
    }
    headers.host = `127.0.0.1:${upstreamPort}`;
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: rest, headers }, (ur) => {
      if (mode === 'wrong-size' && req.method === 'PROPFIND') {
        const chunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => chunks.push(c));
        ur.on('end', () => {
          const xml = Buffer.concat(chunks).toString().replace(/getcontentlength>(\d+)</g, (_, n: string) => `getcontentlength>${Number(n) + 1}<`);
          const { 'content-length': _len, 'transfer-encoding': _te, ...rest } = ur.headers;
          res.writeHead(ur.statusCode!, rest).end(xml);
        });
        return;
      }
      if (req.method !== 'GET' || ur.statusCode! >= 300 || (mode !== 'corrupt-get' && mode !== 'truncate-get')) {
        res.writeHead(ur.statusCode!, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const all = Buffer.concat(chunks);
        res.writeHead(ur.statusCode!, ur.headers);
        if (mode === 'corrupt-get') {
          const mid = all.length >> 1;
          if (all.length > 0) all[mid] = all[mid]! ^ 0xff;
          res.end(all);
        } else {
          res.write(all.subarray(0, all.length >> 1), () => res.socket?.destroy());
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  return {
    url: (mode) => `http://127.0.0.1:${port}/${mode}/dav`,
    get rangesSeen() {
      return state.rangesSeen;
    },
    stalled,
    close: () =>
      new Promise<void>((r) => {
        srv.closeAllConnections();
        srv.close(() => r());
      }),
  };
}
