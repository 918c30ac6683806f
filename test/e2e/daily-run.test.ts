import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { BIN, ROOT, workspace, type Workspace } from '../helpers/cli.js';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github.js';
import { resultMapping, shSteps } from '../helpers/jenkinsfile.js';
import { reports } from '../helpers/reports.js';

/**
 * The daily run as Jenkins makes it: the `sh` steps of Jenkinsfile and of
 * pipelines/health.Jenkinsfile, read from those files, run by bash with the variables their
 * withCredentials and parameters bind, against Apache WebDAV, with examples/jenkins.yaml as
 * the config (its WebDAV address, source folder and GitHub address pointed at the test's own).
 * Each step's exit status becomes the build result the pipeline's own branches give it.
 *
 * Days pass through CERBERUS_TEST_NOW: the `cerberus` on PATH here adds `--now` when it is set,
 * and is otherwise the built binary. GitHub cannot run here: alerts go to a FAKE of its issues
 * API (test/helpers/fake-github.ts).
 */

const TOKEN = 'ghp_daily-run-token-not-real';
const HOUR = 3600_000;
let dav: ApacheServer;
let gh: FakeGithub;
let ws: Workspace;
let bin: string;

interface BuildRun {
  code: number;
  result: 'SUCCESS' | 'UNSTABLE' | 'FAILURE';
  log: string;
}

