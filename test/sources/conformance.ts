/**
 * One suite, every remote source (FTPS, SFTP, S3): the same tree served by a real server, read
 * the way cerberus reads it (openRemoteSource: retries around the source), and walked with
 * walkRemote against walkSource on the same tree on the local disk.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Excluder, walkSource, type WalkEvent } from '../../src/engine/walk.js';
import { CerberusError } from '../../src/errors.js';
import { isMissingError, openRemoteSource, walkRemote, type RemoteSource, type RemoteSourceConfig } from '../../src/sources/index.js';

export interface Served {
  /** where the suite writes the tree; a folder the server serves, or one `publish` uploads */
  dir: string;
  /** after the tree is written: makes the server hold it (uploads it) */
  publish(): Promise<void>;
  /** a source of that folder */
  config: RemoteSourceConfig;
  /** the same with a wrong password or secret */
  wrongLogin: RemoteSourceConfig;
  /** the wrong secret itself, which no message may show */
  wrongSecret: string;
  /** the same server, a root that does not exist */
  missingRoot: RemoteSourceConfig;
}

export interface Subject {
  name: string;
  /** whether the server keeps the files' modification times to the second (S3 has upload times) */
  keepsMtime: boolean;
  setup(): Promise<Served>;
  teardown(): Promise<void>;
}

const BIG = 3 * 1024 * 1024;
const OLD = Date.UTC(2020, 2, 4, 5, 6, 7);

/** The test tree: nested and empty folders, an empty file, a dot file, unicode (NFC) and awkward names. */
async function makeTree(dir: string): Promise<{ big: Buffer }> {
  const big = randomBytes(BIG);
  const files: Array<[string, Buffer | string]> = [
    ['a.txt', 'hello\n'],
    ['empty.txt', ''],
    ['.hidden', 'h'],
    ['name with space [1].txt', 'spaces'],
    ['caf\u00e9.txt'.normalize('NFC'), 'caf\u00e9'],
    ['\u00c6r\u00f8/\u65e5\u672c\u8a9e.txt', 'nihongo'],
    ['big.bin', big],
    ['nested/deep/deeper/file.txt', 'deep'],
    ['nested/x.log', 'log'],
    ['skip.log', 'log'],
    ['.cerberus/own', 'reserved'],
  ];
  let i = 0;
  for (const [rel, data] of files) {
    const abs = path.join(dir, rel);
    await fsp.mkdir(path.dirname(abs), { recursive: true });
    await fsp.writeFile(abs, data);
    // old enough that a LIST shows no time, only a year; a second of its own each
    const t = new Date(OLD + 1000 * i++);
    await fsp.utimes(abs, t, t);
  }
  await fsp.mkdir(path.join(dir, 'nested/emptydir'), { recursive: true });
  await fsp.mkdir(path.join(dir, 'emptytop'));
  return { big };
}

