import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { cerberus, diffTrees, snapshotTree, tempDir, type TreeEntry } from '../helpers/cli.js';

/**
 * `cerberus export`, the yearly cold copy, checked with Debian's 7-Zip (`7zz`, package 7zip;
 * scripts/install-test-deps.sh installs it): what it lists and extracts, with and without the
 * password, and what it refuses. Symlinks are stored as links (7-Zip's -snl) with their
 * targets as they are, and come back as links; 7-Zip puts an absolute one inside the output
 * folder when it extracts.
 */

const run = promisify(execFile);
const PASSWORD = 'cold copy password, not the vault one';
let dir: string;
let src: string;
const env = () => ({ VAULT_PASSWORD: 'vault password', EXPORT_PASSWORD: PASSWORD, CERBERUS_STATE_DIR: path.join(dir, 'state') });
const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => cerberus(args, { cwd: dir, env: { ...env(), ...extra }, timeoutMs: 600_000 });

/** 7zz with the password on stdin (or none), as a person would type it. */
function sevenZip(args: string[], password: string | undefined, cwd: string): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('7zz', args, { cwd, env: { ...process.env, LC_ALL: 'C.UTF-8' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.on('error', () => undefined);
    child.stdin.end(password === undefined ? '' : `${password}\n`);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, stdout }));
  });
}

/** What the cold copy promises: names, types, contents, link targets, empty folders (not modes or times). */
const essentials = (tree: Map<string, TreeEntry>) => new Map([...tree].map(([p, e]) => [p, { ...e, mode: 0, mtimeUs: 0n }]));

async function config(targets: string, extra = ''): Promise<void> {
  await fsp.writeFile(
    path.join(dir, 'cerberus.yaml'),
    [
      'jobs:',
      '  docs:',
      `    source: { paths: ["${src}"], exclude: ["**/Thumbs.db"] }`,
      '    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }',
      `    targets: [ ${targets} ]`,
      '    export: { password: "${EXPORT_PASSWORD}" }',
      '    timezone: UTC',
      extra,
    ].join('\n'),
  );
}

/** 1 GiB that LZMA squeezes fast (64 KiB blocks repeat) but where every block differs. */
async function bigFile(file: string, bytes: number): Promise<void> {
  const block = Buffer.alloc(64 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7919) % 251;
  const fh = await fsp.open(file, 'w');
  try {
    const chunk = Buffer.alloc(16 * 1024 * 1024);
    for (let off = 0; off < bytes; off += chunk.length) {
      for (let b = 0; b < chunk.length; b += block.length) {
        block.copy(chunk, b);
        chunk.writeUInt32BE((off + b) / block.length, b);
      }
      await fh.write(chunk, 0, Math.min(chunk.length, bytes - off));
    }
  } finally {
    await fh.close();
  }
}

beforeAll(async () => {
  dir = await tempDir('cerberus-export-');
  src = path.join(dir, 'documents');
  await fsp.mkdir(path.join(src, 'Rechnungen/2026'), { recursive: true });
  await fsp.mkdir(path.join(src, 'leer/auch leer'), { recursive: true });
  await fsp.writeFile(path.join(src, 'Rechnungen/2026/Zoë – März №1.txt'), 'Rechnung\n'.repeat(100));
  await fsp.writeFile(path.join(src, '日本語のファイル名.txt'), 'こんにちは');
  await fsp.writeFile(path.join(src, 'empty.txt'), '');
  await fsp.writeFile(path.join(src, 'Thumbs.db'), 'excluded');
  await fsp.symlink('Rechnungen/2026/Zoë – März №1.txt', path.join(src, 'latest invoice'));
  await fsp.symlink('/etc/hostname', path.join(src, 'absolute link'));
  await bigFile(path.join(src, 'scan.bin'), 1024 ** 3);
  await config(`{ name: disk, type: local, path: "${path.join(dir, 'repo')}" }`);
}, 120_000);

afterAll(async () => {
  if (dir) await fsp.rm(dir, { recursive: true, force: true });
});

