import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTrees, PASSPHRASE, snapshotTree, tempDir, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';

const exec = promisify(execFile);

/**
 * No lock-in: a differential restore point rebuilt with GnuPG 2.2 and GNU tar alone, by the
 * shell loop that RESTORE.md gives, must equal what was backed up: bytes, modes, times
 * (tar keeps nanoseconds), links and empty folders.
 */
describe('restoring with gpg and tar alone, as RESTORE.md says', () => {
  let ws: Workspace;
  let gnupgHome: string;
  const states = new Map<string, Map<string, TreeEntry>>();
  const gpgEnv = () => ({ ...process.env, GNUPGHOME: gnupgHome });

  const backup = async (iso: string) => {
    const r = await ws.run(['backup', '-c', ws.config, '--now', iso, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const t = (JSON.parse(r.stdout) as { targets: Array<{ id: string; level: string }> }).targets[0]!;
    states.set(t.id, await snapshotTree(ws.src));
    return t;
  };

  beforeAll(async () => {
    ws = await workspace({ volumeSize: '8KiB' });
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    gnupgHome = await tempDir('cerberus-gnupg-');
    await fsp.chmod(gnupgHome, 0o700);
    // a non-interactive gpg, as a person at a terminal would have with pinentry
    const pw = path.join(gnupgHome, 'pw');
    await fsp.writeFile(pw, PASSPHRASE);
    await fsp.writeFile(path.join(gnupgHome, 'gpg.conf'), `batch\npinentry-mode loopback\npassphrase-file ${pw}\n`);
  });

  afterAll(async () => {
    await exec('gpgconf', ['--kill', 'gpg-agent'], { env: gpgEnv() }).catch(() => undefined);
    await fsp.rm(ws.dir, { recursive: true, force: true });
    await fsp.rm(gnupgHome, { recursive: true, force: true });
  });

  it('gpg imports the keys that keygen writes, public and private', async () => {
    const pub = await exec('gpg', ['--import', path.join(ws.keys, 'cerberus.pub.asc')], { env: gpgEnv() });
    expect(pub.stderr).toMatch(/imported: 1/);
    const priv = await exec('gpg', ['--import', path.join(ws.keys, 'cerberus.key.asc')], { env: gpgEnv() });
    expect(priv.stderr).toMatch(/secret keys imported: 1/);
    const list = await exec('gpg', ['--list-secret-keys', '--with-colons'], { env: gpgEnv() });
    expect(list.stdout).toMatch(/^sec:/m);
    expect(list.stdout).toMatch(/test@example\.org/);
    // the private key is protected: without the passphrase gpg cannot use it
    const noPw = path.join(gnupgHome, 'nopw');
    await fsp.mkdir(noPw, { mode: 0o700 });
    await exec('gpg', ['--batch', '--import', path.join(ws.keys, 'cerberus.key.asc')], { env: { ...process.env, GNUPGHOME: noPw } });
    const dump = await exec('gpg', ['--batch', '--list-packets', path.join(ws.keys, 'cerberus.key.asc')], { env: { ...process.env, GNUPGHOME: noPw } });
    expect(dump.stdout).toMatch(/protect count|iter\+salt|s2k/i);
  });

  it('rebuilds a four-generation differential point bit-exactly', async () => {
    const src = ws.src;
    const w = (p: string, s: string | Buffer) => fsp.mkdir(path.dirname(path.join(src, p)), { recursive: true }).then(() => fsp.writeFile(path.join(src, p), s));
    const longName = 'Ünïcödé-' + 'ж'.repeat(60) + '.txt'; // > 100 bytes: needs pax
    await w('letters/a.txt', 'first letter\n');
    await w('letters/b.txt', Buffer.alloc(20_000, 7));
    await w(`deep/${'x'.repeat(90)}/${'y'.repeat(90)}/${longName}`, 'deep and long\n');
    await w('old-folder/inside.txt', 'will go\n');
    await w('becomes-file/child.txt', 'folder turns into a file\n');
    await fsp.mkdir(path.join(src, 'empty/nested'), { recursive: true });
    await fsp.symlink('letters/a.txt', path.join(src, 'link-to-a'));
    await fsp.symlink('/etc/hostname', path.join(src, 'absolute-link'));
    await w('script.sh', '#!/bin/sh\necho hi\n');
    await fsp.chmod(path.join(src, 'script.sh'), 0o755);
    const q = await backup('2026-01-01T02:00:00Z');
    expect(q.level).toBe('quarterly');

    await fsp.appendFile(path.join(src, 'letters/a.txt'), 'edited in February\n');
    await fsp.rm(path.join(src, 'old-folder'), { recursive: true });
    await w('invoices/2026/feb.csv', 'n,amount\n1,10\n');
    const m = await backup('2026-02-02T02:00:00Z');
    expect(m.level).toBe('monthly');

    await fsp.rename(path.join(src, 'letters/b.txt'), path.join(src, 'letters/b-renamed.txt'));
    await fsp.rm(path.join(src, 'becomes-file'), { recursive: true });
    await w('becomes-file', 'now a file\n');
    await fsp.chmod(path.join(src, 'letters/a.txt'), 0o600);
    const wk = await backup('2026-02-09T02:00:00Z');
    expect(wk.level).toBe('weekly');

    await fsp.rm(path.join(src, 'link-to-a'));
    await fsp.symlink('letters/b-renamed.txt', path.join(src, 'link-to-a'));
    await w('letters/c.txt', 'a new one\n');
    await fsp.rm(path.join(src, 'empty/nested'), { recursive: true });
    const d = await backup('2026-02-10T02:00:00Z');
    expect(d.level).toBe('daily');

    // the loop from RESTORE.md, run as written
    const doc = await fsp.readFile(path.join(ws.repo, 'RESTORE.md'), 'utf8');
    const loop = doc.slice(doc.indexOf('    REPO=/path'), doc.indexOf('    rm -rf .cerberus') + '    rm -rf .cerberus'.length);
    expect(loop).toMatch(/for g in \$CHAIN/);
    const script = loop
      .split('\n')
      .map((l) => l.replace(/^ {4}/, ''))
      .join('\n')
      .replace(/^REPO=.*$/m, `REPO='${ws.repo}'`)
      .replace(/^POINT=.*$/m, `POINT='daily/${d.id}'`)
      .replace(/^DEST=.*$/m, `DEST='${path.join(ws.dir, 'by-hand')}'`);
    const run = await exec('bash', ['-euo', 'pipefail', '-c', script], { env: gpgEnv() });
    expect(run.stderr).not.toMatch(/error|failed/i);

    const rebuilt = await snapshotTree(path.join(ws.dir, 'by-hand'));
    expect(diffTrees(states.get(d.id)!, rebuilt, 0n)).toEqual([]);
    expect(rebuilt.get('link-to-a')?.target).toBe('letters/b-renamed.txt');
    expect(rebuilt.get('becomes-file')?.type).toBe('file');
    expect(rebuilt.has('empty/nested')).toBe(false);
    expect(rebuilt.get('empty')?.type).toBe('dir');

    // and cerberus restores the same point the same way
    const to = path.join(ws.dir, 'by-cerberus');
    const r = await ws.run(['restore', '-c', ws.config, '--at', d.id, '--to', to]);
    expect(r.code, r.stderr).toBe(0);
    expect(diffTrees(states.get(d.id)!, await snapshotTree(to))).toEqual([]);
  }, 180_000);

  it('writes SEIPD v1 (no AEAD), which GnuPG 2.2 reads', async () => {
    const daily = (await fsp.readdir(path.join(ws.repo, 'daily')))[0]!;
    const out = await exec('gpg', ['--list-packets', path.join(ws.repo, 'daily', daily, 'manifest.json.gpg')], { env: gpgEnv() });
    expect(out.stdout).toMatch(/:encrypted data packet:/);
    expect(out.stdout).toMatch(/mdc_method: 2/);
    expect(out.stdout).not.toMatch(/aead/i);
    // the manifest decrypts to the JSON the design describes
    const json = await exec('gpg', ['-d', path.join(ws.repo, 'daily', daily, 'manifest.json.gpg')], { env: gpgEnv() });
    const manifest = JSON.parse(json.stdout) as { chain: string[]; entries: Array<{ path: string }> };
    expect(manifest.chain).toHaveLength(4);
    expect(manifest.entries.some((e) => e.path === 'letters/c.txt')).toBe(true);
    // integrity checks need no key
    const sums = await exec('sha256sum', ['-c', 'SHA256SUMS'], { cwd: path.join(ws.repo, 'daily', daily) });
    expect(sums.stdout).toMatch(/manifest\.json\.gpg: OK/);
  });
});

/** `compression: zlib` takes another path through the encryption (a deflate stream inside). */
describe('a zlib-compressed repository', () => {
  it('is smaller for text, restores with cerberus, and with gpg and tar alone', async () => {
    const ws = await workspace({ volumeSize: '64KiB' });
    const home = await tempDir('cerberus-gnupg-');
    const env = { ...process.env, GNUPGHOME: home };
    try {
      const config = await fsp.readFile(ws.config, 'utf8');
      await fsp.writeFile(ws.config, config.replace('recipients: [keys/cerberus.pub.asc] }', 'recipients: [keys/cerberus.pub.asc], compression: zlib }'));
      await fsp.mkdir(path.join(ws.src, 'notes'), { recursive: true });
      await fsp.writeFile(path.join(ws.src, 'notes/minutes.txt'), 'the meeting agreed on the budget. '.repeat(20_000));
      await fsp.writeFile(path.join(ws.src, 'photo.jpg'), randomBytes(300_000));
      expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
      const b = await ws.run(['backup', '-c', ws.config, '--now', '2026-03-02T02:00:00Z', '--json']);
      expect(b.code, b.stderr).toBe(0);
      const id = (JSON.parse(b.stdout) as { targets: Array<{ id: string }> }).targets[0]!.id;
      const gen = path.join(ws.repo, 'quarterly', id);
      const volumes = (await fsp.readdir(gen)).filter((n) => n.startsWith('data.tar.gpg.')).sort();
      let stored = 0;
      for (const v of volumes) stored += (await fsp.stat(path.join(gen, v))).size;
      expect(stored).toBeLessThan(400_000); // 980 kB of text and 300 kB of noise
      const source = await snapshotTree(ws.src);

      const to = path.join(ws.dir, 'by-cerberus');
      const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]);
      expect(r.code, r.stderr).toBe(0);
      expect(diffTrees(source, await snapshotTree(to))).toEqual([]);

      await fsp.chmod(home, 0o700);
      await exec('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', PASSPHRASE, '--import', path.join(ws.keys, 'cerberus.key.asc')], { env });
      const byHand = path.join(ws.dir, 'by-hand');
      await fsp.mkdir(byHand);
      const list = volumes.map((v) => `'${path.join(gen, v)}'`).join(' ');
      await exec('sh', ['-c', `cat ${list} | gpg --batch --pinentry-mode loopback --passphrase-fd 3 -d 3<<EOF | tar -x -C '${byHand}' --exclude=.cerberus\n${PASSPHRASE}\nEOF`], { env });
      expect(diffTrees(source, await snapshotTree(byHand), 0n)).toEqual([]);
    } finally {
      await exec('gpgconf', ['--kill', 'gpg-agent'], { env }).catch(() => undefined);
      await fsp.rm(ws.dir, { recursive: true, force: true });
      await fsp.rm(home, { recursive: true, force: true });
    }
  }, 120_000);
});
