/**
 * copyFolder's choices (one step or file by file, when to fall back, what it cleans up) and the
 * local one-step copy, against a real LocalBackend with parts swapped out.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend, RequestOptions } from '../../src/storage/backend.js';
import { copyFolder } from '../../src/storage/copy-tree.js';
import { FolderCopyRefusedError, StorageError, httpStorageError } from '../../src/storage/errors.js';
import { LayeredBackend } from '../../src/storage/layer.js';
import { LocalBackend } from '../../src/storage/local.js';
import { RetryLayer } from '../../src/storage/retry.js';
import { errorOf } from '../helpers/errors.js';

const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

let root: string;
let local: LocalBackend;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(TMP, 'cerberus-copytree-'));
  local = new LocalBackend(root);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

const put = (b: Backend, p: string, data: string) => b.put(p, () => Readable.from([Buffer.from(data)]), Buffer.byteLength(data));

/** every entry under dir on disk, folders with a trailing '/' */
async function onDisk(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    out.push(e.isDirectory() ? `${p}/` : p);
    if (e.isDirectory()) out.push(...(await onDisk(dir, p)));
  }
  return out.sort();
}

async function seed(): Promise<void> {
  await put(local, 'g/1/a', 'A');
  await put(local, 'g/1/x/b', 'B');
  await put(local, 'g/1/x/y/c', '');
  await local.mkdir('g/1/empty');
}
const SEEDED = ['a', 'empty/', 'x/', 'x/b', 'x/y/', 'x/y/c'];

/** `local` with some verbs replaced (undefined removes one) */
function variant(over: Partial<Record<'copy' | 'copyTree', ((from: string, to: string, opts?: RequestOptions) => Promise<void>) | undefined>>): Backend {
  return Object.assign(Object.create(local) as LocalBackend, over);
}

describe('LocalBackend.copyTree', () => {
  it('hard-links every file into new folders; a put to the copy replaces, never writes through', async () => {
    await seed();
    await local.copyTree('g/1', 'h/2');
    expect(await onDisk(path.join(root, 'h/2'))).toEqual(SEEDED);
    const [src, dst] = await Promise.all([fsp.stat(path.join(root, 'g/1/x/b')), fsp.stat(path.join(root, 'h/2/x/b'))]);
    expect(dst.ino).toBe(src.ino);
    await put(local, 'h/2/x/b', 'changed');
    expect(await fsp.readFile(path.join(root, 'g/1/x/b'), 'utf8')).toBe('B');
  });

  it('leaves out puts in flight', async () => {
    await seed();
    await fsp.writeFile(path.join(root, 'g/1/.tmp-abc-a'), 'half');
    await local.copyTree('g/1', 'h/2');
    expect(await onDisk(path.join(root, 'h/2'))).toEqual(SEEDED);
  });

  it('refuses a symbolic link inside, saying so, and leaves no partial copy', async () => {
    await seed();
    await fsp.symlink('/etc/passwd', path.join(root, 'g/1/x/y/link'));
    const e = await errorOf(local.copyTree('g/1', 'h/2'));
    expect(e.message).toMatch(/g\/1\/x\/y\/link is a symbolic link/);
    expect(await onDisk(path.join(root, 'h'))).toEqual([]);
  });

  it('refuses an existing target, a missing source, and a copy into itself', async () => {
    await seed();
    await put(local, 'h/2/keep', 'K');
    expect((await errorOf(local.copyTree('g/1', 'h/2'))).message).toMatch(/EEXIST/);
    expect(await onDisk(path.join(root, 'h/2'))).toEqual(['keep']);
    expect((await errorOf(local.copyTree('nothing', 'h/3'))).code).toBe('NOT_FOUND');
    expect((await errorOf(local.copyTree('g/1', 'g/1/inner'))).code).toBe('INTERNAL');
  });
});

