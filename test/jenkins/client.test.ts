import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import { BUNDLED_JOBS_DIR, JenkinsClient, jenkinsCredentials, readJobDefinitions } from '../../src/jenkins/index.js';
import { startFakeJenkins, type FakeJenkins } from '../helpers/fake-jenkins.js';
import { tempDir } from '../helpers/cli.js';

// against a FAKE of the Jenkins REST API (test/helpers/fake-jenkins.ts): Jenkins cannot run here
const TOKEN = '11aa22bb33cc44dd55ee66ff77889900aa';
let jenkins: FakeJenkins;
let client: JenkinsClient;
beforeEach(async () => {
  jenkins = await startFakeJenkins('ops', TOKEN);
  client = await JenkinsClient.connect(await jenkinsCredentials(jenkins.url, { JENKINS_USER: 'ops', JENKINS_TOKEN: TOKEN }));
});
afterEach(() => jenkins.close());

const REPO = 'https://git.example.com/me/backup-config.git';

describe('jenkins credentials', () => {
  it('come from JENKINS_USER and JENKINS_TOKEN or JENKINS_TOKEN_FILE, never from the URL', async () => {
    const dir = await tempDir();
    await fsp.writeFile(path.join(dir, 'token'), `${TOKEN}\n`);
    expect(await jenkinsCredentials('https://ci.example.com/', { JENKINS_USER: 'ops', JENKINS_TOKEN_FILE: path.join(dir, 'token') })).toEqual({ url: 'https://ci.example.com', user: 'ops', token: TOKEN });
    await expect(jenkinsCredentials('https://ci.example.com', { JENKINS_USER: 'ops' })).rejects.toThrow(/JENKINS_USER and JENKINS_TOKEN are not both set/);
    await expect(jenkinsCredentials('https://ops:secret@ci.example.com', { JENKINS_USER: 'ops', JENKINS_TOKEN: TOKEN })).rejects.toThrow(/must not carry a user or password/);
    await expect(jenkinsCredentials('ftp://ci.example.com', { JENKINS_USER: 'ops', JENKINS_TOKEN: TOKEN })).rejects.toThrow(/not an http\(s\) address/);
    await fsp.rm(dir, { recursive: true });
  });
});

describe('the bundled jobs', () => {
  it('are every pipelines/jobs/*.xml, with --repo and --branch in place of the placeholder', async () => {
    await expect(readJobDefinitions(BUNDLED_JOBS_DIR, {})).rejects.toMatchObject({ message: expect.stringMatching(/placeholder repository/), hint: expect.stringMatching(/pass --repo/) });
    const defs = await readJobDefinitions(BUNDLED_JOBS_DIR, { repo: `${REPO}?a=1&b=2`, branch: 'prod' });
    expect(defs.map((d) => d.name)).toEqual(expect.arrayContaining(['cerberus-backup', 'cerberus-health', 'cerberus-restore', 'cerberus-worker']));
    for (const d of defs) {
      expect(d.xml).toContain(`<url>${REPO}?a=1&amp;b=2</url>`);
      expect(d.xml).toMatch(/<hudson\.plugins\.git\.BranchSpec>\s*<name>\*\/prod<\/name>/);
      expect(d.xml).not.toContain('example.invalid');
    }
  });
});

describe('JenkinsClient', () => {
  it('creates a job, then updates its config', async () => {
    expect(await client.putJob('cerberus-backup', '<flow-definition>1</flow-definition>')).toBe('created');
    expect(await client.putJob('cerberus-backup', '<flow-definition>2</flow-definition>')).toBe('updated');
    expect(jenkins.jobs.get('cerberus-backup')).toBe('<flow-definition>2</flow-definition>');
    expect(await client.jobExists('cerberus-backup')).toBe(true);
    expect(await client.jobExists('nope')).toBe(false);
  });

  it('queues a build with its parameters, waits for it to start, and follows its log to the result', async () => {
    await client.putJob('backups/cerberus-restore', '<flow-definition/>');
    jenkins.next = { log: ['Started\n', 'restoring ', 'Zoë.txt\n', 'Finished: UNSTABLE\n'], result: 'UNSTABLE' };
    const id = await client.build('backups/cerberus-restore', { JOB: 'docs', AT: 'latest', PATHS: 'a/** b.txt', DRY_RUN: 'false' });
    expect(jenkins.builds[0]!.parameters).toEqual({ JOB: 'docs', AT: 'latest', PATHS: 'a/** b.txt', DRY_RUN: 'false' });
    const waits: string[] = [];
    const started = await client.waitForStart(id, 10, (why) => waits.push(why));
    expect(started).toEqual({ state: 'started', number: 1, url: `${jenkins.url}/job/backups/cerberus-restore/1/` });
    expect(waits).toEqual(['In the quiet period.', 'Waiting for next available executor on ‘arm64’']);
    let log = '';
    expect(await client.follow('backups/cerberus-restore', 1, 10, (t) => (log += t))).toBe('UNSTABLE');
    expect(log).toBe('Started\nrestoring Zoë.txt\nFinished: UNSTABLE\n');
    // the log is fetched from where the last piece ended: nothing twice
    const starts = jenkins.requests.filter((r) => r.path.includes('progressiveText')).map((r) => new URLSearchParams(r.body).get('start'));
    expect(starts[0]).toBe('0');
    expect(new Set(starts).size).toBe(starts.length);
  });

  it('says when a queued build was cancelled', async () => {
    await client.putJob('cerberus-restore', '<flow-definition/>');
    jenkins.next = { log: [], result: 'ABORTED', cancel: true };
    const id = await client.build('cerberus-restore', { JOB: 'docs' });
    await expect(client.waitForStart(id, 10, () => undefined)).rejects.toThrow(/queue item \d+ was cancelled/);
  });

  it('turns refusals into errors that say what to do, without the token', async () => {
    const wrong = await JenkinsClient.connect({ url: jenkins.url, user: 'ops', token: 'wrong' });
    const err = await wrong.putJob('x', '<flow-definition/>').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).message).toMatch(/refused the login \(HTTP 401\)/);
    expect((err as CerberusError).hint).toMatch(/JENKINS_USER and JENKINS_TOKEN/);
    await expect(client.build('missing', { JOB: 'docs' })).rejects.toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/job missing not found/) });
    const down = await JenkinsClient.connect({ url: 'http://127.0.0.1:9', user: 'ops', token: TOKEN });
    await expect(down.jobExists('x')).rejects.toThrow(/cannot reach Jenkins at http:\/\/127\.0\.0\.1:9/);
    for (const r of jenkins.requests) expect(r.path + r.body).not.toContain(TOKEN);
  });
});
