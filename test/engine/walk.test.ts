import { execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Excluder, RESERVED_DIR, walkSource, type WalkEvent, type WalkOptions } from '../../src/engine/walk.js';

let tmp: string;
let src: string;

beforeEach(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-walk-'));
  src = path.join(tmp, 'src');
  await fsp.mkdir(src);
});

afterEach(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

async function put(rel: string, content = 'x'): Promise<string> {
  const file = path.join(src, rel);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, content);
  return file;
}

async function events(roots: string[], exclude: string[] = [], opts: WalkOptions = {}): Promise<WalkEvent[]> {
  const out: WalkEvent[] = [];
  for await (const ev of walkSource(roots, new Excluder(exclude), opts)) out.push(ev);
  return out;
}

/** One line per event, e.g. `enter a`, `file a/b`, `skipped a/p (FIFO)`. */
function describeEvent(ev: WalkEvent): string {
  switch (ev.kind) {
    case 'enter':
    case 'leave':
      return `${ev.kind} ${ev.entry.path}`;
    case 'entry':
      return `${ev.entry.type} ${ev.entry.path}`;
    case 'skipped':
      return `skipped ${ev.path} (${ev.reason})`;
    case 'error':
      return `error ${ev.path} ${ev.error.code}`;
    case 'missing-root':
      return `missing-root ${ev.abs}`;
    case 'excluded':
      return `excluded ${ev.path}`;
  }
}

const lines = async (roots: string[], exclude: string[] = []) => (await events(roots, exclude)).map(describeEvent);

