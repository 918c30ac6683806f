import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, diffTrees, snapshotTree, workspace, type Workspace } from '../helpers/cli.js';
import { reports } from '../helpers/reports.js';

/**
 * Hooks around a backup, as a live server uses them: `before` puts the application into
 * maintenance, `afterSnapshot` takes it out as soon as the source is read (before the upload
 * ends), `after` and `onError` report. The "application" here is a flag file in the source.
 */

const ID = '2026-11-22T030000Z';
const NOW = '2026-11-22T03:00:00Z';

/** A hook that appends "<name> <status> <level> <generation> <time ns>" to events.log. */
const record = (name: string) => `{ run: 'echo "${name} $CERBERUS_STATUS $CERBERUS_LEVEL $CERBERUS_GENERATION $(date +%s%N)" >> events.log', shell: true }`;

interface Event {
  hook: string;
  status: string;
  level: string;
  generation: string;
  ns: bigint;
}

async function events(ws: Workspace): Promise<Event[]> {
  const text = await fsp.readFile(path.join(ws.dir, 'events.log'), 'utf8').catch(() => '');
  return text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [hook, status, level, generation, ns] = l.split(' ');
      return { hook: hook!, status: status!, level: level!, generation: generation!, ns: BigInt(ns!) };
    });
}

async function withHooks(hooks: string[], extra: string[] = []): Promise<Workspace> {
  const ws = await workspace({ yamlExtra: ['    hooks:', ...hooks.map((h) => `      ${h}`), ...extra].join('\n'), volumeSize: '512KiB' });
  const r = await ws.run(['init', '-c', ws.config]);
  expect(r.code, r.stderr).toBe(0);
  return ws;
}

async function fillSource(ws: Workspace, files: number, size: number): Promise<void> {
  // incompressible, so the upload takes as long as its bytes
  for (let i = 0; i < files; i++) await fsp.writeFile(path.join(ws.src, `file-${i}.bin`), randomBytes(size));
}

