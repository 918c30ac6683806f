import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { gpg, keyPairWithGpg, killAgents } from '../../helpers/gpg.js';
import { volumeWriter, type VolumeWriter } from '../../../src/formats/openpgp/message.js';
import { PARTIAL } from '../../../src/formats/openpgp/packet-stream.js';
import type { SpooledVolume } from '../../../src/formats/volumes.js';
import { deserializeError, serializeError } from '../../../src/formats/openpgp/workers.js';
import { CerberusError } from '../../../src/errors.js';
import type * as openpgp from 'openpgp';

// The backup's data path: plaintext handed over from reused read buffers, sealed and cut into
// volumes on a worker thread (the built dist/ copy of the worker: npm test builds first).

const PASS = 'pass phrase';
let tmp: string;
let home: string;
let pub: openpgp.PublicKey;
let spool: string;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerb-volwriter-'));
  ({ pub, home } = await keyPairWithGpg(tmp, 'volumes', PASS));
});

afterAll(async () => {
  await killAgents([home]);
  await fsp.rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  spool = await fsp.mkdtemp(path.join(tmp, 'spool-'));
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const openFds = () => fs.readdirSync('/proc/self/fd').length;

/** Feeds `data` through one reused buffer, scribbled over after each write, as the backup does. */
async function feed(w: VolumeWriter, data: Buffer, piece = 100_003): Promise<void> {
  const buf = Buffer.alloc(piece);
  for (let off = 0; off < data.length; off += piece) {
    const n = data.copy(buf, 0, off, off + piece);
    w.write(buf.subarray(0, n));
    buf.fill(0xee);
    await w.ready();
  }
}

describe('volumeWriter (sealing on a worker thread)', () => {
  for (const compression of ['none', 'zlib'] as const) {
    it(`cuts one message into volumes that gpg decrypts once joined, each with its sha256 (compression ${compression})`, async () => {
      const data = Buffer.concat([Buffer.alloc(700_000, 'text '), randomBytes(3 * PARTIAL + 777)]);
      const volumeSize = compression === 'none' ? PARTIAL + 4321 : 300_000;
      const got: Array<SpooledVolume & { content: Buffer }> = [];
      const w = await volumeWriter({
        spoolDir: spool,
        volumeSize,
        sealing: { keys: [pub] },
        compression,
        onVolume: async (v) => {
          got.push({ ...v, content: await fsp.readFile(v.file) });
          await fsp.rm(v.file);
        },
      });
      await feed(w, data);
      const volumes = await w.end();
      expect(volumes.map((v) => v.index)).toEqual(got.map((v) => v.index));
      expect(got.length).toBeGreaterThan(1);
      for (const [i, v] of got.entries()) {
        expect(v.index).toBe(i + 1);
        expect(v.size).toBe(v.content.length);
        if (i < got.length - 1) expect(v.size).toBe(volumeSize);
        expect(v.sha256).toBe(sha(v.content));
        expect(fs.statSync(path.dirname(v.file)).isDirectory()).toBe(true);
      }
      const r = await gpg(home, ['--passphrase', PASS, '--decrypt'], Buffer.concat(got.map((v) => v.content)));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
      expect(await fsp.readdir(spool)).toEqual([]);
    });
  }

  it('keeps at most two volumes in the spool: it stops taking data while an upload is held', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const uploaded: number[] = [];
    const w = await volumeWriter({
      spoolDir: spool,
      volumeSize: 256 * 1024,
      sealing: { keys: [pub] },
      compression: 'none',
      onVolume: async (v) => {
        if (v.index === 1) await gate;
        uploaded.push(v.index);
        await fsp.rm(v.file);
      },
    });
    const data = randomBytes(16 * PARTIAL);
    let fed = 0;
    const feeding = (async () => {
      for (let off = 0; off < data.length; off += PARTIAL) {
        w.write(data.subarray(off, off + PARTIAL));
        fed += PARTIAL;
        await w.ready();
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // volume 2 was written while volume 1 waits; the worker waits before a third
    expect((await fsp.readdir(spool)).sort()).toEqual(['data.tar.gpg.0001', 'data.tar.gpg.0002']);
    expect(uploaded).toEqual([]);
    // the buffers in flight and the two volumes, not the whole input
    expect(fed).toBeLessThanOrEqual(8 * PARTIAL);
    release();
    await feeding;
    const volumes = await w.end();
    expect(uploaded).toEqual(volumes.map((v) => v.index));
    expect(volumes.length).toBeGreaterThan(60);
  });

  it('fails ready() and end() when an upload fails, and leaves no file open', async () => {
    const fds = openFds();
    const w = await volumeWriter({
      spoolDir: spool,
      volumeSize: 100_000,
      sealing: { keys: [pub] },
      compression: 'none',
      onVolume: async (v) => {
        if (v.index === 2) throw new Error('upload failed');
      },
    });
    // the failure may arrive while data is still fed, or only at the end
    await feed(w, randomBytes(4 * PARTIAL)).catch(() => undefined);
    await expect(w.end()).rejects.toThrow('upload failed');
    await expect(w.ready()).rejects.toThrow('upload failed');
    await w.abort();
    expect(openFds()).toBe(fds);
  });

  it("reports the spool's file-system error with its code, as the main thread would have", async () => {
    const w = await volumeWriter({ spoolDir: path.join(spool, 'gone'), volumeSize: 100_000, sealing: { keys: [pub] }, compression: 'none', onVolume: async () => undefined });
    await feed(w, randomBytes(2 * PARTIAL)).catch(() => undefined);
    const err = (await w.end().then(
      () => undefined,
      (e: unknown) => e,
    )) as NodeJS.ErrnoException;
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('ENOENT');
    expect(err.path).toBe(path.join(spool, 'gone', 'data.tar.gpg.0001'));
    await w.abort();
  });

  it('abort() stops a worker that waits for spool room, closes its volume, and waits for the upload in flight', async () => {
    const fds = openFds();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let uploadEnded = false;
    const w = await volumeWriter({
      spoolDir: spool,
      volumeSize: 100_000,
      sealing: { keys: [pub] },
      compression: 'none',
      onVolume: async () => {
        await gate;
        uploadEnded = true;
      },
    });
    w.write(randomBytes(3 * PARTIAL)); // more than two volumes: the worker blocks on the third
    await new Promise((resolve) => setTimeout(resolve, 300));
    const aborted = w.abort();
    setTimeout(release, 100);
    await aborted;
    expect(uploadEnded).toBe(true);
    expect(openFds()).toBe(fds);
    await expect(w.ready()).rejects.toThrow('aborted');
  });
});

describe('errors from the worker', () => {
  it('keep their code and hint across the thread boundary', () => {
    const back = deserializeError(serializeError(new CerberusError('USAGE', 'a generation would need more than 9999 volumes', { hint: 'raise volumeSize' })));
    expect(back).toBeInstanceOf(CerberusError);
    expect((back as CerberusError).code).toBe('USAGE');
    expect((back as CerberusError).hint).toBe('raise volumeSize');
    const enospc = deserializeError(serializeError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' })));
    expect(enospc).toMatchObject({ code: 'ENOSPC', syscall: 'write', message: 'ENOSPC: no space left on device, write' });
  });
});