async function pipeline(file: string, params: Record<string, string>, opts: { at?: Date; password?: string } = {}): Promise<BuildRun> {
  const groovy = await fsp.readFile(path.join(ROOT, file), 'utf8');
  const [script, ...more] = shSteps(groovy).scripts;
  expect(more, `${file} has one sh step`).toEqual([]);
  const env: NodeJS.ProcessEnv = {
    PATH: `${bin}:${process.env.PATH}`,
    HOME: ws.dir,
    TZ: 'UTC',
    // what withCredentials binds
    PCLOUD_USER: dav.username,
    PCLOUD_PASSWORD: opts.password ?? dav.password,
    CERBERUS_PUBLIC_KEY_FILE: path.join(ws.dir, 'keys/cerberus.pub.asc'),
    GITHUB_TOKEN: TOKEN,
    CERBERUS_STATE_DIR: path.join(ws.dir, 'state'),
    ...params,
    ...(opts.at ? { CERBERUS_TEST_NOW: opts.at.toISOString() } : {}),
  };
  const { code, log } = await new Promise<{ code: number; log: string }>((resolve, reject) => {
    const child = spawn('bash', ['-eo', 'pipefail', '-c', script!], { cwd: ws.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (c) => resolve({ code: c ?? -1, log: out }));
  });
  // the log Jenkins would show never holds a secret
  expect(log).not.toContain(dav.password);
  expect(log).not.toContain(TOKEN);
  return { code, result: resultMapping(groovy)(code), log };
}

const backup = (opts: { at?: Date; password?: string } = {}) => pipeline('Jenkinsfile', { CERBERUS_CONFIG: 'cerberus.yaml', JOB: 'documents' }, opts);
const health = () => pipeline('pipelines/health.Jenkinsfile', { CERBERUS_CONFIG: 'cerberus.yaml', MAX_AGE: '26h' });

beforeAll(async () => {
  [dav, gh] = await Promise.all([startApache(), startFakeGithub('me/backups', TOKEN)]);
  ws = await workspace();
  bin = path.join(ws.dir, 'bin');
  await fsp.mkdir(bin);
  await fsp.writeFile(path.join(bin, 'cerberus'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@" \${CERBERUS_TEST_NOW:+--now "$CERBERUS_TEST_NOW"}\n`, { mode: 0o755 });
  // examples/jenkins.yaml, with the test's WebDAV server, source folder and GitHub
  const doc = parseDocument(await fsp.readFile(path.join(ROOT, 'examples/jenkins.yaml'), 'utf8'));
  doc.setIn(['jobs', 'documents', 'source', 'paths'], [ws.src]);
  doc.deleteIn(['jobs', 'documents', 'targets', 0, 'preset']);
  doc.setIn(['jobs', 'documents', 'targets', 0, 'url'], dav.url);
  doc.setIn(['jobs', 'documents', 'report', 'github', 'apiUrl'], gh.url);
  await fsp.writeFile(path.join(ws.dir, 'cerberus.yaml'), doc.toString());
  for (let i = 0; i < 12; i++) await fsp.writeFile(path.join(ws.src, `Rechnung ${i}.txt`), `Rechnung Nr. ${i}\n`.repeat(200));
  const init = await ws.run(['init', '-c', 'cerberus.yaml'], { PCLOUD_USER: dav.username, PCLOUD_PASSWORD: dav.password, CERBERUS_PUBLIC_KEY_FILE: 'keys/cerberus.pub.asc', GITHUB_TOKEN: TOKEN, CERBERUS_STATE_DIR: 'state' });
  expect(init.code, init.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await Promise.all([dav?.stop(), gh?.close(), ws && fsp.rm(ws.dir, { recursive: true, force: true })]);
});

describe('the daily run, as the Jenkinsfiles make it', () => {
  it('gives SUCCESS, UNSTABLE and FAILURE with reports to match; a Pi that stopped fails health and opens an issue, the next good run closes it', async () => {
    const start = Date.now() - 4 * 24 * HOUR;
    const dir = path.join(ws.dir, 'reports');

    // exit 0: a good night
    const good = await backup({ at: new Date(start) });
    expect(good, good.log).toMatchObject({ code: 0, result: 'SUCCESS' });
    const r0 = await reports(dir);
    expect(r0.suite).toMatchObject({ '@_name': 'cerberus backup documents', '@_tests': '5', '@_failures': '0' });
    expect(r0.cases).toEqual(['pcloud plan', 'pcloud scan+encrypt+upload', 'pcloud verify', 'pcloud prune', 'pcloud guards']);
    expect(r0.summary.split('\n')[0]).toMatch(/^### cerberus backup `documents`: ok \(exit 0, /);
    expect(r0.summary).toMatch(/\| pcloud \| committed \| quarterly \| 12 \| 12 \| /);
    expect(gh.issues).toEqual([]);

    // exit 3: the source was emptied; committed, but suspicious, and the guard says so
    const aside = path.join(ws.dir, 'aside');
    await fsp.rename(ws.src, aside);
    await fsp.mkdir(ws.src);
    const suspicious = await backup({ at: new Date(start + HOUR) });
    expect(suspicious, suspicious.log).toMatchObject({ code: 3, result: 'UNSTABLE' });
    const r3 = await reports(dir);
    expect(r3.suite).toMatchObject({ '@_tests': '5', '@_failures': '1', '@_skipped': '1' });
    expect(r3.failures['pcloud guards FAILED']).toMatch(/^guard: /);
    expect(r3.summary.split('\n')[0]).toMatch(/: completed with warnings \(exit 3, /);
    expect(gh.issues).toMatchObject([{ number: 1, title: 'cerberus: documents → pcloud', state: 'open' }]);
    await fsp.rm(ws.src, { recursive: true });
    await fsp.rename(aside, ws.src);
    expect(await backup({ at: new Date(start + 24 * HOUR) })).toMatchObject({ code: 0, result: 'SUCCESS' });
    expect(gh.issues[0]).toMatchObject({ state: 'closed' });

    // exit 1: pCloud refuses the password
    const failed = await backup({ at: new Date(start + 25 * HOUR), password: 'not the password' });
    expect(failed, failed.log).toMatchObject({ code: 1, result: 'FAILURE' });
    const r1 = await reports(dir);
    expect(r1.suite).toMatchObject({ '@_tests': '1', '@_failures': '1' });
    expect(r1.failures).toEqual({ 'pcloud plan FAILED': expect.stringMatching(/401 Unauthorized \(check the credentials/) });
    expect(r1.summary.split('\n')[0]).toMatch(/: FAILED \(exit 1, /);
    expect(gh.issues[1]).toMatchObject({ number: 2, state: 'open' });

    // the last good run, then the Pi stops for two days
    expect(await backup({ at: new Date(Date.now() - 50 * HOUR) })).toMatchObject({ code: 0, result: 'SUCCESS' });
    expect(gh.issues[1]).toMatchObject({ state: 'closed' });
    const stale = await health();
    expect(stale, stale.log).toMatchObject({ code: 1, result: 'FAILURE' });
    const rh = await reports(dir);
    expect(rh.suite).toMatchObject({ '@_name': 'cerberus health all', '@_tests': '1', '@_failures': '1' });
    expect(rh.failures).toEqual({ 'documents/pcloud health FAILED': expect.stringMatching(/is 50h00m old, more than 26h00m: backups have stopped arriving/) });
    expect(gh.issues[2]).toMatchObject({ number: 3, title: 'cerberus: documents → pcloud', state: 'open' });
    expect(gh.issues[2]!.body).toMatch(/`cerberus health` .*the health check failed/);

    // the Pi is back: its run closes the issue, and health passes again
    expect(await backup()).toMatchObject({ code: 0, result: 'SUCCESS' });
    expect(gh.issues[2]).toMatchObject({ state: 'closed' });
    expect(await health()).toMatchObject({ code: 0, result: 'SUCCESS' });
    expect(gh.issues.filter((i) => i.state === 'open')).toEqual([]);
  }, 300_000);
});
