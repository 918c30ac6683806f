import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import type { Level } from '../../src/engine/levels.js';
import {
  deleteGeneration,
  formatSums,
  GenerationWriter,
  INFO,
  listGenerations,
  MANIFEST,
  parseSums,
  SUMS,
  type GenerationInfo,
} from '../../src/repository/generations.js';
import { readSmall, sha256Hex } from '../../src/repository/io.js';
import type { Backend, RequestOptions } from '../../src/storage/backend.js';
import { LocalBackend } from '../../src/storage/local.js';

let root: string;
let local: LocalBackend;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-gens-'));
  local = new LocalBackend(root);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

function info(id: string, level: Level, parent: string | null, chain: string[]): GenerationInfo {
  return {
    format: 1,
    kind: 'openpgp',
    id,
    level,
    parent,
    chain,
    chainDirs: chain.join(' '),
    createdAt: '2026-11-22T03:00:12.000Z',
    suspicious: [],
    volumes: 1,
    stats: { files: 1, bytes: 3, storedFiles: 1, storedBytes: 3 },
    createdBy: 'cerberus test',
  };
}

/** Writes a whole generation through GenerationWriter, as backup does. */
async function writeGeneration(backend: Backend, level: Level, id: string, parent: string | null = null): Promise<GenerationWriter> {
  const w = new GenerationWriter(backend, level, id);
  await w.begin();
  const vol = Buffer.from(`volume of ${id}`);
  await w.put('data.tar.gpg.0001', () => Readable.from([vol]), vol.length, sha256Hex(vol));
  const man = Buffer.from(`manifest of ${id}`);
  await w.putBuffer(MANIFEST, man, sha256Hex(man));
  const inf = Buffer.from(JSON.stringify(info(id, level, parent, parent ? [parent, id] : [id])));
  await w.putBuffer(INFO, inf, sha256Hex(inf));
  return w;
}

async function tree(dir = root): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    out.push(path.relative(root, p));
    if (e.isDirectory()) out.push(...(await tree(p)));
  }
  return out.sort();
}

/** A LocalBackend that cannot move (like a plain WebDAV or S3 target) and records what it is asked. */
class RecordingBackend implements Backend {
  readonly calls: string[] = [];
  failRemoveAfter = Infinity;
  readonly capabilities;
  readonly description = 'recording';
  constructor(
    private readonly inner: LocalBackend,
    canMove: boolean,
  ) {
    this.capabilities = { ...inner.capabilities, move: canMove };
    if (canMove) this.move = (from: string, to: string) => (this.calls.push(`move ${from} ${to}`), inner.move(from, to));
  }
  move?: (from: string, to: string) => Promise<void>;
  put(p: string, body: () => Readable, size: number, opts?: RequestOptions) {
    this.calls.push(`put ${p}${opts?.deferSync ? ' (deferred)' : ''}`);
    return this.inner.put(p, body, size, opts);
  }
  flush() {
    this.calls.push('flush');
    return this.inner.flush();
  }
  get(p: string) {
    return this.inner.get(p);
  }
  stat(p: string) {
    return this.inner.stat(p);
  }
  list(p: string) {
    return this.inner.list(p);
  }
  async remove(p: string) {
    if (this.calls.filter((c) => c.startsWith('remove ')).length >= this.failRemoveAfter) throw new Error('connection lost');
    this.calls.push(`remove ${p}`);
    return this.inner.remove(p);
  }
  mkdir(p: string) {
    this.calls.push(`mkdir ${p}`);
    return this.inner.mkdir(p);
  }
}

const Q = '2026-10-01T030011Z';
const D = '2026-11-22T030012Z';

