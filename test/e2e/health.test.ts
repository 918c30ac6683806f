import fsp from 'node:fs/promises';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { workspace } from '../helpers/cli.js';
import { startFakeGithub } from '../helpers/fake-github.js';

/**
 * `cerberus health`, the independent check: a Pi that stopped backing up, a suspicious newest
 * run and a hole in a chain make it fail; it needs no key.
 */

interface Check {
  job: string;
  target: string;
  healthy: boolean;
  newest?: { id: string; ageMs: number };
  problems: string[];
}

describe('cerberus health', () => {
  it('passes while backups arrive, fails when they stop, on suspicious runs and on broken chains, with no key', async () => {
    const ws = await workspace();
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    for (let i = 0; i < 10; i++) await fsp.writeFile(path.join(ws.src, `doc-${i}.txt`), `document ${i}\n`);
    for (const day of ['01', '02', '03']) {
      const r = await ws.run(['backup', '-c', ws.config, '--now', `2026-01-${day}T02:00:00Z`]);
      expect(r.code, r.stderr).toBe(0);
    }
    // no key, no passphrase: only what reaches the target
    const health = (now: string, ...more: string[]) =>
      ws.run(['health', '-c', ws.config, '--now', now, '--json', ...more], { CERBERUS_KEY_PASSPHRASE: '', CERBERUS_PRIVATE_KEY_FILE: '' });
    const checks = (stdout: string) => (JSON.parse(stdout) as { checks: Check[] }).checks;

    const fresh = await health('2026-01-03T20:00:00Z');
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(checks(fresh.stdout)).toEqual([
      { job: 'docs', target: 'usb', healthy: true, newest: { id: '2026-01-03T020000Z', level: 'daily', createdAt: '2026-01-03T02:00:00.000Z', ageMs: 18 * 3600_000 }, problems: [] },
    ]);

    // the Pi did not run for two days: fails, and says so in the JUnit report
    const stale = await health('2026-01-05T04:00:00Z', '--report', 'reports');
    expect(stale.code).toBe(1);
    expect(checks(stale.stdout)[0]!.problems.join('\n')).toMatch(/the newest restore point, daily\/2026-01-03T020000Z, is 50h00m old, more than 26h00m: backups have stopped arriving/);
    const junit = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === 'testcase' }).parse(await fsp.readFile(path.join(ws.dir, 'reports/junit.xml'), 'utf8')) as {
      testsuites: { testsuite: { '@_tests': string; '@_failures': string; testcase: Array<{ '@_classname': string; failure?: { '@_message': string } }> } };
    };
    expect(junit.testsuites.testsuite).toMatchObject({ '@_tests': '1', '@_failures': '1' });
    expect(junit.testsuites.testsuite.testcase[0]!['@_classname']).toBe('cerberus.health.all.docs/usb');
    expect(junit.testsuites.testsuite.testcase[0]!.failure!['@_message']).toMatch(/backups have stopped arriving/);
    expect(await fsp.readFile(path.join(ws.dir, 'reports/summary.md'), 'utf8')).toMatch(/^### cerberus health `all`: FAILED \(exit 1, [\s\S]*\| health \| docs\/usb \| FAILED: the newest restore point/);
    // a longer --max-age accepts it
    expect((await health('2026-01-05T04:00:00Z', '--max-age', '3d')).code).toBe(0);

    // a suspicious run newer than the last clean one
    for (const f of await fsp.readdir(ws.src)) await fsp.rm(path.join(ws.src, f));
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-01-04T02:00:00Z'])).code).toBe(3);
    const suspicious = await health('2026-01-04T05:00:00Z');
    expect(suspicious.code).toBe(1);
    expect(checks(suspicious.stdout)[0]!.problems.join('\n')).toMatch(/daily\/2026-01-04T020000Z is suspicious and newer than the last clean restore point/);

    // a hole in the chain: the quarterly full behind every daily is gone
    const full = path.join(ws.repo, 'quarterly', '2026-01-01T020000Z');
    await fsp.rm(full, { recursive: true });
    const broken = await health('2026-01-04T05:00:00Z');
    expect(broken.code).toBe(1);
    expect(checks(broken.stdout)[0]!.problems.join('\n')).toMatch(/needs 2026-01-01T020000Z in its chain, which is missing/);
  });

  it('reads a Cryptomator job without its vault password, and reports a target with no restore point', async () => {
    const ws = await workspace({ keygen: false });
    await fsp.writeFile(
      ws.config,
      'jobs:\n  vault:\n    source: { paths: [src] }\n    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }\n    targets:\n      - { name: disk, type: local, path: repo }\n    timezone: UTC\n',
    );
    expect((await ws.run(['init', '-c', ws.config], { VAULT_PASSWORD: 'secret' })).code).toBe(0);
    const r = await ws.run(['health', '-c', ws.config, '--job', 'vault']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vault → disk: no restore point yet/);
    expect(r.stdout).toMatch(/vault\s+disk\s+FAILED/);
    // backup itself still insists on the password
    expect((await ws.run(['backup', '-c', ws.config])).stderr).toMatch(/VAULT_PASSWORD.*not set/);
    expect((await ws.run(['health', '-c', ws.config, '--max-age', 'soon'])).code).toBe(2);
  });

  it('opens a GitHub issue when the Pi stops, and the next good run closes it (against a FAKE GitHub)', async () => {
    // GitHub cannot run here: test/helpers/fake-github.ts implements the issues endpoints
    const token = 'ghp_e2e-token-not-real';
    const gh = await startFakeGithub('me/backups', token);
    try {
      const ws = await workspace({ yamlExtra: `    report:\n      github: { repo: me/backups, token: "\${GITHUB_TOKEN}", apiUrl: "${gh.url}" }` });
      const env = { GITHUB_TOKEN: token };
      expect((await ws.run(['init', '-c', ws.config], env)).code).toBe(0);
      await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a document');
      const first = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-01T02:00:00Z'], env);
      expect(first.code, first.stderr).toBe(0);
      expect(gh.issues).toHaveLength(0); // nothing failing, nothing to open

      // two days without a backup: health fails and opens the issue, once
      const stale = await ws.run(['health', '-c', ws.config, '--now', '2026-01-03T05:00:00Z'], { ...env, CERBERUS_KEY_PASSPHRASE: '' });
      expect(stale.code).toBe(1);
      expect(stale.stderr).toMatch(/GitHub me\/backups#1: opened the issue for docs → usb/);
      expect(gh.issues).toMatchObject([{ number: 1, title: 'cerberus: docs → usb', state: 'open', labels: ['cerberus'] }]);
      expect(gh.issues[0]!.body).toMatch(/`cerberus health` of job `docs` on target `usb`: the health check failed/);
      expect(gh.issues[0]!.body).not.toContain(ws.src);
      expect((await ws.run(['health', '-c', ws.config, '--now', '2026-01-03T06:00:00Z'], env)).code).toBe(1);
      expect(gh.issues).toHaveLength(1);
      expect(gh.issues[0]!.comments).toHaveLength(1);

      // the Pi is back: its backup closes the issue
      const back = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-03T07:00:00Z'], env);
      expect(back.code, back.stderr).toBe(0);
      expect(back.stderr).toMatch(/GitHub me\/backups#1: closed the issue for docs → usb/);
      expect(gh.issues[0]).toMatchObject({ state: 'closed', state_reason: 'completed' });
      expect(gh.issues[0]!.comments.at(-1)).toMatch(/restore point daily\/2026-01-03T070000Z committed/);
      for (const r of gh.requests) expect(r.body).not.toContain(token);
      // a bad token is a warning for the backup, not a failure
      const wrong = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-04T02:00:00Z'], { GITHUB_TOKEN: 'wrong' });
      expect(wrong.code).toBe(0);
      expect(wrong.stderr).toMatch(/could not update the GitHub issues of job docs in me\/backups: HTTP 401: Bad credentials/);
      expect(wrong.stderr).not.toContain('wrong');
    } finally {
      await gh.close();
    }
  });
});
