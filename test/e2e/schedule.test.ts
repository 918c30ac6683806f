import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, cerberus, diffTrees, snapshotTree, tempDir } from '../helpers/cli.js';
import { RunHistory, type HistoryRecord, type RunRecord } from '../../src/schedule/index.js';

/**
 * `cerberus schedule --tenants FILE` as an operator runs it: the built CLI as a daemon, each
 * run a `cerberus backup` process of its own, on per-second cron schedules so a test sees
 * several periods. Local folders as sources: the remote ones are in remote-sources.test.ts.
 */

const PASS = 'tenant passphrase';

interface Setup {
  dir: string;
  file: string;
  env: NodeJS.ProcessEnv;
  run(args: string[]): ReturnType<typeof cerberus>;
  history(job: string): Promise<HistoryRecord[]>;
}

async function setup(resources: Array<{ tenant: string; schedule: string; hookSeconds?: number }>): Promise<Setup> {
  const dir = await tempDir('cerberus-schedule-');
  const lines = [
    'targets: [{ name: disk, type: local, path: repo }]',
    'encryption: { kind: openpgp, passphrase: "${PASS}" }',
    'maxParallel: 4',
    'timezone: UTC',
    'tenants:',
  ];
  for (const r of resources) {
    const src = path.join(dir, 'src', r.tenant);
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'a.txt'), `tenant ${r.tenant}\n`);
    await fsp.writeFile(path.join(src, 'sub', 'b.bin'), randomBytes(100_000));
    lines.push(`  - name: ${r.tenant}`, '    resources:', `      - name: docs`, `        schedule: "${r.schedule}"`, `        source: { paths: [src/${r.tenant}] }`);
    if (r.hookSeconds) lines.push(`        hooks: { before: [sleep, "${r.hookSeconds}"] }`);
  }
  const file = path.join(dir, 'tenants.yaml');
  await fsp.writeFile(file, lines.join('\n') + '\n');
  const env = { CERBERUS_STATE_DIR: path.join(dir, 'state'), PASS };
  return {
    dir,
    file,
    env,
    run: (args) => cerberus(args, { cwd: dir, env, timeoutMs: 120_000 }),
    history: (job) => new RunHistory(path.join(dir, 'state', 'schedule')).records(job),
  };
}

