import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GithubAlertConfig } from '../../src/config/index.js';
import { sendAlerts, type Alert } from '../../src/report/github.js';
import { startFakeGithub, type FakeGithub } from '../helpers/fake-github.js';

// against a FAKE of GitHub's issues API (test/helpers/fake-github.ts): GitHub cannot run here
const TOKEN = 'ghp_not-a-real-token-0123456789';
let gh: FakeGithub;
let cfg: GithubAlertConfig;
beforeEach(async () => {
  gh = await startFakeGithub('me/backups', TOKEN);
  cfg = { repo: 'me/backups', token: TOKEN, labels: ['cerberus', 'backup'], apiUrl: gh.url, details: false };
});
afterEach(() => gh.close());

const alert = (failing: boolean, more: Partial<Alert> = {}): Alert => ({
  job: 'docs',
  target: 'pcloud',
  command: 'backup',
  failing,
  summary: failing ? 'the backup failed' : 'restore point daily/2026-11-23T030000Z committed',
  details: ['cannot read /srv/docs/salaries.xlsx: EACCES'],
  at: new Date('2026-11-22T03:00:00Z'),
  ...more,
});

describe('GitHub alerts', () => {
  it('opens one issue per job and target, comments while it fails, and closes it on success', async () => {
    expect(await sendAlerts(cfg, [alert(true), alert(false, { target: 'usb' })])).toEqual([
      { job: 'docs', target: 'pcloud', action: 'opened', issue: 1 },
      { job: 'docs', target: 'usb', action: 'none' },
    ]);
    expect(gh.issues[0]).toMatchObject({ title: 'cerberus: docs → pcloud', labels: ['cerberus', 'backup'], state: 'open' });
    expect(gh.issues[0]!.body).toMatch(/^`cerberus backup` of job `docs` on target `pcloud`: the backup failed \(2026-11-22T03:00:00.000Z\)\./);

    expect(await sendAlerts(cfg, [alert(true, { command: 'health', summary: 'the health check failed' })])).toEqual([{ job: 'docs', target: 'pcloud', action: 'commented', issue: 1 }]);
    expect(gh.issues).toHaveLength(1);
    expect(gh.issues[0]!.comments[0]).toMatch(/`cerberus health` .*the health check failed/);

    expect(await sendAlerts(cfg, [alert(false)])).toEqual([{ job: 'docs', target: 'pcloud', action: 'closed', issue: 1 }]);
    expect(gh.issues[0]).toMatchObject({ state: 'closed', state_reason: 'completed' });
    expect(gh.issues[0]!.comments[1]).toMatch(/committed .*Recovered; closing\./s);

    // failing again later: a new issue, the closed one stays closed
    await sendAlerts(cfg, [alert(true)]);
    expect(gh.issues.map((i) => `${i.number} ${i.state}`)).toEqual(['1 closed', '2 open']);
  });

  it('keeps messages (and so file names) out of the issue unless details are allowed, and never sends the token in a body', async () => {
    await sendAlerts(cfg, [alert(true)]);
    expect(gh.issues[0]!.body).not.toContain('salaries');
    expect(gh.issues[0]!.body).toContain('The build log and its reports have the details.');
    await sendAlerts({ ...cfg, details: true }, [alert(true)]);
    expect(gh.issues[0]!.comments[0]).toContain('cannot read /srv/docs/salaries.xlsx: EACCES');
    for (const r of gh.requests) {
      expect(r.body).not.toContain(TOKEN);
      expect(r.path).not.toContain(TOKEN);
      expect(r.authorization).toBe(`token ${TOKEN}`);
    }
  });

  it('leaves pull requests and issues without its labels alone', async () => {
    gh.issues.push(
      { number: 1, title: 'cerberus: docs → pcloud', body: '', labels: ['cerberus', 'backup'], state: 'open', state_reason: null, comments: [], pull_request: { url: 'x' } },
      { number: 2, title: 'cerberus: docs → pcloud', body: '', labels: ['other'], state: 'open', state_reason: null, comments: [] },
    );
    expect(await sendAlerts(cfg, [alert(true)])).toEqual([{ job: 'docs', target: 'pcloud', action: 'opened', issue: 3 }]);
    expect(gh.issues.slice(0, 2).every((i) => i.comments.length === 0)).toBe(true);
  });

  it('fails with GitHub\'s status on a bad token', async () => {
    const err = (await sendAlerts({ ...cfg, token: 'wrong' }, [alert(true)]).then(() => undefined, (e: unknown) => e)) as { status?: number; message?: string };
    expect(err.status).toBe(401);
    expect(err.message).toMatch(/Bad credentials/);
    expect(gh.issues).toHaveLength(0);
  });
});