describe('walkSource', () => {
  it('walks in sorted order with enter and leave around each folder', async () => {
    await put('b.txt');
    await put('a/z.txt');
    await put('a/B.txt');
    await put('a/a/deep.txt');
    await put('A.txt');
    await put('a b.txt');
    await fsp.mkdir(path.join(src, 'empty'));
    expect(await lines([src])).toEqual([
      'file A.txt',
      'enter a',
      'file a/B.txt',
      'enter a/a',
      'file a/a/deep.txt',
      'leave a/a',
      'file a/z.txt',
      'leave a',
      'file a b.txt',
      'file b.txt',
      'enter empty',
      'leave empty',
    ]);
  });

  it('reports sizes, modes, nanosecond times and inodes', async () => {
    const f = await put('f.bin', 'hello world');
    await fsp.chmod(f, 0o640);
    await fsp.utimes(f, 1_700_000_000, 1_700_000_000.5);
    const evs = await events([src]);
    const e = evs.find((x) => x.kind === 'entry');
    expect(e?.kind).toBe('entry');
    if (e?.kind !== 'entry') return;
    const st = await fsp.lstat(f, { bigint: true });
    expect(e.entry).toMatchObject({ path: 'f.bin', abs: f, type: 'file', size: 11, mode: 0o640 });
    expect(e.entry.mtimeNs).toBe(st.mtimeNs.toString());
    expect(e.entry.mtimeNs).toBe('1700000000500000000');
    expect(e.entry.ino).toBe(`${st.dev}:${st.ino}`);
  });

  it('does not follow symlinks, to folders or files, and keeps their targets', async () => {
    await put('real/inside.txt');
    await fsp.symlink('real', path.join(src, 'dirlink'));
    await fsp.symlink('real/inside.txt', path.join(src, 'filelink'));
    await fsp.symlink('/nowhere/at/all', path.join(src, 'dangling'));
    await fsp.symlink(src, path.join(src, 'real', 'loop'));
    const evs = await events([src]);
    expect(evs.map(describeEvent)).toEqual([
      'symlink dangling',
      'symlink dirlink',
      'symlink filelink',
      'enter real',
      'file real/inside.txt',
      'symlink real/loop',
      'leave real',
    ]);
    const targets = Object.fromEntries(evs.flatMap((e) => (e.kind === 'entry' ? [[e.entry.path, e.entry.target]] : [])));
    expect(targets).toEqual({ dangling: '/nowhere/at/all', dirlink: 'real', filelink: 'real/inside.txt', 'real/inside.txt': undefined, 'real/loop': src });
  });

  it('applies excludes: **/name, *.ext at any depth, and absolute patterns', async () => {
    await put('.DS_Store');
    await put('a/.DS_Store');
    await put('a/b/.DS_Store');
    await put('a/b/keep.txt');
    await put('x.tmp');
    await put('a/b/y.tmp');
    await put('a/b/y.tmp.keep');
    await put('cache/big.bin');
    await put('cache/sub/more.bin');
    await put('node_modules/m/index.js');
    await put('a/node_modules/m/index.js');
    const cache = path.join(src, 'cache');
    const out = await lines([src], ['**/.DS_Store', '*.tmp', `${cache}/**`, 'node_modules']);
    expect(out).toEqual([
      'enter a',
      'enter a/b',
      'file a/b/keep.txt',
      'file a/b/y.tmp.keep',
      'leave a/b',
      'leave a',
      // `dir/**` takes what is below the folder; the folder itself stays, empty
      'enter cache',
      'leave cache',
    ]);
    // an absolute pattern naming the folder itself takes it whole
    expect(await lines([src], [cache, '**/node_modules', '**/.DS_Store', '**/*.tmp'])).not.toContain('enter cache');
    // asked for, what was left out is said: a folder once, for all below it
    const said = (await events([src], [cache, '**/node_modules', '**/.DS_Store', '**/*.tmp'], { reportExcluded: true })).map(describeEvent).filter((l) => l.startsWith('excluded'));
    expect(said).toEqual(['excluded .DS_Store', 'excluded a/.DS_Store', 'excluded a/b/.DS_Store', 'excluded a/b/y.tmp', 'excluded a/node_modules', 'excluded cache', 'excluded node_modules', 'excluded x.tmp']);
  });

  it('anchors patterns with a slash at the top of the backup', async () => {
    await put('logs/a.log');
    await put('sub/logs/b.log');
    expect(await lines([src], ['logs/**'])).toEqual(['enter logs', 'leave logs', 'enter sub', 'enter sub/logs', 'file sub/logs/b.log', 'leave sub/logs', 'leave sub']);
  });

  it('reports FIFOs and sockets as skipped and goes on', async () => {
    await put('a.txt');
    execFileSync('mkfifo', [path.join(src, 'fifo')]);
    const sock = path.join(src, 'sock');
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sock, resolve);
    });
    try {
      await put('z.txt');
      expect(await lines([src])).toEqual(['file a.txt', 'skipped fifo (FIFO)', 'skipped sock (socket)', 'file z.txt']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reports an unreadable folder as an error event and goes on', async () => {
    await put('locked/secret.txt');
    await put('z.txt');
    const locked = path.join(src, 'locked');
    await fsp.chmod(locked, 0o000);
    let out: string[];
    try {
      out = await lines([src]);
    } finally {
      await fsp.chmod(locked, 0o755);
    }
    if (process.getuid?.() === 0) {
      // root reads a 000 folder anyway; the vanishing folder below covers the error path
      expect(out).toContain('file locked/secret.txt');
    } else {
      expect(out).toEqual(['enter locked', 'error locked EACCES', 'leave locked', 'file z.txt']);
    }
  });

  it('reports a folder it cannot list (it vanished after being seen) and goes on', async () => {
    await put('a/x.txt');
    await put('gone/inside.txt');
    await put('z.txt');
    const out: string[] = [];
    // the walk is lazy: once `enter gone` is out, the folder is swapped for a file before it is listed
    for await (const ev of walkSource([src], new Excluder([]))) {
      out.push(describeEvent(ev));
      if (ev.kind === 'enter' && ev.entry.path === 'gone') {
        await fsp.rm(ev.entry.abs, { recursive: true });
        await fsp.writeFile(ev.entry.abs, 'now a file');
      }
    }
    expect(out).toEqual(['enter a', 'file a/x.txt', 'leave a', 'enter gone', 'error gone ENOTDIR', 'leave gone', 'file z.txt']);
  });

  it('skips entries deleted between listing and stat', async () => {
    await put('a/1.txt');
    await put('b/2.txt');
    const out: string[] = [];
    for await (const ev of walkSource([src], new Excluder([]))) {
      out.push(describeEvent(ev));
      if (ev.kind === 'enter' && ev.entry.path === 'a') await fsp.rm(path.join(src, 'b'), { recursive: true });
    }
    expect(out).toEqual(['enter a', 'file a/1.txt', 'leave a']);
  });

  it('skips the reserved top-level .cerberus folder, but not one further down', async () => {
    await put(`${RESERVED_DIR}/deleted.txt`);
    await put(`sub/${RESERVED_DIR}/kept.txt`);
    const out = await lines([src]);
    expect(out[0]).toMatch(/^skipped \.cerberus \(.*reserved/);
    expect(out.slice(1)).toEqual(['enter sub', 'enter sub/.cerberus', 'file sub/.cerberus/kept.txt', 'leave sub/.cerberus', 'leave sub']);
  });

  it('reports a missing root and goes on with the others', async () => {
    await put('one/a.txt');
    await put('two/b.txt');
    const missing = path.join(tmp, 'not-there');
    expect(await lines([path.join(src, 'one'), missing, path.join(src, 'two')])).toEqual([
      'enter one',
      'file one/a.txt',
      'leave one',
      `missing-root ${missing}`,
      'enter two',
      'file two/b.txt',
      'leave two',
    ]);
    expect(await lines([missing])).toEqual([`missing-root ${missing}`]);
  });

  it('puts a single root at the top, and several roots under their names', async () => {
    await put('one/a.txt');
    expect(await lines([path.join(src, 'one')])).toEqual(['file a.txt']);
    // a root that is a file is an entry under its name
    expect(await lines([path.join(src, 'one', 'a.txt')])).toEqual(['file a.txt']);
    // with several roots, a top-level .cerberus of one root is an ordinary folder
    await put(`one/${RESERVED_DIR}/x`);
    await put('two/b.txt');
    expect(await lines([path.join(src, 'one'), path.join(src, 'two')])).toContain(`file one/${RESERVED_DIR}/x`);
  });
});
