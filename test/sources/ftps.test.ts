/**
 * The FTPS source against a real vsftpd (LIST only, so every file's time comes from MDTM):
 * the shared conformance suite, TLS trust, symlinks, a read dropped halfway, and the server
 * going away in the middle of a large file.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Excluder } from '../../src/engine/walk.js';
import { CerberusError } from '../../src/errors.js';
import { FtpsSource, listTime } from '../../src/sources/ftps.js';
import { isMissingError, openRemoteSource, walkRemote, type FtpsSourceConfig } from '../../src/sources/index.js';
import { startFtpd, type FtpServer } from '../helpers/ftpd.js';
import { readAcross, remoteSourceConformance, servedDir, writeBig } from './conformance.js';

let conformanceServer: FtpServer | undefined;

remoteSourceConformance({
  name: 'ftps (vsftpd)',
  keepsMtime: true,
  async setup() {
    const server = (conformanceServer = await startFtpd());
    const dir = await servedDir(server.root, 'tree');
    const config: FtpsSourceConfig = {
      type: 'ftps', host: server.host, port: server.port, username: server.username, password: server.password, path: dir, caFile: server.certFile, insecure: false,
    };
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

describe('ftps source (vsftpd)', () => {
  let server: FtpServer;
  let dir: string;
  let config: FtpsSourceConfig;
  let bigHash: string;
  const BIG_MIB = 30;

  beforeAll(async () => {
    server = await startFtpd();
    dir = await servedDir(server.root, 'data');
    bigHash = await writeBig(path.join(dir, 'big.bin'), BIG_MIB);
    await fsp.writeFile(path.join(dir, 'target.txt'), 'target');
    await fsp.mkdir(path.join(dir, 'sub'));
    await fsp.writeFile(path.join(dir, 'sub/inner.txt'), 'inner');
    await fsp.symlink('target.txt', path.join(dir, 'link'));
    await fsp.symlink('sub', path.join(dir, 'dirlink'));
    await fsp.chmod(path.join(dir, 'target.txt'), 0o755);
    await fsp.writeFile(path.join(dir, 'secret.txt'), 'root only', { mode: 0o600 });
    config = { type: 'ftps', host: server.host, port: server.port, username: server.username, password: server.password, path: dir, caFile: server.certFile, insecure: false };
  }, 60_000);
  afterAll(() => server?.stop());

  it('refuses a server whose certificate it cannot trust, and takes it with caFile or insecure', async () => {
    const untrusted = openRemoteSource({ ...config, caFile: undefined }, { baseDelayMs: 10 });
    const err = await untrusted.connect().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).message).toMatch(/certificate is not trusted.*caFile/);
    await untrusted.close();
    const insecure = openRemoteSource({ ...config, caFile: undefined, insecure: true });
    await insecure.connect();
    expect((await insecure.list(dir)).length).toBeGreaterThan(0);
    await insecure.close();
  });

  it('reports symlinks with their targets and never follows them; modes from the listing', async () => {
    const source = openRemoteSource(config);
    try {
      const events = [];
      for await (const e of walkRemote(source, new Excluder([]))) events.push(e);
      const entries = new Map(events.flatMap((e) => (e.kind === 'entry' || e.kind === 'enter' ? [[e.entry.path, e.entry]] : [])));
      expect(entries.get('link')).toMatchObject({ type: 'symlink', target: 'target.txt', size: 0 });
      expect(entries.get('dirlink')).toMatchObject({ type: 'symlink', target: 'sub' });
      expect(entries.has('dirlink/inner.txt')).toBe(false);
      expect(entries.get('sub/inner.txt')).toMatchObject({ type: 'file', size: 5 });
      expect(entries.get('target.txt')!.mode).toBe(0o755);
      expect(entries.get('secret.txt')!.mode).toBe(0o600);
      // vsftpd answers 550 for missing and forbidden alike: a forbidden file must not pass for a deleted one
      const err = await source.read(path.join(dir, 'secret.txt'), 0).then(() => undefined, (e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe('EACCES');
      expect(isMissingError(err)).toBe(false);
    } finally {
      await source.close();
    }
  });

  it('stays usable after a read is dropped halfway', async () => {
    const source = new FtpsSource(config);
    try {
      await source.connect();
      const stream = await source.read(path.join(dir, 'big.bin'), 0);
      await new Promise<void>((resolve) => stream.once('data', () => resolve()));
      stream.destroy();
      // the next operations wait for the dropped transfer and log in again
      expect((await source.list(dir)).map((e) => e.name).sort()).toEqual(['big.bin', 'dirlink', 'link', 'secret.txt', 'sub', 'target.txt']);
      const chunks: Buffer[] = [];
      for await (const c of await source.read(path.join(dir, 'target.txt'), 2)) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('rget');
    } finally {
      await source.close();
    }
  });

  it('goes on reading a large file across a server restart, byte-exact', async () => {
    const retries: string[] = [];
    const source = openRemoteSource(config, { attempts: 6, baseDelayMs: 100, onRetry: (what, n, err) => retries.push(`${what} #${n}: ${err.message}`) });
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
      // and goes on with the next operation on the new connection
      expect((await source.list(dir)).length).toBe(6);
    } finally {
      await source.close();
    }
  });

  it('fails with SOURCE naming the file when the server stays down', async () => {
    const source = openRemoteSource(config, { attempts: 3, baseDelayMs: 20 });
    try {
      await source.connect();
      const stream = await source.read(path.join(dir, 'big.bin'), 0);
      const err = await readAcross(stream, () => server.stop({ keepData: true })).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CerberusError);
      expect((err as CerberusError).code).toBe('SOURCE');
      expect((err as CerberusError).message).toContain('big.bin');
      expect((err as CerberusError).message).toMatch(/after 3 attempts/);
      const listErr = await source.list(dir).then(() => undefined, (e: unknown) => e);
      expect(listErr).toBeInstanceOf(CerberusError);
      expect((listErr as CerberusError).message).toMatch(/after 3 attempts/);
    } finally {
      await source.close();
      await server.start();
    }
  });

  it('dates LIST lines as vsftpd writes them', () => {
    const now = Date.UTC(2026, 0, 10, 12, 0);
    expect(listTime('Mar 04 2020', now)).toBe(Date.UTC(2020, 2, 4));
    expect(listTime('Jan 09 08:30', now)).toBe(Date.UTC(2026, 0, 9, 8, 30));
    // no year and after today: last year's
    expect(listTime('Dec 24 18:00', now)).toBe(Date.UTC(2025, 11, 24, 18, 0));
    expect(listTime('garbage', now)).toBe(0);
  });
});