async function collect(events: AsyncIterable<WalkEvent>): Promise<WalkEvent[]> {
  const out: WalkEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** What two walks must agree on: kinds, paths, types, sizes, symlink targets, in order. */
function shape(events: WalkEvent[]): string[] {
  return events.map((e) => {
    if (e.kind === 'enter' || e.kind === 'leave' || e.kind === 'entry') {
      return `${e.kind} ${e.entry.path} ${e.entry.type} ${e.entry.size}${e.entry.target !== undefined ? ` -> ${e.entry.target}` : ''}`;
    }
    if (e.kind === 'missing-root') return e.kind;
    return `${e.kind} ${e.path}`;
  });
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function remoteSourceConformance(subject: Subject): void {
  describe(`remote source conformance: ${subject.name}`, () => {
    let served: Served;
    let source: RemoteSource;
    let big: Buffer;
    const retries: string[] = [];

    beforeAll(async () => {
      served = await subject.setup();
      ({ big } = await makeTree(served.dir));
      await served.publish();
      source = openRemoteSource(served.config, { baseDelayMs: 50, onRetry: (what) => retries.push(what) });
      await source.connect();
    }, 60_000);
    afterAll(async () => {
      await source?.close();
      await subject.teardown();
    });

    it('lists a folder: files with their sizes, folders, dot files, no . or ..', async () => {
      const top = await source.list(source.root);
      const byName = new Map(top.map((e) => [e.name, e]));
      expect([...byName.keys()].sort()).toEqual(
        ['.cerberus', '.hidden', 'a.txt', 'big.bin', 'caf\u00e9.txt', 'empty.txt', 'emptytop', 'name with space [1].txt', 'nested', 'skip.log', '\u00c6r\u00f8'].sort(),
      );
      expect(byName.get('big.bin')).toMatchObject({ type: 'file', size: BIG });
      expect(byName.get('empty.txt')).toMatchObject({ type: 'file', size: 0 });
      expect(byName.get('nested')).toMatchObject({ type: 'dir' });
      expect(byName.get('emptytop')).toMatchObject({ type: 'dir' });
      expect(await source.list(`${source.root === '/' ? '' : source.root}/emptytop`)).toEqual([]);
    });

    it('walks as walkSource walks the same tree on the local disk', async () => {
      const exclude = new Excluder([]);
      const local = await collect(walkSource([served.dir], exclude));
      const remote = await collect(walkRemote(source, exclude));
      expect(shape(remote)).toEqual(shape(local));
      // the reserved folder is skipped by both, names are NFC as written
      expect(shape(remote)).toContain('skipped .cerberus');
      expect(shape(remote)).toContain('entry \u00c6r\u00f8/\u65e5\u672c\u8a9e.txt file 7');
      for (const e of remote) {
        if (e.kind !== 'entry' && e.kind !== 'enter') continue;
        const rootPrefix = source.root === '/' ? '' : source.root;
        expect(e.entry.abs).toBe(`${rootPrefix}/${e.entry.path}`);
        expect(e.entry.ino).toBe('');
        expect(e.entry.ctimeNs).toBe(e.entry.mtimeNs);
      }
      expect(retries).toEqual([]);
    });

    if (subject.keepsMtime) {
      it("gives each file's modification time to the second", async () => {
        const local = await collect(walkSource([served.dir], new Excluder([])));
        const remote = new Map((await collect(walkRemote(source, new Excluder([])))).flatMap((e) => (e.kind === 'entry' ? [[e.entry.path, e.entry]] : [])));
        let files = 0;
        for (const e of local) {
          if (e.kind !== 'entry' || e.entry.type !== 'file') continue;
          files++;
          expect(BigInt(remote.get(e.entry.path)!.mtimeNs) / 1_000_000_000n, e.entry.path).toBe(BigInt(e.entry.mtimeNs) / 1_000_000_000n);
        }
        expect(files).toBeGreaterThan(5);
      });
    }

    it('reads a file whole and from an offset, byte-exact; an empty file; a missing one is ENOENT', async () => {
      const root = source.root === '/' ? '' : source.root;
      expect(sha(await bytesOf(await source.read(`${root}/big.bin`, 0)))).toBe(sha(big));
      const offset = 1_234_567;
      const tail = await bytesOf(await source.read(`${root}/big.bin`, offset));
      expect(tail.length).toBe(BIG - offset);
      expect(tail.equals(big.subarray(offset))).toBe(true);
      expect((await bytesOf(await source.read(`${root}/empty.txt`, 0))).length).toBe(0);
      expect((await bytesOf(await source.read(`${root}/caf\u00e9.txt`, 0))).toString()).toBe('caf\u00e9');
      const missing = await source.read(`${root}/no-such-file`, 0).then(
        (s) => bytesOf(s).then(() => undefined),
        (e: unknown) => e,
      );
      expect(isMissingError(missing), String(missing)).toBe(true);
      // the connection is still good after a failed read
      expect((await bytesOf(await source.read(`${root}/a.txt`, 0))).toString()).toBe('hello\n');
    });

    it('applies excludes as walkSource does, relative and absolute patterns', async () => {
      const rel = ['*.log', 'nested/deep'];
      const local = await collect(walkSource([served.dir], new Excluder(rel)));
      const remote = await collect(walkRemote(source, new Excluder(rel)));
      expect(shape(remote)).toEqual(shape(local));
      expect(shape(remote).some((l) => l.includes('.log') || l.includes('deeper'))).toBe(false);
      const root = source.root === '/' ? '' : source.root;
      const byAbs = await collect(walkRemote(source, new Excluder([`${root}/nested`, `${root}/**/*.txt`]), { reportExcluded: true }));
      expect(shape(byAbs)).toContain('excluded nested');
      expect(shape(byAbs)).toContain('excluded a.txt');
      expect(shape(byAbs).some((l) => /^(enter|entry) (nested|a\.txt)/.test(l))).toBe(false);
      expect(shape(byAbs)).toContain('entry big.bin file 3145728');
    });

    it("reports a root that does not exist as 'missing-root'", async () => {
      const missing = openRemoteSource(served.missingRoot, { baseDelayMs: 50 });
      try {
        await missing.connect();
        const events = await collect(walkRemote(missing, new Excluder([])));
        expect(events).toEqual([{ kind: 'missing-root', abs: missing.root }]);
      } finally {
        await missing.close();
      }
    });

    it('fails a wrong password at once with SOURCE naming the login, never the secret', async () => {
      const tried: string[] = [];
      const wrong = openRemoteSource(served.wrongLogin, { baseDelayMs: 50, onRetry: (what) => tried.push(what) });
      try {
        const err = await wrong.connect().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(CerberusError);
        const e = err as CerberusError;
        expect(e.code).toBe('SOURCE');
        expect(e.message).toMatch(/refused the login/);
        expect(e.message).not.toContain('\n');
        for (const text of [e.message, e.hint ?? '']) expect(text).not.toContain(served.wrongSecret);
        // not retried
        expect(tried).toEqual([]);
        // a walk does not turn it into a folder error either
        await expect(collect(walkRemote(wrong, new Excluder([])))).rejects.toBeInstanceOf(CerberusError);
      } finally {
        await wrong.close();
      }
    });
  });
}

/** A folder the server's test user can enter, under the server's served folder. */
export async function servedDir(root: string, name: string): Promise<string> {
  const dir = path.join(root, name);
  await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
  return dir;
}

/** A large file of known content, written in pieces (never whole in memory); its sha256. */
export async function writeBig(file: string, mib: number): Promise<string> {
  const h = createHash('sha256');
  const out = fs.createWriteStream(file);
  for (let i = 0; i < mib; i++) {
    const block = Buffer.alloc(1 << 20, i % 251);
    block.writeUInt32BE(i, 0);
    h.update(block);
    if (!out.write(block)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
  return h.digest('hex');
}

/** Takes the first chunk, then leaves the stream paused while `meanwhile` runs, then reads the rest. */
export async function readAcross(stream: Readable, meanwhile: () => Promise<void>): Promise<{ hash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  h.update(first.value as Buffer);
  size += (first.value as Buffer).length;
  await meanwhile();
  for (let r = await it.next(); !r.done; r = await it.next()) {
    h.update(r.value as Buffer);
    size += (r.value as Buffer).length;
  }
  return { hash: h.digest('hex'), size };
}
