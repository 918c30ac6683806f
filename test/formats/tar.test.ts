import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarPacker, nsToPaxTime, paxTimeToNs, readTar, type TarEntryHeader, type TarReadEntry } from '../../src/formats/tar.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-tar-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const UID = process.getuid?.() ?? 0;
const GID = process.getgid?.() ?? 0;

interface Spec {
  h: TarEntryHeader;
  data?: Buffer;
}

const fileSpec = (p: string, data: string | Buffer, mode: number, mtimeNs: string): Spec => {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  return { h: { path: p, type: 'file', mode, mtimeNs, size: buf.length, uid: UID, gid: GID }, data: buf };
};
const dirSpec = (p: string, mode: number, mtimeNs: string): Spec => ({ h: { path: p, type: 'directory', mode, mtimeNs, size: 0, uid: UID, gid: GID } });
const linkSpec = (p: string, target: string, mtimeNs: string): Spec => ({
  h: { path: p, type: 'symlink', mode: 0o777, mtimeNs, size: 0, uid: UID, gid: GID, linkTarget: target },
});

// every path here is valid on a Linux disk (no name component above 255 bytes)
const longUtf8Dir = 'Ünïcödé-日本語-'.repeat(6); // 6 × 26 bytes
const longUtf8Path = `${longUtf8Dir}/${'ß€'.repeat(40)}/ファイル名.txt`; // well over 255 bytes
const deepAscii = Array.from({ length: 30 }, (_, i) => `level${i}`).join('/'); // ~200 chars, in ~7-char steps
const ON_DISK: Spec[] = [
  dirSpec('docs', 0o750, '1700000000111111111'),
  fileSpec('docs/a.txt', 'hello\n', 0o640, '1700000000123456789'),
  fileSpec('docs/empty.txt', '', 0o600, '1700000001000000000'),
  dirSpec('docs/empty', 0o700, '1600000000999999999'),
  linkSpec('docs/link', '../elsewhere/target file', '1700000002000000001'),
  linkSpec('docs/long-link', `../${'t'.repeat(150)}/${'ü'.repeat(60)}`, '1700000003000000000'),
  fileSpec('docs/setuid-tool', Buffer.from([0, 1, 2, 255]), 0o4755, '1234567890000000001'),
  fileSpec('docs/no-permissions', 'secret', 0o000, '1700000004000000000'),
  dirSpec('docs/sticky', 0o1777, '1700000005500000000'),
  fileSpec('docs/name with "quotes", \\ and\ttab', 'q', 0o644, '1700000006000000000'),
  fileSpec('docs/new\nline', 'n', 0o644, '1700000007000000000'),
  fileSpec(`deep/${deepAscii}/file-at-the-bottom.bin`, Buffer.alloc(1000, 7), 0o644, '1700000008000000000'),
  fileSpec(`utf8/${longUtf8Path}`, 'unicode', 0o644, '1700000009000000000'),
  fileSpec('docs/big-block-multiple', Buffer.alloc(512 * 3, 1), 0o644, '1700000010000000000'),
  fileSpec('docs/before-1970', 'old', 0o644, '-1500000000'),
  fileSpec('docs/year-2100', 'future', 0o644, '4102444800000000005'),
];

/** The archive TarPacker writes; every buffer it emits is copied, as its contract allows reuse. */
function writeArchive(specs: Spec[]): Buffer {
  const chunks: Buffer[] = [];
  const w = new TarPacker((b) => chunks.push(Buffer.from(b)));
  for (const s of specs) {
    w.header(s.h);
    if (s.h.type === 'file') {
      // in two pieces, as reads would give it
      w.body(s.data!.subarray(0, 2));
      w.body(s.data!.subarray(2));
      w.endBody(s.data!.length);
    }
  }
  w.finish();
  return Buffer.concat(chunks);
}

type ReadBack = Omit<TarReadEntry, 'body'> & { data: Buffer };

