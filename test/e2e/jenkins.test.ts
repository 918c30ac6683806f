import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cerberus, ROOT } from '../helpers/cli.js';
import { startFakeJenkins, type FakeJenkins } from '../helpers/fake-jenkins.js';

// `cerberus jenkins` as a user runs it, against a FAKE of the Jenkins REST API
// (test/helpers/fake-jenkins.ts): a Jenkins controller cannot run here
const TOKEN = '11aa22bb33cc44dd55ee66ff77889900aa';
const REPO = 'https://git.example.com/me/backup-config.git';
let jenkins: FakeJenkins;
const env = () => ({ JENKINS_USER: 'ops', JENKINS_TOKEN: TOKEN });
const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cerberus(['jenkins', ...args, '--url', jenkins.url], { cwd: ROOT, env: { ...env(), ...extra }, timeoutMs: 60_000 });

beforeAll(async () => {
  jenkins = await startFakeJenkins('ops', TOKEN);
});
afterAll(() => jenkins.close());

const noToken = (r: { stdout: string; stderr: string }) => {
  expect(r.stdout + r.stderr).not.toContain(TOKEN);
};

describe('cerberus jenkins apply', () => {
  it('--dry-run prints what it would send and changes nothing', async () => {
    const r = await run(['apply', '--repo', REPO, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('<!-- cerberus-backup: would create -->');
    expect(r.stdout).toContain(`<url>${REPO}</url>`);
    expect(jenkins.jobs.size).toBe(0);
  });

  it('creates the jobs of pipelines/jobs, then updates them', async () => {
    const first = await run(['apply', '--repo', REPO]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/cerberus-backup\s+created\s+pipelines\/jobs\/cerberus-backup\.xml/);
    expect([...jenkins.jobs.keys()].sort()).toEqual(expect.arrayContaining(['cerberus-backup', 'cerberus-health', 'cerberus-restore', 'cerberus-worker']));
    expect(jenkins.jobs.get('cerberus-restore')).toContain('<scriptPath>pipelines/restore.Jenkinsfile</scriptPath>');
    expect(jenkins.jobs.get('cerberus-worker')).toContain('<scriptPath>pipelines/worker.Jenkinsfile</scriptPath>');
    const again = await run(['apply', '--repo', REPO, '--branch', 'prod']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/cerberus-restore\s+updated/);
    expect(jenkins.jobs.get('cerberus-restore')).toContain('<name>*/prod</name>');
    noToken(again);
  });

  it('refuses without credentials, with a wrong token, or with the placeholder repository: one line each', async () => {
    const none = await cerberus(['jenkins', 'apply', '--url', jenkins.url, '--repo', REPO], { cwd: ROOT });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^cerberus: error: JENKINS_USER and JENKINS_TOKEN are not both set \(set them to a Jenkins user/);
    const wrong = await run(['apply', '--repo', REPO], { JENKINS_TOKEN: 'not-the-token' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toEqual([expect.stringMatching(/refused the login \(HTTP 401\) \(check JENKINS_USER and JENKINS_TOKEN/)]);
    const placeholder = await run(['apply']);
    expect(placeholder.code).toBe(2);
    expect(placeholder.stderr).toMatch(/still points at the placeholder repository .*pass --repo/);
  });
});

describe('cerberus jenkins restore', () => {
  it('queues the restore job with its parameters, streams the log, and exits with the result', async () => {
    const cases = [
      ['SUCCESS', 0],
      ['UNSTABLE', 3],
      ['FAILURE', 1],
    ] as const;
    for (const [result, code] of cases) {
      jenkins.next = { log: ['Started by user ops\n', '+ cerberus restore --dry-run\n', `Finished: ${result}\n`], result };
      const r = await run(['restore', '--job', 'docs', '--at', '2026-11-01', '--path', 'invoices/**', '--path', 'Zoë.txt', '--follow', '--poll', '100ms']);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stdout).toBe(`Started by user ops\n+ cerberus restore --dry-run\nFinished: ${result}\n`);
      expect(r.stderr).toMatch(/queued cerberus-restore \(queue item \d+\), a dry run/);
      expect(r.stderr).toMatch(/waiting in the queue: In the quiet period\./);
      expect(r.stderr).toMatch(new RegExp(`cerberus-restore #\\d+: ${result}`));
      noToken(r);
    }
    expect(jenkins.builds.at(-1)!.parameters).toEqual({ JOB: 'docs', AT: '2026-11-01', PATHS: 'invoices/** Zoë.txt', DRY_RUN: 'true' });
  });

  it('--no-dry-run, --target, --to and --param reach the build; without --follow it returns once started', async () => {
    jenkins.next = { log: ['waiting for input\n'], result: 'SUCCESS' };
    const r = await run(['restore', '--job', 'docs', '--target', 'usb', '--to', '/srv/restore', '--no-dry-run', '--param', 'CERBERUS_IMAGE_TAG=0.2.0', '--poll', '100ms']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/started cerberus-restore #\d+: http:\/\/127\.0\.0\.1:\d+\/job\/cerberus-restore\/\d+\//);
    expect(jenkins.builds.at(-1)!.parameters).toEqual({ JOB: 'docs', AT: 'latest', PATHS: '', DRY_RUN: 'false', TARGET: 'usb', RESTORE_TO: '/srv/restore', CERBERUS_IMAGE_TAG: '0.2.0' });
  });

  it('refuses a path with a space and a cancelled build', async () => {
    const space = await run(['restore', '--job', 'docs', '--path', 'My Documents/**']);
    expect(space.code).toBe(2);
    expect(space.stderr).toMatch(/holds a space.*My\?Documents/);
    jenkins.next = { log: [], result: 'ABORTED', cancel: true };
    const cancelled = await run(['restore', '--job', 'docs', '--follow', '--poll', '100ms']);
    expect(cancelled.code).toBe(1);
    expect(cancelled.stderr).toMatch(/was cancelled before it started/);
  });
});