describe('SHA256SUMS', () => {
  it('formats in the sha256sum format, sorted, and parses back', () => {
    const sums = new Map([
      ['data.tar.gpg.0002', 'b'.repeat(64)],
      ['data.tar.gpg.0001', 'a'.repeat(64)],
      ['name with spaces', 'c'.repeat(64)],
    ]);
    const text = formatSums(sums);
    expect(text).toBe(`${'a'.repeat(64)}  data.tar.gpg.0001\n${'b'.repeat(64)}  data.tar.gpg.0002\n${'c'.repeat(64)}  name with spaces\n`);
    expect(parseSums(text)).toEqual(sums);
    // binary-mode marker and blank lines, as sha256sum may write them
    expect(parseSums(`${'d'.repeat(64)} *x\n\n`)).toEqual(new Map([['x', 'd'.repeat(64)]]));
  });

  it('refuses malformed lines with INTEGRITY', () => {
    for (const bad of ['nonsense', `${'a'.repeat(63)}  x`, `${'A'.repeat(64)}  x`, `${'a'.repeat(64)}x`]) {
      expect(() => parseSums(bad)).toThrow(CerberusError);
      try {
        parseSums(bad);
      } catch (e) {
        expect((e as CerberusError).code).toBe('INTEGRITY');
      }
    }
  });
});

describe('GenerationWriter', () => {
  it('shows nothing before commit, and the whole generation after it', async () => {
    const w = await writeGeneration(local, 'quarterly', Q);
    expect(w.workDir).toBe(`quarterly/.incomplete-${Q}`);
    expect(w.finalDir).toBe(`quarterly/${Q}`);
    const before = await listGenerations(local);
    expect(before.committed).toEqual([]);
    expect(before.leftovers).toEqual([{ dir: `quarterly/.incomplete-${Q}`, why: 'unfinished write' }]);
    expect(await local.stat(`quarterly/${Q}`)).toBeUndefined();

    await w.commit();
    const after = await listGenerations(local);
    expect(after.leftovers).toEqual([]);
    expect(after.committed).toHaveLength(1);
    const g = after.committed[0]!;
    expect(g).toMatchObject({ id: Q, level: 'quarterly', dir: `quarterly/${Q}`, parent: null });
    expect(g.info.chain).toEqual([Q]);
    expect(g.files.map((f) => f.name)).toEqual([SUMS, 'data.tar.gpg.0001', INFO, MANIFEST].sort());
    expect(g.storedSize).toBe(g.files.reduce((s, f) => s + f.size, 0));
    expect(await tree()).toEqual(['quarterly', `quarterly/${Q}`, ...g.files.map((f) => `quarterly/${Q}/${f.name}`)].sort());

    // SHA256SUMS lists every other file with its real hash
    const sums = parseSums(await fsp.readFile(path.join(root, g.dir, SUMS), 'utf8'));
    expect([...sums.keys()].sort()).toEqual(['data.tar.gpg.0001', INFO, MANIFEST].sort());
    for (const [name, hash] of sums) expect(sha256Hex(await fsp.readFile(path.join(root, g.dir, name)))).toBe(hash);
  });

  it('writes SHA256SUMS last, then moves the folder into place', async () => {
    const rec = new RecordingBackend(local, true);
    const w = await writeGeneration(rec, 'daily', D, Q);
    await w.commit();
    const puts = rec.calls.filter((c) => c.startsWith('put ') || c.startsWith('move '));
    expect(puts.at(-2)).toBe(`put daily/.incomplete-${D}/${SUMS}`);
    expect(puts.at(-1)).toBe(`move daily/.incomplete-${D} daily/${D}`);
  });

  it('flushes deferred puts before the commit marker is written', async () => {
    const rec = new RecordingBackend(local, true);
    const w = await writeGeneration(rec, 'daily', D, Q);
    const obj = Buffer.from('a vault object');
    await rec.put(`daily/.incomplete-${D}/d/AB/obj.c9r`, () => Readable.from([obj]), obj.length, { deferSync: true });
    await w.commit();
    const tail = rec.calls.filter((c) => /^(put|move|flush)/.test(c)).slice(-4);
    expect(tail).toEqual([`put daily/.incomplete-${D}/d/AB/obj.c9r (deferred)`, 'flush', `put daily/.incomplete-${D}/${SUMS}`, `move daily/.incomplete-${D} daily/${D}`]);
    expect(await fsp.readFile(path.join(root, 'daily', D, 'd/AB/obj.c9r'), 'utf8')).toBe('a vault object');
  });

  it('leaves nothing after abort', async () => {
    await local.mkdir('quarterly');
    const w = await writeGeneration(local, 'quarterly', Q);
    await w.abort();
    expect(await tree()).toEqual(['quarterly']);
    expect(await listGenerations(local)).toEqual({ committed: [], leftovers: [], damaged: [] });
    // abort before anything was written is fine too
    const w2 = new GenerationWriter(local, 'daily', D);
    await w2.abort();
  });

  it('refuses to write a generation that exists', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    const w = new GenerationWriter(local, 'quarterly', Q);
    await expect(w.begin()).rejects.toMatchObject({ code: 'USAGE' });
  });

  it('without move, writes in place and SHA256SUMS alone commits', async () => {
    const rec = new RecordingBackend(local, false);
    const w = await writeGeneration(rec, 'daily', D, Q);
    expect(w.workDir).toBe(`daily/${D}`);
    const before = await listGenerations(rec);
    expect(before.committed).toEqual([]);
    expect(before.leftovers).toEqual([{ dir: `daily/${D}`, why: `no ${SUMS} (never committed, or half deleted)` }]);
    await w.commit();
    expect(rec.calls.at(-1)).toBe(`put daily/${D}/${SUMS}`);
    const after = await listGenerations(rec);
    expect(after.committed.map((g) => g.id)).toEqual([D]);
    expect(after.committed[0]!.parent).toBe(Q);
    await w.abort();
  });
});

