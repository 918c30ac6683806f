/**
 * `cerberus probe` against real servers: Apache mod_dav (WebDAV over plain HTTP), s3rver, and
 * a local folder. It must report what the server does, leave nothing behind, and fail clearly
 * on bad credentials.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workspace, type Workspace } from '../helpers/cli.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';

interface ProbeJson {
  target: string;
  usable: boolean;
  checks: Array<{ check: string; ok: boolean; essential: boolean; detail: string }>;
}

describe('cerberus probe', () => {
  let dav: ApacheServer | undefined;
  let s3: S3Server;
  let ws: Workspace;
  beforeAll(async () => {
    dav = await startApache();
    s3 = await startS3rver({ bucket: 'probe' });
    ws = await workspace({ keygen: false });
    const text = await fsp.readFile(ws.config, 'utf8');
    await fsp.writeFile(
      ws.config,
      text.replace(
        / {6}- \{ name: usb, type: local, path: repo \}/,
        [
          '      - { name: usb, type: local, path: repo }',
          `      - { name: dav, type: webdav, url: "${dav?.url ?? 'http://127.0.0.1:9'}", username: \${DAV_USER}, password: \${DAV_PASSWORD}, path: some/repo, timeout: 10s }`,
          `      - { name: s3, type: s3, endpoint: "${s3.endpoint}", bucket: probe, prefix: p, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET} }`,
        ].join('\n'),
      ),
    );
  });
  afterAll(async () => {
    await dav?.stop();
    await s3?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });
  const env = () => ({ DAV_USER: dav?.username ?? 'u', DAV_PASSWORD: dav?.password ?? 'p', S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey });

  it('WebDAV: reports each HTTP behaviour, says the server is usable, and cleans up', async () => {
    const r = await ws.run(['probe', '-c', ws.config, '--target', 'dav', '--json'], env());
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const json = JSON.parse(r.stdout) as ProbeJson;
    const by = new Map(json.checks.map((c) => [c.check, c]));
    expect(json.usable).toBe(true);
    for (const c of ['OPTIONS', 'MKCOL', 'PUT with Content-Length', 'GET', 'range GET', 'chunked PUT', 'PUT 8 MiB', 'MOVE file', 'COPY file', 'COPY folder', 'MOVE folder', 'PROPFIND Depth: 1']) {
      expect(by.get(c)?.ok, `${c}: ${by.get(c)?.detail}`).toBe(true);
    }
    expect(by.get('OPTIONS')?.detail).toMatch(/DAV: 1,2/);
    expect(by.get('MKCOL')?.detail).toBe('201; created /some/repo (left in place)');
    expect(by.get('range GET')?.detail).toMatch(/^206/);
    expect(by.get('PROPFIND Depth: 1')?.detail).toMatch(/207; \d+ entries/);
    // the scratch folder is gone, and the password never reached the output
    expect(fs.readdirSync(`${dav!.dataDir}/some/repo`)).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(dav!.password);
    const table = await ws.run(['probe', '-c', ws.config, '--target', 'dav'], env());
    expect(table.stdout).toMatch(/^check\s+result\s+detail/m);
    expect(table.stdout).toMatch(/dav: usable by cerberus/);
  });

  it('WebDAV with a wrong password: exit 1, says which check failed and why', async () => {
    const r = await ws.run(['probe', '-c', ws.config, '--target', 'dav'], { ...env(), DAV_PASSWORD: 'wrong' });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/OPTIONS\s+FAILED\s+401: check username and password/);
    expect(r.stdout).toMatch(/dav: NOT usable/);
  });

  it('S3 and local: probed through their backends, cleaned up', async () => {
    for (const target of ['s3', 'usb']) {
      const r = await ws.run(['probe', '-c', ws.config, '--target', target, '--json'], env());
      expect(r.code, r.stderr + r.stdout).toBe(0);
      const json = JSON.parse(r.stdout) as ProbeJson;
      expect(json.checks.filter((c) => !c.ok && c.essential)).toEqual([]);
      const by = new Map(json.checks.map((c) => [c.check, c]));
      expect(by.get('get')?.detail).toBe('bytes equal');
      expect(by.get('move')?.ok).toBe(target === 'usb');
    }
    expect(fs.readdirSync(`${ws.dir}/repo`)).toEqual([]);
  });

  it('an unknown target: exit 2 naming the targets there are', async () => {
    const r = await ws.run(['probe', '-c', ws.config, '--target', 'nope'], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/job docs has no target named nope \(targets: usb, dav, s3\)/);
  });
});