describe('cerberus export', () => {
  it('writes an archive that 7zz lists and extracts bit-exactly with the password, and shows no names without it', async () => {
    // 7zz behind a wrapper that writes down every argv it is given
    const wrapper = path.join(dir, '7zz-argv');
    await fsp.writeFile(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> "${dir}/argv.log"\nexec 7zz "$@"\n`, { mode: 0o755 });
    const r = await cli(['export', '-c', 'cerberus.yaml', '--to', 'cold', '--year', '2026', '--now', '2026-12-31T12:00:00Z'], { CERBERUS_7ZZ: wrapper });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^exported 4 files \(1\.00 GiB\) to .*cold\/docs-2026\.7z \(.*\), verified\n$/);
    expect(r.stderr).toMatch(/7-Zip \d+\.\d+ writes docs-2026\.7z \(AES-256, names encrypted, -mx=1\)/);
    expect(r.stderr).toMatch(/100%: 4 of 4 files, 1\.00 GiB of 1\.00 GiB, [\d.]+ [KMG]iB\/s/);
    const archive = path.join(dir, 'cold/docs-2026.7z');
    expect((await fsp.stat(archive)).mode & 0o777).toBe(0o600);
    expect((await fsp.readdir(path.join(dir, 'cold'))).sort()).toEqual(['docs-2026.7z']);
    // the password went to 7-Zip's stdin: no argv holds it (a, t, l, e: four calls at least)
    const argv = (await fsp.readFile(path.join(dir, 'argv.log'), 'utf8')).trim().split('\n');
    expect(argv.length).toBeGreaterThanOrEqual(4);
    expect(argv.find((a) => a.startsWith('a '))).toMatch(/^a -t7z -mhe=on -mx=1 -snl .* -p \S*\.partial-/);
    for (const a of argv) expect(a).not.toContain(PASSWORD.split(',')[0]);

    // without the password: no names, nothing extracted
    const blind = await sevenZip(['l', archive], undefined, dir);
    expect(blind.code).not.toBe(0);
    expect(blind.out).not.toMatch(/Rechnung|Zoë|scan\.bin|MANIFEST/);
    const wrong = await sevenZip(['l', archive], 'not it', dir);
    expect(wrong.out).toMatch(/Wrong password/);
    expect(wrong.out).not.toMatch(/Rechnung|scan\.bin/);

    const listed = await sevenZip(['l', '-slt', archive], PASSWORD, dir);
    expect(listed.code, listed.out).toBe(0);
    expect(listed.out).toMatch(/Method = .*7zAES/);
    expect(listed.out).toMatch(/Path = latest invoice\nSize = \d+\n[\s\S]*?Attributes = A lrwxrwxrwx/);

    const out = path.join(dir, 'extracted');
    const x = await sevenZip(['x', `-o${out}`, '-snl', archive], PASSWORD, dir);
    expect(x.code, x.out).toBe(0);
    const want = await snapshotTree(src);
    want.delete('Thumbs.db');
    const got = await snapshotTree(out);
    const manifest = got.get('CERBERUS-MANIFEST.txt');
    got.delete('CERBERUS-MANIFEST.txt');
    expect(manifest).toBeDefined();
    // an absolute link is stored as it is; 7-Zip extracts it as a link into the output folder
    for (const t of [want, got]) t.delete('absolute link');
    expect(diffTrees(essentials(want), essentials(got))).toEqual([]);
    expect(await fsp.readlink(path.join(out, 'absolute link'))).toBe(path.join(out, 'etc/hostname'));
    expect((await sevenZip(['e', '-so', archive, 'absolute link'], PASSWORD, dir)).stdout).toBe('/etc/hostname');

    const text = await fsp.readFile(path.join(out, 'CERBERUS-MANIFEST.txt'), 'utf8');
    const sha = createHash('sha256').update(await fsp.readFile(path.join(src, '日本語のファイル名.txt'))).digest('hex');
    expect(text).toContain(`${sha}  15  日本語のファイル名.txt\n`);
    expect(text).toMatch(/^[0-9a-f]{64} {2}1073741824 {2}scan\.bin$/m);
    expect(text).toMatch(/^# dir {2}leer\/auch leer$/m);
    expect(text).not.toContain('Thumbs.db');
    await fsp.rm(out, { recursive: true });
  }, 600_000);

  it('verifies an export, and says so when the password is wrong or the archive is damaged', async () => {
    const archive = path.join(dir, 'cold/docs-2026.7z');
    const ok = await cli(['export', '-c', 'cerberus.yaml', '--verify', archive]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/docs-2026\.7z: 4 files, every one as its manifest says/);

    const wrong = await cli(['export', '-c', 'cerberus.yaml', '--verify', archive], { EXPORT_PASSWORD: 'a wrong password' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^cerberus: error: 7-Zip cannot test .*docs-2026\.7z: the password does not open it \(or its header is damaged\) \(check export\.password/m);
    expect(wrong.stderr).not.toContain('a wrong password');

    const damaged = path.join(dir, 'damaged.7z');
    const bytes = await fsp.readFile(archive);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x55;
    await fsp.writeFile(damaged, bytes);
    const bad = await cli(['export', '-c', 'cerberus.yaml', '--verify', damaged]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/7-Zip cannot test .*damaged\.7z: the archive is damaged/);
    await fsp.rm(damaged);
  }, 300_000);

  it('refuses: an existing year, a missing password variable, the vault password, and a full disk leaves no archive behind', async () => {
    const again = await cli(['export', '-c', 'cerberus.yaml', '--to', 'cold', '--year', '2026']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/docs-2026\.7z already exists \(a year is never overwritten silently: pass --replace/);

    const unset = await cerberus(['export', '-c', 'cerberus.yaml', '--to', 'cold2'], { cwd: dir, env: { VAULT_PASSWORD: 'vault password', CERBERUS_STATE_DIR: path.join(dir, 'state') } });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/jobs\.docs\.export\.password uses \$\{EXPORT_PASSWORD\}, which is not set/);
    // the other commands load the same config without it
    expect((await cerberus(['list', '-c', 'cerberus.yaml'], { cwd: dir, env: { VAULT_PASSWORD: 'vault password' } })).stderr).not.toMatch(/EXPORT_PASSWORD/);

    const same = await cli(['export', '-c', 'cerberus.yaml', '--to', 'cold2'], { EXPORT_PASSWORD: 'vault password' });
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/export\.password is the same as the vault password/);

    // a 128 KiB disk for an archive of some hundred KiB (tmpfs: a real ENOSPC)
    const small = path.join(dir, 'small disk');
    await fsp.mkdir(small);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', small]);
    try {
      const full = await cli(['export', '-c', 'cerberus.yaml', '--to', small, '--year', '2026']);
      expect(full.code).toBe(1);
      expect(full.stderr).toMatch(/^cerberus: error: .*(disk is full|no space left|ENOSPC).*\(free some space/im);
      expect(await fsp.readdir(small)).toEqual([]);
    } finally {
      await run('umount', [small]);
    }
  }, 600_000);
});

describe('cerberus export --from latest', () => {
  let dav: ApacheServer;
  beforeAll(async () => {
    dav = await startApache();
  });
  afterAll(async () => {
    await dav?.stop();
  });

  it('over WebDAV gives the manifest the source had at that point', async () => {
    await fsp.rm(path.join(src, 'scan.bin'));
    await config(`{ name: dav, type: webdav, url: "${dav.url}", username: "${dav.username}", password: "${dav.password}", path: /docs }`);
    expect((await cli(['init', '-c', 'cerberus.yaml'])).code).toBe(0);
    const b = await cli(['backup', '-c', 'cerberus.yaml']);
    expect(b.code, b.stderr).toBe(0);
    const now = await cli(['export', '-c', 'cerberus.yaml', '--to', 'from-source', '--year', '2026']);
    expect(now.code, now.stderr).toBe(0);
    // the source moves on; the restore point does not
    await fsp.writeFile(path.join(src, 'after the backup.txt'), 'later');
    const latest = await cli(['export', '-c', 'cerberus.yaml', '--from', 'latest', '--to', 'from-latest', '--year', '2026']);
    expect(latest.code, latest.stderr).toBe(0);
    expect(latest.stderr).toMatch(/restoring latest into a temporary folder/);
    const manifest = async (d: string) => {
      const r = await sevenZip(['e', '-so', path.join(dir, d, 'docs-2026.7z'), 'CERBERUS-MANIFEST.txt'], PASSWORD, dir);
      expect(r.code).toBe(0);
      return r.stdout.split('\n').filter((l) => !l.startsWith('# cerberus'));
    };
    expect(await manifest('from-latest')).toEqual(await manifest('from-source'));
    expect((await fsp.readdir(path.join(dir, 'from-latest'))).sort()).toEqual(['docs-2026.7z']);
  }, 300_000);

  it('--upload sends it in 7-Zip volumes that 7zz opens, resumes a stopped upload, and keeps retention.yearly years', async () => {
    await config(
      `{ name: dav, type: webdav, url: "${dav.url}", username: "${dav.username}", password: "${dav.password}", path: /docs }`,
      '    volumeSize: 64KiB\n    retention: { yearly: 1 }',
    );
    // incompressible: several parts of 64 KiB
    await fsp.writeFile(path.join(src, 'photo.jpg'), randomBytes(300 * 1024));
    const first = await cli(['export', '-c', 'cerberus.yaml', '--upload', '--year', '2026']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/to dav:yearly\/2026\/ \(\d+ parts\)/);
    const year = path.join(dav.dataDir, 'docs/yearly/2026');
    const parts = (await fsp.readdir(year)).filter((f) => f !== 'SHA256SUMS').sort();
    expect(parts.length).toBeGreaterThan(2);
    expect(parts[0]).toBe('docs-2026.7z.001');
    expect(await fsp.readFile(path.join(year, 'SHA256SUMS'), 'utf8')).toContain(`  ${parts.at(-1)}\n`);
    // 7-Zip opens the parts as one split archive
    const t = await sevenZip(['t', path.join(year, 'docs-2026.7z.001')], PASSWORD, dir);
    expect(t.code, t.out).toBe(0);
    expect(t.out).toMatch(/Volumes = \d+/);
    // again: the year is there
    const again = await cli(['export', '-c', 'cerberus.yaml', '--upload', '--year', '2026']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/target dav already holds the export of 2026/);

    // 2027: made locally, the upload "stops" after its first part, then runs again
    expect((await cli(['export', '-c', 'cerberus.yaml', '--to', 'cold27', '--year', '2027'])).code).toBe(0);
    const archive = path.join(dir, 'cold27/docs-2027.7z');
    const incomplete = path.join(dav.dataDir, 'docs/yearly/.incomplete-2027');
    await fsp.mkdir(incomplete, { recursive: true });
    await fsp.writeFile(path.join(incomplete, 'docs-2027.7z.001'), (await fsp.readFile(archive)).subarray(0, 64 * 1024));
    // as Apache itself would have left them (it runs as its own user when the tests run as root)
    const { uid, gid } = await fsp.stat(dav.dataDir);
    for (const p of [incomplete, path.join(incomplete, 'docs-2027.7z.001')]) await fsp.chown(p, uid, gid);
    const resumed = await cli(['export', '-c', 'cerberus.yaml', '--to', 'cold27', '--year', '2027', '--upload']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/docs-2027\.7z is already there; checking it/);
    expect(resumed.stderr).toMatch(/dav: docs-2027\.7z\.001 \(64\.0 KiB\) was already there \(1\/\d+\)/);
    expect(resumed.stderr).toMatch(/dav: docs-2027\.7z\.002 \(.*\) uploaded/);
    expect(resumed.stderr).toMatch(/dav: removed the export of 2026 \(retention\.yearly: 1\)/);
    expect((await fsp.readdir(path.join(dav.dataDir, 'docs/yearly'))).sort()).toEqual(['2027']);
    const joined = Buffer.concat(await Promise.all((await fsp.readdir(path.join(dav.dataDir, 'docs/yearly/2027'))).filter((f) => f !== 'SHA256SUMS').sort().map((f) => fsp.readFile(path.join(dav.dataDir, 'docs/yearly/2027', f)))));
    expect(joined.equals(await fsp.readFile(archive))).toBe(true);
  }, 300_000);
});