describe('listGenerations', () => {
  it('lists committed generations of every level, oldest first, and reports the rest as leftovers', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    await (await writeGeneration(local, 'daily', D, Q)).commit();
    const W = '2026-11-16T030010Z';
    await (await writeGeneration(local, 'weekly', W, Q)).commit();
    // a generation whose writer died before commit
    await writeGeneration(local, 'monthly', '2026-11-01T030009Z', Q);
    // a folder with files but no SHA256SUMS (or a half-deleted one)
    await local.put(`daily/2026-11-21T030000Z/data.tar.gpg.0001`, () => Readable.from([Buffer.from('x')]), 1);
    // SHA256SUMS but an info.json that does not match the folder
    const bad = '2026-11-20T030000Z';
    await local.put(`daily/${bad}/${SUMS}`, () => Readable.from([Buffer.from('')]), 0);
    const wrongInfo = Buffer.from(JSON.stringify(info(D, 'daily', Q, [Q, D])));
    await local.put(`daily/${bad}/${INFO}`, () => Readable.from([wrongInfo]), wrongInfo.length);
    // SHA256SUMS and no info.json at all
    await local.put(`daily/2026-11-19T030000Z/${SUMS}`, () => Readable.from([Buffer.from('')]), 0);
    // names that are not generation ids, and stray files
    await local.mkdir('weekly/some folder');
    await local.put('daily/stray-file', () => Readable.from([Buffer.from('x')]), 1);
    await local.mkdir('yearly/2026');

    const { committed, leftovers, damaged } = await listGenerations(local);
    expect(committed.map((g) => `${g.level}/${g.id}`)).toEqual([`quarterly/${Q}`, `weekly/${W}`, `daily/${D}`]);
    expect(leftovers.map((l) => l.dir).sort()).toEqual(
      ['monthly/.incomplete-2026-11-01T030009Z', 'daily/2026-11-21T030000Z', 'weekly/some folder'].sort(),
    );
    expect(leftovers.find((l) => l.dir === 'daily/2026-11-21T030000Z')?.why).toMatch(/SHA256SUMS/);
    // committed (SHA256SUMS is there) but unreadable: kept for a person, never cleared by prune
    expect(damaged.map((l) => l.dir).sort()).toEqual([`daily/${bad}`, 'daily/2026-11-19T030000Z'].sort());
    expect(damaged.every((l) => /info\.json/.test(l.why))).toBe(true);
  });

  it('reads info.json twice when it does not match SHA256SUMS, and calls it damaged only then', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    const info = `quarterly/${Q}/${INFO}`;
    const good = await readSmall(local, info);
    // a backend whose first read of info.json comes back altered, as a bad network might
    let reads = 0;
    const flaky: Backend = Object.create(local) as Backend;
    flaky.get = async (p, range) => {
      if (p === info && reads++ === 0) return Readable.from([Buffer.from(good.toString().replace('quarterly', 'quarterlx'))]);
      return local.get(p, range);
    };
    expect((await listGenerations(flaky)).committed.map((g) => g.id)).toEqual([Q]);
    expect(reads).toBe(2);
    flaky.get = async (p, range) => (p === info ? Readable.from([Buffer.from('{}')]) : local.get(p, range));
    const listing = await listGenerations(flaky);
    expect(listing.committed).toEqual([]);
    expect(listing.leftovers).toEqual([]);
    expect(listing.damaged).toEqual([{ dir: `quarterly/${Q}`, why: `${INFO} does not match ${SUMS}` }]);
  });

  it('leaves out a generation deleted while it is listed, and still fails on one that is only missing a file', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    await (await writeGeneration(local, 'daily', D, Q)).commit();
    // a prune beside the listing (a restore takes no lock): the folder is listed, then deleted
    // before its SHA256SUMS is read
    const racing: Backend = Object.create(local) as Backend;
    racing.get = async (p, range) => {
      if (p === `daily/${D}/${SUMS}`) await deleteGeneration(local, `daily/${D}`);
      return local.get(p, range);
    };
    expect(await listGenerations(racing)).toEqual({ committed: [expect.objectContaining({ id: Q })], leftovers: [], damaged: [] });
    // SHA256SUMS still there but info.json not found: damage, not a deletion, so no silence
    await (await writeGeneration(local, 'daily', D, Q)).commit();
    const missing: Backend = Object.create(local) as Backend;
    missing.get = async (p, range) => {
      if (p === `daily/${D}/${INFO}`) await local.remove(p);
      return local.get(p, range);
    };
    await expect(listGenerations(missing)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('finds nothing in an empty or absent repository', async () => {
    expect(await listGenerations(local)).toEqual({ committed: [], leftovers: [], damaged: [] });
    expect(await listGenerations(new LocalBackend(path.join(root, 'absent')))).toEqual({ committed: [], leftovers: [], damaged: [] });
  });
});