describe('hooks', () => {
  it('maintenance is on from before to afterSnapshot: during the read, not the rest of the upload', async () => {
    const ws = await withHooks(
      [
        // maintenance on: a flag in the source itself, so the backup shows it was on during the read
        `before: { run: 'echo "before $CERBERUS_STATUS $CERBERUS_LEVEL $CERBERUS_GENERATION $(date +%s%N)" >> events.log; echo on > src/MAINTENANCE', shell: true }`,
        // maintenance off; and what the target held at that moment
        `afterSnapshot: { run: 'rm src/MAINTENANCE; echo "afterSnapshot $CERBERUS_STATUS $CERBERUS_LEVEL $CERBERUS_GENERATION $(date +%s%N)" >> events.log; ls -a repo/quarterly > at-snapshot.txt', shell: true }`,
        `after: ${record('after')}`,
        `onError: ${record('onError')}`,
      ],
    );
    // the upload is throttled, so it outlasts the read by the two volumes the spool may hold
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace('path: repo }', 'path: repo, bwlimit: 1MiB/s }'));
    await fillSource(ws, 6, 512 * 1024);
    const expected = await snapshotTree(ws.src);

    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const ev = await events(ws);
    expect(ev.map((e) => `${e.hook} ${e.status} ${e.level} ${e.generation}`)).toEqual([
      `before running quarterly ${ID}`,
      `afterSnapshot running quarterly ${ID}`,
      `after success quarterly ${ID}`,
    ]);
    // the application is back: the flag is gone from the source
    expect(fs.existsSync(path.join(ws.src, 'MAINTENANCE'))).toBe(false);
    // at afterSnapshot the generation was not committed yet: the upload went on after it
    const atSnapshot = (await fsp.readFile(path.join(ws.dir, 'at-snapshot.txt'), 'utf8')).split('\n');
    expect(atSnapshot).toContain(`.incomplete-${ID}`);
    expect(atSnapshot).not.toContain(ID);
    const committedNs = (await fsp.stat(path.join(ws.repo, 'quarterly', ID, 'SHA256SUMS'), { bigint: true })).mtimeNs;
    const snapshotNs = ev.find((e) => e.hook === 'afterSnapshot')!.ns;
    expect(committedNs - snapshotNs).toBeGreaterThan(300_000_000n);
    const result = JSON.parse(r.stdout) as { hooks: Array<{ hook: string; status: string }> };
    expect(result.hooks.map((h) => `${h.hook} ${h.status}`)).toEqual(['before ok', 'afterSnapshot ok', 'after ok']);

    // the backup read the source in maintenance: the flag is in it, with every file
    const to = path.join(ws.dir, 'restored');
    const rr = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]);
    expect(rr.code, rr.stderr).toBe(0);
    expect(await fsp.readFile(path.join(to, 'MAINTENANCE'), 'utf8')).toBe('on\n');
    await fsp.rm(path.join(to, 'MAINTENANCE'));
    expect(diffTrees(expected, await snapshotTree(to))).toEqual([]);
  });

  it('a failing before stops the run; afterSnapshot, after and onError still run, and the report says why', async () => {
    const ws = await withHooks([
      `before: [sh, -c, 'echo cannot reach the app >&2; exit 4']`,
      `afterSnapshot: ${record('afterSnapshot')}`,
      `after: ${record('after')}`,
      `onError: { run: 'echo "onError $CERBERUS_STATUS $CERBERUS_ERROR" > error.txt', shell: true }`,
    ]);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW, '--report', 'report']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/running hook before \(sh\)/);
    expect(r.stderr).toContain('[before] cannot reach the app');
    expect(r.stderr).toMatch(/cerberus: error: hook before \(sh\) exited with status 4/);
    expect((await events(ws)).map((e) => `${e.hook} ${e.status}`)).toEqual(['afterSnapshot running', 'after failed']);
    expect(await fsp.readFile(path.join(ws.dir, 'error.txt'), 'utf8')).toMatch(/^onError failed hook before \(sh\) exited with status 4/);
    // nothing was written, and the lock is gone
    expect(await fsp.readdir(path.join(ws.repo, 'quarterly')).catch(() => [])).toEqual([]);
    expect(await fsp.readdir(path.join(ws.repo, 'locks')).catch(() => [])).toEqual([]);
    const report = await reports(path.join(ws.dir, 'report'));
    expect(report.failures['hook before FAILED']).toMatch(/^hook before \(sh\) exited with status 4/);
    expect(report.cases).toEqual(expect.arrayContaining(['hook afterSnapshot', 'hook after', 'hook onError']));
    expect(report.json.exitCode).toBe(1);
  });

  it('a hook that hangs is killed at its timeout and fails the run', async () => {
    const ws = await withHooks([`before: { run: [sleep, '600'], timeout: 1s }`, `onError: ${record('onError')}`]);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const started = Date.now();
    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW], {}, { timeoutMs: 60_000 });
    expect(r.timedOut).toBe(false);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/hook before \(sleep\) did not finish within its timeout of 1 s and was killed/);
    expect((await events(ws)).map((e) => e.hook)).toEqual(['onError']);
  });

  it('a failing after marks a committed backup failed, and onError runs', async () => {
    const ws = await withHooks([`after: [/bin/false]`, `onError: ${record('onError')}`]);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const result = JSON.parse(r.stdout) as { targets: Array<{ status: string }>; hooks: Array<{ hook: string; status: string; error?: string }>; exitCode: number };
    expect(result.targets[0]!.status).toBe('committed');
    expect(result.hooks).toEqual([expect.objectContaining({ hook: 'after', status: 'failed', error: expect.stringMatching(/hook after \(false\) exited with status 1/) }), expect.objectContaining({ hook: 'onError', status: 'ok' })]);
    expect(result.exitCode).toBe(1);
    expect(fs.existsSync(path.join(ws.repo, 'quarterly', ID, 'SHA256SUMS'))).toBe(true);
  });

  it('a dry run runs no hook', async () => {
    const ws = await withHooks([`before: ${record('before')}`, `after: ${record('after')}`]);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/dry run: the job's hooks are not run/);
    expect(await events(ws)).toEqual([]);
  });

  it('SIGTERM during a hook ends the run with the hooks it owes run', async () => {
    const ws = await withHooks([`before: [sleep, '600']`, `afterSnapshot: ${record('afterSnapshot')}`, `onError: ${record('onError')}`]);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const child = spawn(process.execPath, [BIN, 'backup', '-c', ws.config, '--now', NOW, '--report', 'report'], {
      cwd: ws.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...ws.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await expect.poll(() => stderr, { timeout: 30_000 }).toMatch(/running hook before/);
    const started = Date.now();
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(code).toBe(1);
    expect(stderr).toMatch(/interrupted by SIGTERM/);
    expect((await events(ws)).map((e) => `${e.hook} ${e.status}`)).toEqual(['afterSnapshot running', 'onError failed']);
    expect((await reports(path.join(ws.dir, 'report'))).json.error).toMatch(/interrupted by SIGTERM/);
  });

  it('runs around a Cryptomator vault backup too', async () => {
    const ws = await workspace({ keygen: false });
    await fsp.writeFile(
      ws.config,
      [
        'jobs:',
        '  docs:',
        '    source: { paths: [src] }',
        '    encryption: { kind: cryptomator, password: ${VAULT_PASSWORD} }',
        '    targets: [{ name: usb, type: local, path: repo }]',
        '    timezone: UTC',
        '    hooks:',
        `      before: ${record('before')}`,
        `      afterSnapshot: ${record('afterSnapshot')}`,
        `      after: ${record('after')}`,
      ].join('\n') + '\n',
    );
    const env = { VAULT_PASSWORD: 'vault pw' };
    expect((await ws.run(['init', '-c', ws.config], env)).code).toBe(0);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--now', NOW], env);
    expect(r.code, r.stderr).toBe(0);
    expect((await events(ws)).map((e) => `${e.hook} ${e.status} ${e.level} ${e.generation}`)).toEqual([
      `before running quarterly ${ID}`,
      `afterSnapshot running quarterly ${ID}`,
      `after success quarterly ${ID}`,
    ]);
  });
});

describe('hooks in the config', () => {
  const refused = async (hook: string) => {
    const ws = await workspace({ yamlExtra: `    hooks:\n      ${hook}`, keygen: false });
    const r = await ws.run(['backup', '-c', ws.config]);
    expect(r.code).toBe(2);
    return r.stderr;
  };

  it('a shell string without shell: true is refused, with the argv form to use', async () => {
    expect(await refused(`before: 'occ maintenance:mode --on'`)).toMatch(
      /jobs\.docs\.hooks\.before: a hook is an argv list, e\.g\. \[occ, maintenance:mode, --on\], not a shell string; for a shell command line write \{ run: "occ maintenance:mode --on", shell: true \}/,
    );
  });

  it('an argv list with shell: true, an unknown key and a bad timeout are refused', async () => {
    expect(await refused(`after: { run: [curl, x], shell: true }`)).toMatch(/with shell: true, run is one command line/);
    expect(await refused(`after: { run: [curl, x], timout: 5s }`)).toMatch(/unknown key \(did you mean "timeout"\?\)/);
    expect(await refused(`onError: { run: [curl, x], timeout: 5 }`)).toMatch(/timeout: invalid duration 5: a unit is required/);
    expect(await refused(`befor: [x]`)).toMatch(/jobs\.docs\.hooks\.befor: unknown key \(did you mean "before"\?\)/);
  });
});