describe('copyFolder', () => {
  it('takes the one-step copy where there is one', async () => {
    await seed();
    expect(await copyFolder(local, 'g/1', 'g/2')).toBe('tree');
    expect(await onDisk(path.join(root, 'g/2'))).toEqual(SEEDED);
  });

  it('copies file by file without copyTree, empty folders too, at most `parallel` at once', async () => {
    for (let i = 0; i < 30; i++) await put(local, `g/1/d${i % 3}/f${i}`, `f${i}`);
    await local.mkdir('g/1/empty');
    let inFlight = 0;
    let most = 0;
    const b = variant({
      copyTree: undefined,
      copy: async (from, to) => {
        most = Math.max(most, ++inFlight);
        await sleep(5);
        inFlight--;
        return local.copy(from, to);
      },
    });
    const counts: number[] = [];
    expect(await copyFolder(b, 'g/1', 'g/2', { parallel: 4, onFile: (n) => counts.push(n) })).toBe('files');
    expect(await onDisk(path.join(root, 'g/2'))).toEqual(await onDisk(path.join(root, 'g/1')));
    expect(most).toBe(4);
    expect(counts).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
  });

  it('falls back to file by file when the one-step copy is refused, removing what it left', async () => {
    await seed();
    const b = variant({
      copyTree: async (_from, to) => {
        // as a server that copied some members and then answered 207
        await put(local, `${to}/a`, 'A');
        await put(local, `${to}/half/way`, 'H');
        throw new FolderCopyRefusedError('target t: copy folder: the server does not copy whole folders (HTTP 207)', { status: 207 });
      },
    });
    expect(await copyFolder(b, 'g/1', 'g/2')).toBe('files');
    expect(await onDisk(path.join(root, 'g/2'))).toEqual(SEEDED);
  });

  it('falls back when the one-step copy fails on the way, which the retry layer does not repeat', async () => {
    await seed();
    let tries = 0;
    const flaky = variant({
      copyTree: async () => {
        tries++;
        throw httpStorageError('t', 'copy folder', 503);
      },
    });
    const b = new LayeredBackend(flaky, new RetryLayer('t', { retries: 3, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 }, () => undefined));
    expect(await copyFolder(b, 'g/1', 'g/2')).toBe('files');
    expect(tries).toBe(1);
    expect(await onDisk(path.join(root, 'g/2'))).toEqual(SEEDED);
  });

  it('does not fall back on a failure that file by file would meet too, nor without copy', async () => {
    await seed();
    let copies = 0;
    const full = variant({
      copyTree: () => Promise.reject(httpStorageError('t', 'copy folder', 507)),
      copy: async (from, to) => {
        copies++;
        return local.copy(from, to);
      },
    });
    expect((await errorOf(copyFolder(full, 'g/1', 'g/2'))).message).toMatch(/507/);
    expect(copies).toBe(0);
    const treeOnly = variant({ copy: undefined, copyTree: () => Promise.reject(new FolderCopyRefusedError('refused', { status: 403 })) });
    expect(await errorOf(copyFolder(treeOnly, 'g/1', 'g/3'))).toBeInstanceOf(FolderCopyRefusedError);
  });

  it('says there is no server-side copy when the backend has neither way', async () => {
    await seed();
    const e = await errorOf(copyFolder(variant({ copy: undefined, copyTree: undefined }), 'g/1', 'g/2'));
    expect(e).toBeInstanceOf(StorageError);
    expect(e.message).toMatch(/no server-side copy/);
  });

  it('refuses an existing target before anything, a missing source, and a copy into itself', async () => {
    await seed();
    await put(local, 'g/2/keep', 'K');
    let called = false;
    const b = variant({
      copyTree: async () => {
        called = true;
        throw new FolderCopyRefusedError('refused');
      },
    });
    expect((await errorOf(copyFolder(b, 'g/1', 'g/2'))).message).toMatch(/g\/2 exists/);
    expect(called).toBe(false);
    expect(await onDisk(path.join(root, 'g/2'))).toEqual(['keep']);
    expect((await errorOf(copyFolder(local, 'nothing', 'g/3'))).code).toBe('NOT_FOUND');
    expect((await errorOf(copyFolder(local, 'g/1/a', 'g/3'))).message).toMatch(/not a folder/);
    expect((await errorOf(copyFolder(local, 'g', 'g/1/deeper'))).code).toBe('INTERNAL');
  });

  it('stops starting copies after one fails, and waits for those in flight', async () => {
    for (let i = 0; i < 20; i++) await put(local, `g/1/f${String(i).padStart(2, '0')}`, 'x');
    let started = 0;
    let finished = 0;
    const b = variant({
      copyTree: undefined,
      copy: async (from, to) => {
        const n = ++started;
        await sleep(10);
        finished++;
        if (n === 3) throw httpStorageError('t', `copy ${from}`, 500);
        return local.copy(from, to);
      },
    });
    expect((await errorOf(copyFolder(b, 'g/1', 'g/2', { parallel: 4 }))).message).toMatch(/HTTP 500/);
    expect(finished).toBe(started);
    expect(started).toBeLessThan(10);
  });
});
