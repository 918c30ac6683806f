import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { Manifest, ManifestEntry } from '../../src/engine/manifest.js';
import { readPrivateKey, readPublicKeys } from '../../src/formats/openpgp/keys.js';
import { decryptBuffer, decryptStream, encryptBuffer, encryptStream } from '../../src/formats/openpgp/message.js';
import { readTar, TarPacker } from '../../src/formats/tar.js';
import { VOLUME_PATTERN, volumeName } from '../../src/formats/volumes.js';
import { formatSums, parseSums } from '../../src/repository/generations.js';
import { sha256Hex } from '../../src/repository/io.js';
import { diffTrees, PASSPHRASE, snapshotTree, tempDir, workspace, workspaceAt, type RunResult, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { expectError } from '../helpers/errors.js';

/*
 * Bad input end to end: each case must give one clear error line, the right exit code, no
 * restore left behind that looks complete, and no damage to the repository.
 */

const VOL = 64 * 1024;
const T1 = '2026-01-05T03:00:00Z';
const ID1 = '2026-01-05T030000Z';
const T2 = '2026-04-06T03:00:00Z'; // a new quarter: a second, independent full generation
const ID2 = '2026-04-06T030000Z';

interface Prepared {
  ws: Workspace;
  /** the source as generation 1 holds it */
  first: Map<string, TreeEntry>;
  second: Map<string, TreeEntry> | undefined;
  gen1: string;
  gen2: string;
}

async function fillSource(src: string): Promise<void> {
  await fsp.mkdir(path.join(src, 'docs/deep'), { recursive: true });
  await fsp.mkdir(path.join(src, 'photos'), { recursive: true });
  await fsp.writeFile(path.join(src, 'big.bin'), randomBytes(180_000));
  await fsp.writeFile(path.join(src, 'photos/a.jpg'), randomBytes(120_000));
  await fsp.writeFile(path.join(src, 'docs/report.txt'), 'quarterly report\n'.repeat(50));
  await fsp.writeFile(path.join(src, 'docs/deep/notes.md'), '# notes\n');
  await fsp.writeFile(path.join(src, 'empty.txt'), '');
  await fsp.symlink('docs/report.txt', path.join(src, 'report-link'));
  await fsp.chmod(path.join(src, 'big.bin'), 0o600);
  await fsp.chmod(path.join(src, 'docs/report.txt'), 0o640);
}

function ok(r: RunResult, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
}

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fsp.rm(d, { recursive: true, force: true });
});

/** A workspace with a key pair, a repository and one full generation, made once and copied per test. */
let template: Promise<{ dir: string; first: Map<string, TreeEntry> }> | undefined;
function getTemplate() {
  template ??= (async () => {
    const ws = await workspace({ volumeSize: '64KiB' });
    scratch.push(ws.dir);
    await fillSource(ws.src);
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    const first = await snapshotTree(ws.src);
    ok(await ws.run(['backup', '-c', ws.config, '--now', T1]), 'backup 1');
    return { dir: ws.dir, first };
  })();
  return template;
}


