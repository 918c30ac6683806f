/**
 * Remote targets end to end, through the built CLI: 30 simulated days over WebDAV (a real
 * Apache mod_dav) and over S3 (a real s3rver), each with prune, verify and verify --full.
 * Every remaining restore point is restored and compared with the source as it was that
 * day. The 3-target job is in multi-target.test.ts.
 */
import fsp from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../helpers/cli.js';
import { history, restoreAll, s3Target, useTargets, webdavTarget, type ListJson } from '../helpers/remote.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';

async function cycle(ws: Workspace, env: NodeJS.ProcessEnv, target: string) {
  const init = await ws.run(['init', '-c', ws.config], env);
  expect(init.code, init.stderr).toBe(0);
  const { expected } = await history(ws, env, 30);
  const list = JSON.parse((await ws.run(['list', '-c', ws.config, '--json'], env)).stdout) as ListJson;
  const levels = new Set(list.points.map((p) => p.level));
  // 30 days cross a quarter, weeks and a month: every level is there, and pruning kept it small
  expect([...levels].sort()).toEqual(['daily', 'monthly', 'quarterly', 'weekly']);
  expect(list.points.length).toBeLessThan(30);
  const v = await ws.run(['verify', '-c', ws.config], env);
  expect(v.code, v.stderr).toBe(0);
  const full = await ws.run(['verify', '-c', ws.config, '--full'], env, { timeoutMs: 300_000 });
  expect(full.code, full.stderr).toBe(0);
  expect(full.stdout).toMatch(/restore points checked \(full\): no problems/);
  await restoreAll(ws, env, target, expected);
}

describe('over WebDAV (Apache mod_dav)', () => {
  let dav: ApacheServer;
  let ws: Workspace;
  beforeAll(async () => {
    dav = await startApache();
    ws = await workspace({ volumeSize: '16KiB' });
  });
  afterAll(async () => {
    await dav?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('30 days of backups, prune, verify, verify --full, and every point restores bit-exactly', async () => {
    await useTargets(ws, [webdavTarget('pcloud', dav)]);
    const env = { DAV_USER: dav.username, DAV_PASSWORD: dav.password };
    await cycle(ws, env, 'pcloud');
    // the password came from the environment and never reached the log or the server's files
    const log = (await dav.accessLog()).join('\n');
    expect(log).not.toContain(dav.password);
    expect(log).not.toMatch(/PROPFIND .* depth=infinity/i);
  }, 900_000);
});

describe('over S3 (s3rver)', () => {
  let s3: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    s3 = await startS3rver({ bucket: 'backups' });
    ws = await workspace({ volumeSize: '16KiB' });
  });
  afterAll(async () => {
    await s3?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('30 days of backups, prune, verify, verify --full, and every point restores bit-exactly', async () => {
    await useTargets(ws, [s3Target('s3', s3)]);
    await cycle(ws, { S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey }, 's3');
  }, 900_000);
});

