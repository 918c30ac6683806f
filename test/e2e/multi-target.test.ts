/**
 * A 3-target job (local, WebDAV on a real Apache, S3 on a real s3rver) whose WebDAV server is
 * down for two days: only that target fails, the next run catches it up, and every point of
 * every target restores bit-exactly. Also shows that targets sharing a parent share one
 * encryption.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../helpers/cli.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { history, restoreAll, s3Target, useTargets, webdavTarget, type ListJson } from '../helpers/remote.js';

describe('three targets: local, WebDAV and S3', () => {
  let dav: ApacheServer;
  let s3: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    dav = await startApache();
    s3 = await startS3rver({ bucket: 'backups' });
    ws = await workspace({ volumeSize: '16KiB' });
  });
  afterAll(async () => {
    await dav?.stop();
    await s3?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('a WebDAV outage of two days fails only that target, and the next run catches it up', async () => {
    await useTargets(ws, [
      '      - { name: usb, type: local, path: repo }',
      webdavTarget('dav', dav, ', retries: 1'),
      s3Target('s3', s3),
    ]);
    const env = { DAV_USER: dav.username, DAV_PASSWORD: dav.password, S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey, CERBERUS_RETRY_BASE_MS: '50' };
    expect((await ws.run(['init', '-c', ws.config], env)).code).toBe(0);
    const DOWN = [8, 9];
    const { expected, results } = await history(ws, env, 14, async (day) => {
      if (day === DOWN[0]) await dav.stop({ keepData: true });
      if (day === DOWN[1]! + 1) await dav.start();
    });
    results.forEach((r, day) => {
      const by = new Map(r.targets.map((t) => [t.target, t]));
      expect(by.get('usb')?.status, `day ${day}`).toBe('committed');
      expect(by.get('s3')?.status, `day ${day}`).toBe('committed');
      if (DOWN.includes(day)) {
        expect(by.get('dav')?.status).toBe('failed');
        expect(by.get('dav')?.error).toMatch(/ECONNREFUSED|gave up/);
      } else expect(by.get('dav')?.status, `day ${day}`).toBe('committed');
    });
    // all three generations of a day share one encryption: OpenPGP output is randomized, so
    // equal volume and manifest hashes on two targets mean the bytes were encrypted once
    const last = results.at(-1)!.targets;
    expect(new Set(last.map((t) => `${t.level} ${t.id}`)).size).toBe(1);
    const { level, id } = last[0]!;
    const sums = (file: string) =>
      fs.readFileSync(file, 'utf8').split('\n').filter((l) => /data\.tar\.gpg|manifest/.test(l)).sort();
    const onUsb = sums(path.join(ws.repo, level!, id!, 'SHA256SUMS'));
    expect(onUsb.length).toBeGreaterThan(1);
    expect(sums(path.join(dav.dataDir, 'backups/docs', level!, id!, 'SHA256SUMS'))).toEqual(onUsb);

    const list = JSON.parse((await ws.run(['list', '-c', ws.config, '--json'], env)).stdout) as ListJson;
    const davIds = list.points.filter((p) => p.target === 'dav').map((p) => p.id);
    const usbIds = list.points.filter((p) => p.target === 'usb').map((p) => p.id);
    // the missed days are missing on dav only; the day after, dav has a generation again
    const missed = results.filter((_, d) => DOWN.includes(d)).map((r) => r.targets.find((t) => t.target === 'usb')!.id!);
    for (const id of missed) expect(davIds).not.toContain(id);
    expect(davIds.at(-1)).toBe(usbIds.at(-1));
    for (const t of ['usb', 'dav', 's3']) await restoreAll(ws, env, t, expected);
    const v = await ws.run(['verify', '-c', ws.config], env);
    expect(v.code, v.stderr).toBe(0);
  }, 900_000);
});