async function readArchive(buf: Buffer, chunkSize = 4096): Promise<ReadBack[]> {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) parts.push(buf.subarray(i, i + chunkSize));
  const out: ReadBack[] = [];
  await readTar(Readable.from(parts), async (e) => {
    const data: Buffer[] = [];
    for await (const c of e.body) data.push(c as Buffer);
    out.push({ path: e.path, type: e.type, mode: e.mode, size: e.size, mtimeNs: e.mtimeNs, linkTarget: e.linkTarget, data: Buffer.concat(data) });
  });
  return out;
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: Readable } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH, TZ: 'UTC', LC_ALL: 'C' },
      stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    if (opts.input) {
      // tar may exit before reading everything if it fails; that shows in its exit code
      child.stdin!.on('error', () => undefined);
      opts.input.on('error', reject);
      opts.input.pipe(child.stdin!);
    }
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Undoes GNU tar's `--quoting-style=c` (LC_ALL=C: every non-ASCII byte is an octal escape). */
function unquoteC(q: string): string {
  expect(q.startsWith('"') && q.endsWith('"'), q).toBe(true);
  const s = q.slice(1, -1);
  const bytes: number[] = [];
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, '\\': 92, '"': 34, '?': 63 };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      bytes.push(c.charCodeAt(0));
      continue;
    }
    const next = s[i + 1]!;
    if (/[0-7]/.test(next)) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      expect(simple[next], `escape \\${next}`).toBeDefined();
      bytes.push(simple[next]!);
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `2023-11-14 22:13:20.123456789` (UTC) → nanoseconds */
function listedTimeToNs(date: string, time: string): string {
  const [hms, frac = ''] = time.split('.');
  const sec = BigInt(Date.parse(`${date}T${hms}Z`) / 1000);
  return (sec * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9))).toString();
}

function modeString(type: TarEntryHeader['type'], mode: number): string {
  const t = type === 'directory' ? 'd' : type === 'symlink' ? 'l' : '-';
  const bit = (m: number, c: string) => (mode & m ? c : '-');
  const x = (m: number, special: number, set: string, unset: string) => (mode & special ? (mode & m ? set : unset) : bit(m, 'x'));
  return (
    t +
    bit(0o400, 'r') + bit(0o200, 'w') + x(0o100, 0o4000, 's', 'S') +
    bit(0o040, 'r') + bit(0o020, 'w') + x(0o010, 0o2000, 's', 'S') +
    bit(0o004, 'r') + bit(0o002, 'w') + x(0o001, 0o1000, 't', 'T')
  );
}

describe('pax times', () => {
  it('converts nanoseconds to pax decimal seconds and back', () => {
    const cases: Array<[string, string]> = [
      ['0', '0.000000000'],
      ['1', '0.000000001'],
      ['1700000000123456789', '1700000000.123456789'],
      ['-1', '-0.000000001'],
      ['-1500000000', '-1.500000000'],
      ['-86400000000000', '-86400.000000000'],
    ];
    for (const [ns, pax] of cases) {
      expect(nsToPaxTime(ns)).toBe(pax);
      expect(paxTimeToNs(pax)).toBe(ns);
    }
    // what other writers put there
    expect(paxTimeToNs('1700000000')).toBe('1700000000000000000');
    expect(paxTimeToNs('1700000000.5')).toBe('1700000000500000000');
    expect(paxTimeToNs('-1.5')).toBe('-1500000000');
  });
});

