/**
 * The SFTP source against a real OpenSSH sshd: the shared conformance suite, key logins (with
 * and without a passphrase), host key pinning, symlinks and modes, and the server going away
 * in the middle of a large file.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Excluder, type SourceEntry } from '../../src/engine/walk.js';
import { CerberusError } from '../../src/errors.js';
import { isMissingError, openRemoteSource, walkRemote, type SftpSourceConfig } from '../../src/sources/index.js';
import { startSshd, type SshServer } from '../helpers/sshd.js';
import { readAcross, remoteSourceConformance, servedDir, writeBig } from './conformance.js';

let conformanceServer: SshServer | undefined;

remoteSourceConformance({
  name: 'sftp (OpenSSH)',
  keepsMtime: true,
  async setup() {
    const server = (conformanceServer = await startSshd());
    const dir = await servedDir(server.root, 'tree');
    const config: SftpSourceConfig = { type: 'sftp', host: server.host, port: server.port, username: server.username, password: server.password, path: dir };
    return {
      dir,
      publish: async () => undefined,
      config,
      wrongLogin: { ...config, password: 'not-the-password-42' },
      wrongSecret: 'not-the-password-42',
      missingRoot: { ...config, path: `${dir}/no/such/folder` },
    };
  },
  teardown: async () => conformanceServer?.stop(),
});


async function sourceError(p: Promise<unknown>): Promise<CerberusError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CerberusError);
  expect((err as CerberusError).code).toBe('SOURCE');
  return err as CerberusError;
}

describe('sftp source (OpenSSH)', () => {
  let server: SshServer;
  let dir: string;
  let base: SftpSourceConfig;
  let bigHash: string;
  const BIG_MIB = 30;

  beforeAll(async () => {
    server = await startSshd();
    dir = await servedDir(server.root, 'data');
    bigHash = await writeBig(path.join(dir, 'big.bin'), BIG_MIB);
    await fsp.writeFile(path.join(dir, 'target.txt'), 'target');
    await fsp.chmod(path.join(dir, 'target.txt'), 0o751);
    await fsp.mkdir(path.join(dir, 'sub'));
    await fsp.writeFile(path.join(dir, 'sub/inner.txt'), 'inner');
    await fsp.symlink('target.txt', path.join(dir, 'link'));
    await fsp.symlink('sub', path.join(dir, 'dirlink'));
    await fsp.symlink('/nowhere/at/all', path.join(dir, 'dangling'));
    await fsp.writeFile(path.join(dir, 'secret.txt'), 'root only', { mode: 0o600 });
    base = { type: 'sftp', host: server.host, port: server.port, username: server.username, path: dir };
  }, 60_000);
  afterAll(() => server?.stop());

  it('logs in with a key, and with a passphrase-protected key', async () => {
    for (const config of [
      { ...base, privateKey: server.privateKey },
      { ...base, privateKey: server.encryptedKey, passphrase: server.passphrase },
    ]) {
      const source = openRemoteSource(config);
      await source.connect();
      expect((await source.list(dir)).map((e) => e.name)).toContain('big.bin');
      await source.close();
    }
  });

  it('fails an unknown key or a wrong passphrase with SOURCE, never quoting the key', async () => {
    const stranger = await sourceError(openRemoteSource({ ...base, privateKey: server.strangerKey }).connect());
    expect(stranger.message).toMatch(/refused the login for user cerberus-sftp; check username and key/);
    const badPass = await sourceError(openRemoteSource({ ...base, privateKey: server.encryptedKey, passphrase: 'wrong passphrase' }).connect());
    expect(badPass.message).toMatch(/private key/);
    for (const e of [stranger, badPass]) {
      expect(e.message).not.toMatch(/PRIVATE KEY|wrong passphrase/);
      expect(e.message).not.toContain('\n');
    }
  });

  it('pins the host key: the right one passes, another fails naming both; unpinned it shows the one seen', async () => {
    const unpinned = openRemoteSource({ ...base, password: server.password });
    await unpinned.connect();
    expect(unpinned.hostKeySeen).toBe(server.hostKey);
    await unpinned.close();

    const pinned = openRemoteSource({ ...base, password: server.password, hostKey: server.hostKey });
    await pinned.connect();
    expect(pinned.hostKeySeen).toBeUndefined();
    await pinned.close();

    const other = 'SHA256:' + Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '');
    const tried: string[] = [];
    const err = await sourceError(openRemoteSource({ ...base, password: server.password, hostKey: other }, { onRetry: (w) => tried.push(w) }).connect());
    expect(err.message).toContain(server.hostKey);
    expect(err.message).toContain(other);
    expect(tried).toEqual([]);
  });

  it('reports symlinks with their targets and never follows them; modes from the attributes', async () => {
    const source = openRemoteSource({ ...base, password: server.password });
    try {
      const entries = new Map<string, SourceEntry>();
      for await (const e of walkRemote(source, new Excluder([]))) if (e.kind === 'entry' || e.kind === 'enter') entries.set(e.entry.path, e.entry);
      expect(entries.get('link')).toMatchObject({ type: 'symlink', target: 'target.txt', size: 0, mode: 0o777 });
      expect(entries.get('dirlink')).toMatchObject({ type: 'symlink', target: 'sub' });
      expect(entries.get('dangling')).toMatchObject({ type: 'symlink', target: '/nowhere/at/all' });
      expect(entries.has('dirlink/inner.txt')).toBe(false);
      expect(entries.get('target.txt')).toMatchObject({ type: 'file', size: 6, mode: 0o751 });
      expect(entries.get('sub')).toMatchObject({ type: 'dir', mode: 0o755 });
      const err = await source.read(path.join(dir, 'secret.txt'), 0).then(() => undefined, (e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('EACCES');
      expect(isMissingError(err)).toBe(false);
    } finally {
      await source.close();
    }
  });

  it('goes on reading a large file across a server restart, byte-exact', async () => {
    const retries: string[] = [];
    const source = openRemoteSource({ ...base, privateKey: server.privateKey }, { attempts: 6, baseDelayMs: 100, onRetry: (what, n, err) => retries.push(`${what} #${n}: ${err.message}`) });
    try {
      await source.connect();
      const stream = await source.read(path.join(dir, 'big.bin'), 0);
      const got = await readAcross(stream, async () => {
        await server.stop({ keepData: true });
        await server.start();
      });
      expect(got.size).toBe(BIG_MIB << 20);
      expect(got.hash).toBe(bigHash);
      expect(retries.length, retries.join('\n')).toBeGreaterThan(0);
      expect((await source.list(dir)).map((e) => e.name)).toContain('big.bin');
    } finally {
      await source.close();
    }
  });

  it('fails with SOURCE naming the file when the server stays down', async () => {
    const source = openRemoteSource({ ...base, password: server.password }, { attempts: 3, baseDelayMs: 20 });
    try {
      await source.connect();
      const stream = await source.read(path.join(dir, 'big.bin'), 0);
      const err = await sourceError(readAcross(stream, () => server.stop({ keepData: true })));
      expect(err.message).toContain('big.bin');
      expect(err.message).toMatch(/after 3 attempts/);
      const listErr = await sourceError(source.list(dir));
      expect(listErr.message).toMatch(/after 3 attempts/);
    } finally {
      await source.close();
      await server.start();
    }
  });
});
