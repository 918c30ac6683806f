/**
 * Remote targets end to end, through the built CLI: one job with three targets (a local disk,
 * WebDAV on a real Apache mod_dav and S3 on a real s3rver) backs up 30 simulated days, with
 * prune, verify and verify --full. The WebDAV server is down for two of those days: only that
 * target fails, and the next run catches it up. Every remaining restore point of every target
 * is restored and compared with the source as it was that day. Also shows that targets sharing
 * a parent share one encryption.
 *
 * (This was two files: a 30-day cycle per remote target in a job of its own, and a 14-day
 * 3-target job with the outage. One 30-day history to all three targets makes every check of
 * both, with half the backups and restores.)
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../helpers/cli.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { history, restoreAll, s3Target, useTargets, webdavTarget, type ListJson } from '../helpers/remote.js';

const DAYS = 30;
/** the days the WebDAV server is down */
const DOWN = [8, 9];

describe('three targets: local, WebDAV (Apache mod_dav) and S3 (s3rver)', () => {
  let dav: ApacheServer;
  let s3: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    [dav, s3, ws] = await Promise.all([startApache(), startS3rver({ bucket: 'backups' }), workspace({ volumeSize: '16KiB' })]);
  });
  afterAll(async () => {
    await dav?.stop();
    await s3?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('30 days with a two-day WebDAV outage: only that target fails and catches up; prune, verify, verify --full, and every point of every target restores bit-exactly', async () => {
    await useTargets(ws, [
      '      - { name: usb, type: local, path: repo }',
      webdavTarget('dav', dav, ', retries: 1'),
      s3Target('s3', s3),
    ]);
    const env = { DAV_USER: dav.username, DAV_PASSWORD: dav.password, S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey, CERBERUS_RETRY_BASE_MS: '50' };
    const init = await ws.run(['init', '-c', ws.config], env);
    expect(init.code, init.stderr).toBe(0);
    const { expected, results } = await history(ws, env, DAYS, async (day) => {
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

    const l = await ws.run(['list', '-c', ws.config, '--json'], env);
    expect(l.code, l.stderr).toBe(0);
    const list = JSON.parse(l.stdout) as ListJson;
    for (const target of ['usb', 'dav', 's3']) {
      const points = list.points.filter((p) => p.target === target);
      // 30 days cross a quarter, weeks and a month: every level is there, and pruning kept it small
      expect([...new Set(points.map((p) => p.level))].sort(), target).toEqual(['daily', 'monthly', 'quarterly', 'weekly']);
      expect(points.length, target).toBeLessThan(DAYS);
    }
    const davIds = list.points.filter((p) => p.target === 'dav').map((p) => p.id);
    const usbIds = list.points.filter((p) => p.target === 'usb').map((p) => p.id);
    // the missed days are missing on dav only; the day after, dav has a generation again
    const missed = results.filter((_, d) => DOWN.includes(d)).map((r) => r.targets.find((t) => t.target === 'usb')!.id!);
    for (const id of missed) expect(davIds).not.toContain(id);
    expect(davIds.at(-1)).toBe(usbIds.at(-1));

    const v = await ws.run(['verify', '-c', ws.config], env);
    expect(v.code, v.stderr).toBe(0);
    const full = await ws.run(['verify', '-c', ws.config, '--full'], env, { timeoutMs: 300_000 });
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/restore points checked \(full\): no problems/);
    for (const t of ['usb', 'dav', 's3']) await restoreAll(ws, env, t, expected);

    // the password came from the environment and never reached the log or the server's files
    const log = (await dav.accessLog()).join('\n');
    expect(log).not.toContain(dav.password);
    expect(log).not.toMatch(/PROPFIND .* depth=infinity/i);
  }, 900_000);
});