describe('deleteGeneration', () => {
  it('removes SHA256SUMS first, then the rest', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    await (await writeGeneration(local, 'daily', D, Q)).commit();
    const rec = new RecordingBackend(local, true);
    await deleteGeneration(rec, `daily/${D}`);
    const removes = rec.calls.filter((c) => c.startsWith('remove '));
    expect(removes[0]).toBe(`remove daily/${D}/${SUMS}`);
    expect(removes.at(-1)).toBe(`remove daily/${D}`);
    expect(removes).toHaveLength(5); // SUMS, 3 files, the folder
    expect((await listGenerations(local)).committed.map((g) => g.id)).toEqual([Q]);
    expect(await tree()).not.toContain(`daily/${D}`);
  });

  it('never leaves a half-deleted generation that looks whole', async () => {
    await (await writeGeneration(local, 'quarterly', Q)).commit();
    const rec = new RecordingBackend(local, true);
    rec.failRemoveAfter = 2; // the connection drops after two removals
    await expect(deleteGeneration(rec, `quarterly/${Q}`)).rejects.toThrow('connection lost');
    const { committed, leftovers } = await listGenerations(local);
    expect(committed).toEqual([]);
    expect(leftovers.map((l) => l.dir)).toEqual([`quarterly/${Q}`]);
  });
});