/** A copy of the template (and a second, independent full generation when asked). */
async function prepared(opts: { second?: boolean } = {}): Promise<Prepared> {
  const t = await getTemplate();
  const dir = await tempDir();
  scratch.push(dir);
  await fsp.cp(t.dir, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  const ws = workspaceAt(dir);
  const first = t.first;
  let second: Map<string, TreeEntry> | undefined;
  if (opts.second) {
    await fsp.writeFile(path.join(ws.src, 'added-later.bin'), randomBytes(70_000));
    second = await snapshotTree(ws.src);
    ok(await ws.run(['backup', '-c', ws.config, '--now', T2]), 'backup 2');
  }
  const gen1 = path.join(ws.repo, 'quarterly', ID1);
  expect(fs.existsSync(path.join(gen1, 'SHA256SUMS'))).toBe(true);
  return { ws, first, second, gen1, gen2: path.join(ws.repo, 'quarterly', ID2) };
}


/** The --to folder is absent (or exactly as before) and no staging folder is left anywhere near. */
async function expectNoRestore(to: string, before?: Map<string, TreeEntry>): Promise<void> {
  const parent = path.dirname(to);
  if (fs.existsSync(parent)) expect((await fsp.readdir(parent)).filter((n) => n.startsWith('.cerberus-restore-'))).toEqual([]);
  if (!before) {
    expect(fs.existsSync(to), `${to} should not exist`).toBe(false);
    return;
  }
  expect((await fsp.readdir(to)).filter((n) => n.startsWith('.cerberus-restore-'))).toEqual([]);
  expect(diffTrees(before, await snapshotTree(to))).toEqual([]);
}

/** A normal restore of `id` gives exactly `expected`. */
async function expectRestores(ws: Workspace, id: string, expected: Map<string, TreeEntry>): Promise<void> {
  const to = path.join(ws.dir, `check-${randomBytes(4).toString('hex')}`);
  ok(await ws.run(['restore', '-c', ws.config, '--at', id, '--to', to]), `restore ${id}`);
  expect(diffTrees(expected, await snapshotTree(to))).toEqual([]);
  await fsp.rm(to, { recursive: true });
}

async function expectVerify(ws: Workspace, good: boolean, pattern?: RegExp): Promise<void> {
  const r = await ws.run(['verify', '-c', ws.config]);
  expect(r.code, r.stderr).toBe(good ? 0 : 1);
  expect(r.stdout).toMatch(good ? /no problems/ : /[1-9]\d* problems/);
  if (pattern) expect(r.stderr).toMatch(pattern);
}

async function volumesOf(gen: string): Promise<string[]> {
  return (await fsp.readdir(gen)).filter((n) => VOLUME_PATTERN.test(n)).sort();
}

/** Rewrites SHA256SUMS for what the folder now holds, as an attacker would. */
async function resum(gen: string): Promise<void> {
  const sums = new Map<string, string>();
  for (const n of await fsp.readdir(gen)) if (n !== 'SHA256SUMS') sums.set(n, sha256Hex(await fsp.readFile(path.join(gen, n))));
  await fsp.writeFile(path.join(gen, 'SHA256SUMS'), formatSums(sums));
  expect(parseSums(formatSums(sums)).size).toBe(sums.size);
}

/** Copies of a generation's files, to put back after damaging them. */
async function saveGeneration(gen: string): Promise<() => Promise<void>> {
  const saved = new Map<string, Buffer>();
  for (const n of await fsp.readdir(gen)) saved.set(n, await fsp.readFile(path.join(gen, n)));
  return async () => {
    for (const n of await fsp.readdir(gen)) if (!saved.has(n)) await fsp.rm(path.join(gen, n));
    for (const [n, b] of saved) await fsp.writeFile(path.join(gen, n), b);
  };
}

const privateKey = (ws: Workspace) => readPrivateKey(path.join(ws.keys, 'cerberus.key.asc'), PASSPHRASE);
const publicKeys = (ws: Workspace) => readPublicKeys([path.join(ws.keys, 'cerberus.pub.asc')]);

/** Decrypts, changes and re-encrypts a manifest to the repository's public key; SHA256SUMS follows. */
async function rewriteManifest(ws: Workspace, gen: string, change: (m: Manifest) => void): Promise<void> {
  const file = path.join(gen, 'manifest.json.gpg');
  const plain = await decryptBuffer(await fsp.readFile(file), { key: await privateKey(ws) }, 'test');
  const m = JSON.parse(Buffer.from(plain).toString('utf8')) as Manifest;
  change(m);
  await fsp.writeFile(file, await encryptBuffer(Buffer.from(JSON.stringify(m)), { keys: await publicKeys(ws) }, 'none'));
  await resum(gen);
}

interface RawEntry {
  path: string;
  type: string;
  mode: number;
  mtimeNs: string;
  linkTarget?: string | undefined;
  data: Buffer;
}

async function readArchive(ws: Workspace, gen: string): Promise<RawEntry[]> {
  const bytes = Buffer.concat(await Promise.all((await volumesOf(gen)).map((n) => fsp.readFile(path.join(gen, n)))));
  const plain = await decryptStream(Readable.from([bytes], { objectMode: false }), { key: await privateKey(ws) }, 'test');
  const out: RawEntry[] = [];
  await readTar(plain, async (e) => {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(c as Buffer);
    out.push({ path: e.path, type: e.type, mode: e.mode, mtimeNs: e.mtimeNs, linkTarget: e.linkTarget, data: Buffer.concat(chunks) });
  });
  return out;
}

/** Replaces a generation's archive by `entries`, encrypted to the public key, in new volumes. */
async function writeArchive(ws: Workspace, gen: string, entries: RawEntry[]): Promise<void> {
  const plain: Buffer[] = [];
  const tar = new TarPacker((b) => plain.push(Buffer.from(b)));
  for (const e of entries) {
    const h = { path: e.path, mode: e.mode, mtimeNs: e.mtimeNs, uid: 0, gid: 0 };
    if (e.type === 'file') tar.file(h, e.data);
    else if (e.type === 'directory') tar.header({ ...h, type: 'directory', size: 0 });
    else tar.header({ ...h, type: 'symlink', size: 0, linkTarget: e.linkTarget ?? '' });
  }
  tar.finish();
  const chunks: Buffer[] = [];
  for await (const c of await encryptStream(Readable.from(plain), { keys: await publicKeys(ws) }, 'none')) chunks.push(Buffer.from(c as Uint8Array));
  const data = Buffer.concat(chunks);
  for (const n of await volumesOf(gen)) await fsp.rm(path.join(gen, n));
  let count = 0;
  for (let off = 0; off < data.length; off += VOL) await fsp.writeFile(path.join(gen, volumeName(++count)), data.subarray(off, off + VOL));
  const infoFile = path.join(gen, 'info.json');
  const info = JSON.parse(await fsp.readFile(infoFile, 'utf8')) as { volumes: number };
  info.volumes = count;
  await fsp.writeFile(infoFile, JSON.stringify(info, null, 2) + '\n');
  await resum(gen);
}

function fileEntry(m: Manifest, p: string): Extract<ManifestEntry, { type: 'file' }> {
  const e = m.entries.find((x) => x.path === p);
  if (e?.type !== 'file') throw new Error(`no file ${p} in the manifest`);
  return e;
}

/** None of the escape targets exists, and the workspace holds what it held before. */
async function expectNothingEscaped(ws: Workspace, outsideAbs: string, dirBefore: string[]): Promise<void> {
  expect(fs.existsSync(path.join(ws.dir, 'escape.txt'))).toBe(false);
  expect(fs.existsSync(path.join(ws.dir, 'escape2.txt'))).toBe(false);
  expect(fs.existsSync(outsideAbs)).toBe(false);
  expect((await fsp.readdir(ws.dir)).sort()).toEqual(dirBefore);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('bad input', () => {
  it('wrong private-key passphrase: exit 1, says so, restores nothing', async () => {
    const { ws, first } = await prepared();
    const repoBefore = await snapshotTree(ws.repo);
    const to = path.join(ws.dir, 'out');
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], { CERBERUS_KEY_PASSPHRASE: 'not the passphrase' });
    expectError(r, 1, [/wrong passphrase/, /cerberus\.key\.asc/], { alone: true });
    expect(r.stderr).not.toContain('not the passphrase');
    await expectNoRestore(to);
    expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
    await expectRestores(ws, ID1, first);
  });

  it('a private key the repository was not made for: exit 1, the key does not open it', async () => {
    const { ws, first } = await prepared();
    ok(await ws.run(['keygen', '--out', 'other-keys']), 'keygen 2');
    const repoBefore = await snapshotTree(ws.repo);
    const to = path.join(ws.dir, 'out');
    const r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to, '--key', 'other-keys/cerberus.key.asc']);
    expectError(r, 1, [/key or passphrase does not open it/, /manifest\.json\.gpg/]);
    await expectNoRestore(to);
    expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });

  it('a flipped byte in a data volume: restore and verify fail naming it; another chain still restores', async () => {
    const { ws, first, second, gen1 } = await prepared({ second: true });
    const vols = await volumesOf(gen1);
    expect(vols.length).toBeGreaterThanOrEqual(4);
    const restore = await saveGeneration(gen1);
    // the middle of a later volume, and the first volume's tar headers (where tar breaks before the checksum is reached)
    for (const [vol, offset] of [[vols[1]!, 30_000], [vols[0]!, 600]] as const) {
      const file = path.join(gen1, vol);
      const bytes = await fsp.readFile(file);
      bytes[offset] = bytes[offset]! ^ 0x01;
      await fsp.writeFile(file, bytes);
      const repoBefore = await snapshotTree(ws.repo);
      const to = path.join(ws.dir, 'out');
      const r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
      expectError(r, 1, [new RegExp(`volume ${escapeRe(vol)} does not match its SHA256SUMS`), new RegExp(`quarterly/${ID1}`)]);
      await expectNoRestore(to);
      await expectVerify(ws, false, new RegExp(`quarterly/${ID1}: ${escapeRe(vol)} does not match SHA256SUMS`));
      await expectRestores(ws, ID2, second!);
      expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
      await restore();
    }
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });

  it('a truncated volume, and a missing one: exit 1 naming the volume', async () => {
    const { ws, first, gen1 } = await prepared();
    const vols = await volumesOf(gen1);
    expect(vols.length).toBeGreaterThanOrEqual(4);
    const restore = await saveGeneration(gen1);
    const to = path.join(ws.dir, 'out');
    const [middle, last, gone] = [vols[1]!, vols.at(-1)!, vols[2]!];
    const damage: Array<[() => Promise<void>, RegExp]> = [
      [() => fsp.truncate(path.join(gen1, middle), 1000), new RegExp(`volume ${escapeRe(middle)} does not match its SHA256SUMS \\(1000 bytes read\\)`)],
      [() => fsp.truncate(path.join(gen1, last), 100), new RegExp(`volume ${escapeRe(last)} does not match its SHA256SUMS`)],
      [() => fsp.rm(path.join(gen1, gone)), new RegExp(`${escapeRe(gone)} is listed in SHA256SUMS but missing`)],
    ];
    for (const [harm, message] of damage) {
      await harm();
      const r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
      expectError(r, 1, [message, new RegExp(`quarterly/${ID1}`)]);
      await expectNoRestore(to);
      await restore();
    }
    // nothing else was touched: put back, it all restores
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });

  it('a tampered manifest: a flipped byte, and a validly re-encrypted one listing unsafe paths', async () => {
    const { ws, first, gen1 } = await prepared();
    const restore = await saveGeneration(gen1);
    const to = path.join(ws.dir, 'out');
    const manifest = path.join(gen1, 'manifest.json.gpg');

    const bytes = await fsp.readFile(manifest);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0x80;
    await fsp.writeFile(manifest, bytes);
    let r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
    expectError(r, 1, [/manifest\.json\.gpg .*does not match its SHA256SUMS/]);
    await expectNoRestore(to);
    await expectVerify(ws, false, /manifest\.json\.gpg does not match SHA256SUMS/);
    await restore();

    // an attacker with the public key: a well-formed manifest, correctly summed, naming paths outside --to
    const outsideAbs = path.join(ws.dir, 'abs-escape.txt');
    const evil = ['../escape.txt', outsideAbs, 'docs/../../escape2.txt'];
    const dirBefore = (await fsp.readdir(ws.dir)).sort();
    for (const bad of evil) {
      await rewriteManifest(ws, gen1, (m) => {
        fileEntry(m, 'docs/report.txt').path = bad;
      });
      if (bad === evil[0]) await expectVerify(ws, true); // the sums match: only the content can tell
      r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
      expectError(r, 1, [/unsafe path/, /tampered/]);
      await expectNoRestore(to);
      await expectNothingEscaped(ws, outsideAbs, dirBefore);
      await restore();
    }
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });

  it('a tar entry with ../ or an absolute path in a re-encrypted volume: exit 1, nothing written outside', async () => {
    const { ws, first, gen1 } = await prepared();
    const restore = await saveGeneration(gen1);
    const original = await readArchive(ws, gen1);
    expect(original.some((e) => e.path === 'docs/report.txt')).toBe(true);
    const to = path.join(ws.dir, 'out');
    const outsideAbs = path.join(ws.dir, 'abs-escape.txt');
    const dirBefore = (await fsp.readdir(ws.dir)).sort();
    const variants: Array<(es: RawEntry[]) => RawEntry[]> = [
      (es) => es.map((e) => (e.path === 'docs/report.txt' ? { ...e, path: '../escape.txt' } : e)),
      (es) => es.map((e) => (e.path === 'docs/report.txt' ? { ...e, path: outsideAbs } : e)),
      // every wanted file still there, one extra entry first
      (es) => [{ ...es.find((e) => e.path === 'docs/report.txt')!, path: 'docs/../../escape2.txt' }, ...es],
    ];
    for (const variant of variants) {
      await writeArchive(ws, gen1, variant(original));
      const r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
      expectError(r, 1, [/unsafe entry/, /nothing was restored/]);
      await expectNoRestore(to);
      await expectNothingEscaped(ws, outsideAbs, dirBefore);
      await restore();
    }
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });

  it('a symlink out of the restore folder with a file written through it: exit 1, the outside stays empty', async () => {
    const { ws, first, gen1 } = await prepared();
    const restore = await saveGeneration(gen1);
    const outside = await tempDir('cerberus-outside-');
    const to = path.join(ws.dir, 'out');
    const original = await readArchive(ws, gen1);
    const report = original.find((e) => e.path === 'docs/report.txt')!;

    // the manifest says: link evil -> outside, and a file evil/x
    await rewriteManifest(ws, gen1, (m) => {
      const f = fileEntry(m, 'docs/report.txt');
      m.entries.push({ path: 'evil', type: 'symlink', target: outside, mode: 0o777, mtimeNs: f.mtimeNs, uid: f.uid, gid: f.gid });
      m.entries.push({ ...f, path: 'evil/x' });
    });
    await writeArchive(ws, gen1, [
      ...original,
      { ...report, path: 'evil', type: 'symlink', linkTarget: outside, data: Buffer.alloc(0) },
      { ...report, path: 'evil/x' },
    ]);
    let r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
    expectError(r, 1, [/evil\/x would be written through the symlink evil/]);
    await expectNoRestore(to);
    expect(await fsp.readdir(outside)).toEqual([]);
    await restore();

    // only the tar has the link: the manifest says evil is a folder, and the manifest wins
    await rewriteManifest(ws, gen1, (m) => {
      const f = fileEntry(m, 'docs/report.txt');
      m.entries.push({ path: 'evil', type: 'dir', mode: 0o755, mtimeNs: f.mtimeNs, uid: f.uid, gid: f.gid });
      m.entries.push({ ...f, path: 'evil/x' });
    });
    await writeArchive(ws, gen1, [
      ...original,
      { ...report, path: 'evil', type: 'symlink', linkTarget: outside, data: Buffer.alloc(0) },
      { ...report, path: 'evil/x' },
    ]);
    r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
    ok(r, 'restore with a link only in the tar');
    expect((await fsp.lstat(path.join(to, 'evil'))).isDirectory()).toBe(true);
    expect(await fsp.readFile(path.join(to, 'evil/x'))).toEqual(report.data);
    expect(await fsp.readdir(outside)).toEqual([]);
    await fsp.rm(to, { recursive: true });
    await restore();

    await expectRestores(ws, ID1, first);
    await fsp.rm(outside, { recursive: true });
  });

  it('a legitimate symlink with an absolute target is restored as a link, not followed', async () => {
    const outside = await tempDir('cerberus-outside-');
    await fsp.writeFile(path.join(outside, 'keep.txt'), 'keep me\n');
    const outsideBefore = await snapshotTree(outside);
    const ws = await workspace({ volumeSize: '64KiB', keygen: false });
    scratch.push(ws.dir);
    await fsp.cp(path.join((await getTemplate()).dir, 'keys'), ws.keys, { recursive: true });
    await fillSource(ws.src);
    await fsp.symlink(outside, path.join(ws.src, 'to-outside'));
    await fsp.symlink(path.join(outside, 'keep.txt'), path.join(ws.src, 'docs/abs-file-link'));
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    const expected = await snapshotTree(ws.src);
    ok(await ws.run(['backup', '-c', ws.config, '--now', T1]), 'backup');
    const to = path.join(ws.dir, 'out');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]), 'restore');
    expect(diffTrees(expected, await snapshotTree(to))).toEqual([]);
    expect((await fsp.lstat(path.join(to, 'to-outside'))).isSymbolicLink()).toBe(true);
    expect(await fsp.readlink(path.join(to, 'to-outside'))).toBe(outside);
    expect((await fsp.lstat(path.join(to, 'docs/abs-file-link'))).isSymbolicLink()).toBe(true);
    expect(diffTrees(outsideBefore, await snapshotTree(outside))).toEqual([]);
    await fsp.rm(outside, { recursive: true });
  });

  it('a config using an unset ${VAR}: exit 2 naming the variable and the line', async () => {
    const { ws, first } = await prepared();
    const repoBefore = await snapshotTree(ws.repo);
    const lines = (await fsp.readFile(ws.config, 'utf8')).split('\n');
    const at = lines.findIndex((l) => l.includes('path: repo'));
    expect(at).toBeGreaterThan(0);
    lines[at] = lines[at]!.replace('path: repo', 'path: ${CERBERUS_TEST_NOT_SET}/repo');
    await fsp.writeFile(path.join(ws.dir, 'bad.yaml'), lines.join('\n'));
    const to = path.join(ws.dir, 'out');
    for (const args of [
      ['backup', '-c', 'bad.yaml', '--now', T2],
      ['restore', '-c', 'bad.yaml', '--at', 'latest', '--to', to],
    ]) {
      const r = await ws.run(args);
      expectError(r, 2, [new RegExp(`bad\\.yaml:${at + 1}: `), /\$\{CERBERUS_TEST_NOT_SET\}/, /not set/], { alone: true });
    }
    await expectNoRestore(to);
    expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
    await expectRestores(ws, ID1, first);
  });

  it('a config typo: exit 2 naming the key and the line', async () => {
    const { ws, first } = await prepared();
    const repoBefore = await snapshotTree(ws.repo);
    const text = (await fsp.readFile(ws.config, 'utf8')).replace(/\n*$/, '\n') + '    retention: { dayly: 7 }\n';
    const line = text.split('\n').findIndex((l) => l.includes('dayly')) + 1;
    await fsp.writeFile(path.join(ws.dir, 'bad.yaml'), text);
    const r = await ws.run(['backup', '-c', 'bad.yaml', '--now', T2]);
    expectError(r, 2, [new RegExp(`bad\\.yaml:${line}: `), /retention\.dayly: unknown key/, /did you mean "daily"/], { alone: true });
    expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
    await expectRestores(ws, ID1, first);
  });

  it('an unwritable --to (parent is a file; under /proc): exit 1 naming the path', async () => {
    const { ws, first } = await prepared();
    const afile = path.join(ws.dir, 'afile');
    await fsp.writeFile(afile, 'a plain file\n');
    const to = path.join(afile, 'out');
    let r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
    expectError(r, 1, [new RegExp(escapeRe(to)), /ENOTDIR|not a folder/]);
    expect(await fsp.readFile(afile, 'utf8')).toBe('a plain file\n');
    expect((await fsp.readdir(ws.dir)).filter((n) => n.startsWith('.cerberus-restore-'))).toEqual([]);

    const proc = `/proc/cerberus-test-${randomBytes(4).toString('hex')}/out`;
    const b = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', proc], {}, { timeoutMs: 30_000 });
    expect(b.timedOut, 'restore into /proc hung').toBe(false);
    expectError(b, 1, [new RegExp(escapeRe(proc))]);
    expect(fs.existsSync(path.dirname(proc))).toBe(false);
    await expectRestores(ws, ID1, first);
  });

  it('--to not empty: exit 2 without --overwrite; with it, the restore replaces what is there', async () => {
    const { ws, first } = await prepared();
    const to = path.join(ws.dir, 'out');
    await fsp.mkdir(path.join(to, 'big.bin'), { recursive: true }); // a folder where the backup has a file
    await fsp.writeFile(path.join(to, 'big.bin', 'inner.txt'), 'x');
    await fsp.writeFile(path.join(to, 'docs'), 'a file where the backup has a folder');
    await fsp.writeFile(path.join(to, 'empty.txt'), 'not empty any more');
    await fsp.writeFile(path.join(to, 'keep-me.txt'), 'mine');
    const before = await snapshotTree(to);

    let r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to]);
    expectError(r, 2, [/not empty/, /--overwrite/, new RegExp(escapeRe(to))]);
    await expectNoRestore(to, before);

    r = await ws.run(['restore', '-c', ws.config, '--at', ID1, '--to', to, '--overwrite']);
    ok(r, 'restore --overwrite');
    expect(diffTrees(first, await snapshotTree(to))).toEqual(['extra: keep-me.txt']);
    expect(await fsp.readFile(path.join(to, 'keep-me.txt'), 'utf8')).toBe('mine');
    await expectNoRestore(to, await snapshotTree(to));
  });

  it('an unknown flag, a missing required flag, an unknown command, a bad --at: exit 2', async () => {
    const { ws, first } = await prepared();
    const repoBefore = await snapshotTree(ws.repo);
    const to = path.join(ws.dir, 'out');
    const cases: Array<[string[], RegExp]> = [
      [['restore', '-c', ws.config, '--at', 'latest', '--to', to, '--frobnicate'], /unknown option '--frobnicate'/],
      [['backup', '-c', ws.config, '--now', T2, '--frobnicate'], /unknown option '--frobnicate'/],
      [['restore', '-c', ws.config, '--at', 'latest'], /required option '--to <dir>' not specified/],
      [['restore', '--at', 'latest', '--to', to], /say which file holds the job: --config FILE \(or --tenants FILE\)/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const r = await ws.run(args);
      expectError(r, 2, [message], { alone: true });
    }
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'yesterday', '--to', to]);
    expectError(r, 2, [/--at yesterday is not latest, a date/]);
    await expectNoRestore(to);
    expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]);
    await expectRestores(ws, ID1, first);
  });

  it('a lock held by a live process: exit 4 naming it; a dead holder is taken over, said so', async () => {
    const { ws, first } = await prepared();
    const locks = path.join(ws.repo, 'locks');
    const host = os.hostname();
    const lockBody = (pid: number) =>
      JSON.stringify({ host, pid, command: 'cerberus backup --job docs', startedAt: new Date().toISOString(), heartbeat: new Date().toISOString() });

    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = sleeper.pid!;
      const lockFile = path.join(locks, `${host}-${pid}-test.json`);
      await fsp.writeFile(lockFile, lockBody(pid));
      const repoBefore = await snapshotTree(ws.repo);
      const r = await ws.run(['backup', '-c', ws.config, '--now', T2]);
      expectError(r, 4, [new RegExp(`pid ${pid} on ${escapeRe(host)}`), /locked/]);
      expect(diffTrees(repoBefore, await snapshotTree(ws.repo))).toEqual([]); // lock kept, no generation
      await fsp.rm(lockFile);
    } finally {
      sleeper.kill();
    }

    const gone = spawn('true', [], { stdio: 'ignore' });
    await new Promise((resolve) => gone.on('exit', resolve));
    const dead = gone.pid!;
    const expected = await snapshotTree(ws.src);
    const staleFile = `${host}-${dead}-test.json`;
    await fsp.writeFile(path.join(locks, staleFile), lockBody(dead));
    const r = await ws.run(['backup', '-c', ws.config, '--now', T2]);
    ok(r, 'backup over a stale lock');
    expect(r.stderr).toMatch(new RegExp(`taking over a stale lock locks/${escapeRe(staleFile)}: its process ${dead} on ${escapeRe(host)} is gone`));
    expect(await fsp.readdir(locks)).toEqual([]);
    expect(fs.existsSync(path.join(ws.repo, 'quarterly', ID2, 'SHA256SUMS'))).toBe(true);
    await expectRestores(ws, ID2, expected);
    await expectRestores(ws, ID1, first);
    await expectVerify(ws, true);
  });
});