function daemon(s: Setup, args: string[] = []): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'schedule', '--tenants', s.file, ...args], {
    cwd: s.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...s.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stderr: () => err, exited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const runs = (records: HistoryRecord[]) => records.filter((r): r is RunRecord => r.kind === 'run');
const span = (r: RunRecord) => [Date.parse(r.startedAt), Date.parse(r.endedAt)] as const;
const overlap = (a: RunRecord, b: RunRecord) => span(a)[0] < span(b)[1] && span(b)[0] < span(a)[1];

describe('cerberus schedule --tenants', () => {
  it('runs tenants side by side, never a resource twice at once, records the skips, and stops cleanly on SIGTERM', { timeout: 120_000 }, async () => {
    // every second, each run holds 2 s in its before hook: the fires in between must be skipped
    const s = await setup([
      { tenant: 'acme', schedule: '* * * * * *', hookSeconds: 2 },
      { tenant: 'globex', schedule: '* * * * * *', hookSeconds: 2 },
    ]);
    const d = daemon(s, ['--grace', '60s']);
    await sleep(7_000);
    d.child.kill('SIGTERM');
    expect(await d.exited, d.stderr()).toBe(0);
    expect(d.stderr()).toContain('SIGTERM: no new runs');

    const acme = await s.history('acme/docs');
    const globex = await s.history('globex/docs');
    for (const [name, records] of [['acme', acme], ['globex', globex]] as const) {
      const done = runs(records);
      expect(done.length, `${name}: ${JSON.stringify(records)}`).toBeGreaterThanOrEqual(2);
      // the grace let the run going at SIGTERM finish
      expect(done.every((r) => r.status === 'success'), JSON.stringify(done)).toBe(true);
      for (const [i, a] of done.entries()) for (const b of done.slice(i + 1)) expect(overlap(a, b), `${name} ran twice at once`).toBe(false);
      const skipped = records.filter((r) => r.kind === 'skipped');
      expect(skipped.length, name).toBeGreaterThanOrEqual(2);
      expect(skipped[0]!.kind === 'skipped' && skipped[0]!.reason).toMatch(/still going/);
    }
    // the two tenants ran at the same time
    expect(runs(acme).some((a) => runs(globex).some((g) => overlap(a, g)))).toBe(true);
    expect(d.stderr()).toMatch(/acme\/docs.*skipped|skipped.*acme\/docs/);

    // every run made a whole generation, which restores to the source
    const list = await s.run(['list', '--tenants', s.file, '--job', 'acme/docs', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { points: unknown[] }).points.length).toBe(runs(acme).length);
    const to = path.join(s.dir, 'restored');
    const r = await s.run(['restore', '--tenants', s.file, '--job', 'acme/docs', '--at', 'latest', '--to', to]);
    expect(r.code, r.stderr).toBe(0);
    expect(diffTrees(await snapshotTree(path.join(s.dir, 'src', 'acme')), await snapshotTree(to))).toEqual([]);
    // each tenant in its own folder of the target
    expect((await fsp.readdir(path.join(s.dir, 'repo'))).sort()).toEqual(['acme', 'globex']);
  });

  it('SIGTERM past the grace stops a run without a partial generation; the next run starts clean', { timeout: 120_000 }, async () => {
    const s = await setup([{ tenant: 'acme', schedule: '* * * * * *', hookSeconds: 60 }]);
    const d = daemon(s, ['--grace', '1s']);
    // wait until the run is in its hook
    for (let i = 0; i < 100 && !d.stderr().includes('[acme/docs]'); i++) await sleep(100);
    await sleep(1_000);
    const stopped = Date.now();
    d.child.kill('SIGTERM');
    expect(await d.exited, d.stderr()).toBe(0);
    // the grace, then the run's own prompt end (its hook killed, its report written)
    expect(Date.now() - stopped).toBeLessThan(20_000);
    const [first] = runs(await s.history('acme/docs'));
    expect(first?.status, d.stderr()).toBe('interrupted');
    expect(first?.error).toMatch(/interrupted by SIGTERM|stopped by the scheduler/);
    const list = await s.run(['list', '--tenants', s.file, '--job', 'acme/docs', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { points: unknown[] }).points).toEqual([]);

    // --once: the resource is due (its last fire has no finished run); without the hook it completes
    await fsp.writeFile(s.file, (await fsp.readFile(s.file, 'utf8')).replace(/ {8}hooks: .*\n/, ''));
    const once = await s.run(['schedule', '--tenants', s.file, '--once']);
    expect(once.code, once.stderr).toBe(0);
    expect(once.stdout).toContain('acme/docs\tsuccess');
    const verify = await s.run(['verify', '--tenants', s.file, '--job', 'acme/docs']);
    expect(verify.code, verify.stderr + verify.stdout).toBe(0);
    const levels = await fsp.readdir(path.join(s.dir, 'repo', 'acme', 'docs', 'quarterly'));
    expect(levels.filter((n) => n.startsWith('.incomplete-')), 'the next run clears what the stopped one left').toEqual([]);
  });

  it('--once runs only what is due, and health reports each resource', { timeout: 120_000 }, async () => {
    const s = await setup([
      { tenant: 'acme', schedule: '0 0 1 1 *' },
      { tenant: 'globex', schedule: '0 0 1 1 *' },
    ]);
    const first = await s.run(['schedule', '--tenants', s.file, '--once', '--json', '--report', 'reports']);
    expect(first.code, first.stderr).toBe(0);
    const out = JSON.parse(first.stdout) as { runs: HistoryRecord[] };
    expect(out.runs.map((r) => [r.job, r.kind === 'run' && r.status]).sort()).toEqual([
      ['acme/docs', 'success'],
      ['globex/docs', 'success'],
    ]);
    const junit = await fsp.readFile(path.join(s.dir, 'reports', 'junit.xml'), 'utf8');
    expect(junit).toContain('acme/docs');
    // each run wrote its own report too
    expect(await fsp.readFile(path.join(s.dir, 'reports', 'acme', 'docs', 'junit.xml'), 'utf8')).toContain('testcase');
    const again = await s.run(['schedule', '--tenants', s.file, '--once']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('nothing is due');

    const health = await s.run(['health', '--tenants', s.file, '--json']);
    expect(health.code, health.stderr + health.stdout).toBe(0);
    const h = JSON.parse(health.stdout) as { checks: Array<{ job: string; healthy: boolean }>; schedule: Array<{ job: string; state: string; lastSuccess?: string }> };
    expect(h.checks.map((c) => [c.job, c.healthy])).toEqual([
      ['acme/docs', true],
      ['globex/docs', true],
    ]);
    expect(h.schedule.map((c) => [c.job, c.state, typeof c.lastSuccess])).toEqual([
      ['acme/docs', 'ok', 'string'],
      ['globex/docs', 'ok', 'string'],
    ]);
  });
});