describe('TarPacker + readTar', () => {
  it('round-trips files, folders, symlinks, modes, nanosecond times and long names', async () => {
    const specs = [
      ...ON_DISK,
      // one name component longer than any disk allows: fine inside the archive
      fileSpec(`${'Ω'.repeat(200)}/x`, 'x', 0o644, '1'),
    ];
    const archive = writeArchive(specs);
    expect(archive.length % 512).toBe(0);
    for (const chunkSize of [archive.length, 512, 777]) {
      const back = await readArchive(archive, chunkSize);
      expect(back.map((e) => e.path)).toEqual(specs.map((s) => s.h.path));
      for (const [i, s] of specs.entries()) {
        const e = back[i]!;
        expect(e.type, s.h.path).toBe(s.h.type);
        expect(e.mode, s.h.path).toBe(s.h.mode);
        expect(e.mtimeNs, s.h.path).toBe(s.h.mtimeNs);
        expect(e.linkTarget, s.h.path).toBe(s.h.linkTarget);
        expect(e.size, s.h.path).toBe(s.data?.length ?? 0);
        expect(e.data.equals(s.data ?? Buffer.alloc(0)), s.h.path).toBe(true);
      }
    }
  });

  it('writes from file() as from header() and body()', async () => {
    const chunks: Buffer[] = [];
    const w = new TarPacker((b) => chunks.push(Buffer.from(b)));
    w.file({ path: '.cerberus/deleted.txt', mode: 0o644, mtimeNs: '1700000000000000042', uid: 0, gid: 0 }, Buffer.from('a\0b\0'));
    w.finish();
    const back = await readArchive(Buffer.concat(chunks));
    expect(back).toHaveLength(1);
    expect(back[0]).toMatchObject({ path: '.cerberus/deleted.txt', type: 'file', size: 4, mtimeNs: '1700000000000000042' });
    expect(back[0]!.data.toString()).toBe('a\0b\0');
  });

  it('drains bodies a reader leaves unread', async () => {
    const archive = writeArchive(ON_DISK);
    const seen: string[] = [];
    await readTar(Readable.from([archive]), async (e) => {
      seen.push(e.path);
    });
    expect(seen).toEqual(ON_DISK.map((s) => s.h.path));
  });

  it('fails on a truncated archive', async () => {
    const archive = writeArchive(ON_DISK);
    await expect(readArchive(archive.subarray(0, 2048 + 100))).rejects.toThrow();
  });

  it('refuses a body longer or shorter than its header says: the archive would be misaligned', () => {
    const w = new TarPacker(() => undefined);
    w.header({ path: 'f', type: 'file', mode: 0o644, mtimeNs: '0', size: 10, uid: 0, gid: 0 });
    w.body(Buffer.alloc(4));
    expect(() => w.endBody(10)).toThrow(/6 bytes of a tar entry missing/);
    expect(() => w.body(Buffer.alloc(7))).toThrow(/1 bytes more/);
  });

  it('puts uid and gid past the octal fields into the pax header', async () => {
    const chunks: Buffer[] = [];
    const w = new TarPacker((b) => chunks.push(Buffer.from(b)));
    w.header({ path: 'big-ids', type: 'directory', mode: 0o755, mtimeNs: '5', size: 0, uid: 3_000_000, gid: 4_000_000 });
    w.finish();
    const r = await run('tar', ['-tv', '--numeric-owner', '-f', '-'], { input: Readable.from(chunks) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^drwxr-xr-x 3000000\/4000000 /);
  });
});

describe('GNU tar reads what TarPacker writes', () => {
  let archiveFile: string;
  beforeAll(async () => {
    archiveFile = path.join(tmp, 'interop.tar');
    await fsp.writeFile(archiveFile, writeArchive(ON_DISK));
  });

  it('lists the exact names, link targets, modes, sizes and times', async () => {
    const r = await run('tar', ['-tv', '--full-time', '--numeric-owner', '--quoting-style=c', '-f', archiveFile]);
    expect(r.stderr.replace(/^tar: .*(implausibly old|in the future).*\n/gm, '')).toBe('');
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(ON_DISK.length);
    for (const [i, s] of ON_DISK.entries()) {
      const m = /^(\S{10}) (\d+)\/(\d+) +(\d+) (\S+) (\S+) +(".*?(?<!\\)(?:\\\\)*")(?: -> (".*"))?$/.exec(rows[i]!);
      expect(m, rows[i]).not.toBeNull();
      const [, mode, uid, gid, size, date, time, name, target] = m!;
      const h = s.h;
      expect(unquoteC(name!)).toBe(h.type === 'directory' ? `${h.path}/` : h.path);
      expect(mode, h.path).toBe(modeString(h.type, h.mode));
      expect(Number(uid)).toBe(UID);
      expect(Number(gid)).toBe(GID);
      expect(Number(size), h.path).toBe(s.data?.length ?? 0);
      // GNU tar shows negative fractional times oddly (it lists its own -1.5 as 23:59:59.5); extraction checks those
      if (!h.mtimeNs.startsWith('-')) expect(listedTimeToNs(date!, time!), h.path).toBe(h.mtimeNs);
      if (h.type === 'symlink') expect(unquoteC(target!)).toBe(h.linkTarget);
      else expect(target).toBeUndefined();
    }
  });

  it('extracts them exactly', async () => {
    const dest = path.join(tmp, 'extracted');
    await fsp.mkdir(dest);
    const r = await run('tar', ['-x', '-p', '--numeric-owner', '-f', archiveFile], { cwd: dest });
    expect(r.stderr.replace(/^tar: .*(implausibly old|in the future).*\n/gm, '')).toBe('');
    expect(r.code).toBe(0);
    for (const s of ON_DISK) {
      const p = path.join(dest, s.h.path);
      const st = await fsp.lstat(p, { bigint: true });
      const type = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other';
      expect(type, s.h.path).toBe(s.h.type);
      expect(st.mtimeNs.toString(), s.h.path).toBe(s.h.mtimeNs);
      if (s.h.type === 'symlink') {
        expect(await fsp.readlink(p)).toBe(s.h.linkTarget);
        continue;
      }
      expect(Number(st.mode & 0o7777n).toString(8), s.h.path).toBe(s.h.mode.toString(8));
      if (s.h.type === 'file') {
        if (!(s.h.mode & 0o400)) await fsp.chmod(p, 0o600); // mode checked above; let a non-root user read it
        expect((await fsp.readFile(p)).equals(s.data!), s.h.path).toBe(true);
      }
    }
    // nothing else was made
    const all: string[] = [];
    const walk = async (d: string, rel: string): Promise<void> => {
      for (const e of await fsp.readdir(d, { withFileTypes: true })) {
        const r2 = rel ? `${rel}/${e.name}` : e.name;
        all.push(r2);
        if (e.isDirectory()) await walk(path.join(d, e.name), r2);
      }
    };
    await walk(dest, '');
    const implied = new Set<string>();
    for (const s of ON_DISK) {
      const parts = s.h.path.split('/');
      for (let i = 1; i <= parts.length; i++) implied.add(parts.slice(0, i).join('/'));
    }
    expect(all.sort()).toEqual([...implied].sort());
  });

  it('lists a file over 8 GiB and the entry after it', { timeout: 300_000 }, async () => {
    const size = 8 * 1024 ** 3 + 1024 ** 2;
    // 1 MiB chunks: larger ones fall out of the CPU cache and make this slower, not faster
    const chunk = Buffer.alloc(1024 * 1024);
    const zeros = Readable.from(
      (function* () {
        let left = size;
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          yield n === chunk.length ? chunk : chunk.subarray(0, n);
        }
      })(),
      { objectMode: false },
    );
    const out = new PassThrough();
    const listing = run('tar', ['-tv', '--full-time', '--numeric-owner', '-f', '-'], { input: out });
    // no copies: nothing here reuses a buffer it gave the packer
    const w = new TarPacker((b) => out.write(b));
    w.header({ path: 'huge.bin', type: 'file', mode: 0o600, mtimeNs: '1700000000000000001', size, uid: 0, gid: 0 });
    for await (const c of zeros) {
      w.body(c as Buffer);
      if (out.writableNeedDrain) await once(out, 'drain');
    }
    w.endBody(size);
    w.file({ path: 'after.txt', mode: 0o644, mtimeNs: '1700000000000000002', uid: 0, gid: 0 }, Buffer.from('tail'));
    w.finish();
    out.end();
    const r = await listing;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = r.stdout.trimEnd().split('\n');
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(new RegExp(`^-rw------- 0/0 +${size} 2023-11-14 22:13:20\\.000000001 huge\\.bin$`));
    expect(rows[1]).toMatch(/^-rw-r--r-- 0\/0 +4 2023-11-14 22:13:20\.000000002 after\.txt$/);
  });
});
