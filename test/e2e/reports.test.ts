import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cerberus, tempDir, workspace, type Workspace } from '../helpers/cli.js';
import { reports } from '../helpers/reports.js';

/** `backup --report DIR`, as the Jenkinsfile runs it: junit.xml, summary.md, report.json. */

async function twoTargets(): Promise<Workspace> {
  const ws = await workspace({ yamlExtra: '      - { name: spare, type: local, path: spare }\n    retention: { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0s }' });
  // the second target line belongs to the targets list: move it there
  const yaml = (await fsp.readFile(ws.config, 'utf8')).replace(/(      - \{ name: usb.*\n)([\s\S]*?)(      - \{ name: spare.*\n)/, '$1$3$2');
  await fsp.writeFile(ws.config, yaml);
  for (let i = 0; i < 10; i++) await fsp.writeFile(path.join(ws.src, `doc-${i}.txt`), `document ${i}\n`.repeat(100));
  const init = await ws.run(['init', '-c', ws.config]);
  expect(init.code, init.stderr).toBe(0);
  return ws;
}

describe('backup --report', () => {
  it('reports each step per target, and exit codes 1, 0 and 3 as failures, none, and failed guards', async () => {
    const ws = await twoTargets();
    const dir = path.join(ws.dir, 'reports');

    // a target whose repository is gone: it fails, the other commits
    await fsp.rm(path.join(ws.dir, 'spare'), { recursive: true });
    const r1 = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-01T02:00:00Z', '--report', 'reports']);
    expect(r1.code, r1.stderr).toBe(1);
    const one = await reports(dir);
    expect(one.cases).toEqual([
      'usb plan',
      'spare plan FAILED',
      'usb scan+encrypt+upload',
      'usb verify',
      'usb prune',
      'usb guards',
    ]);
    expect(one.suite).toMatchObject({ '@_name': 'cerberus backup docs', '@_tests': '6', '@_failures': '1', '@_skipped': '0' });
    expect(one.failures['spare plan FAILED']).toMatch(/spare/);
    expect(one.json).toMatchObject({ command: 'backup', job: 'docs', exitCode: 1 });
    expect(one.json.targets.map((t) => [t.target, t.status, t.level, t.files, t.changedFiles, t.kept])).toEqual([
      ['usb', 'committed', 'quarterly', 10, 10, 1],
      ['spare', 'failed', undefined, undefined, undefined, undefined],
    ]);
    expect(one.json.targets[0]!.bytesRead).toBe(10 * 1100);
    expect(one.json.targets[0]!.bytesUploaded).toBeGreaterThan(0);
    expect(one.summary.split('\n')[0]).toMatch(/^### cerberus backup `docs`: FAILED \(exit 1, /);
    expect(one.summary).toMatch(/\| usb \| committed \| quarterly \| 10 \| 10 \| /);
    expect(one.summary).toMatch(/- \*\*spare\*\* failed: /);

    // both targets fine: no failures, and the report files are replaced whole
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    const r2 = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-02T02:00:00Z', '--report', 'reports']);
    expect(r2.code, r2.stderr).toBe(0);
    const two = await reports(dir);
    expect(two.suite).toMatchObject({ '@_tests': '10', '@_failures': '0' });
    expect(two.cases.filter((c) => c.startsWith('spare '))).toEqual(['spare plan', 'spare scan+encrypt+upload', 'spare verify', 'spare prune', 'spare guards']);
    expect(two.summary.split('\n')[0]).toMatch(/: ok \(exit 0, /);
    expect((await fsp.readdir(dir)).sort()).toEqual(['junit.xml', 'report.json', 'summary.md']);

    // the source emptied: committed but suspicious, prune skipped, guards failed, exit 3
    for (const f of await fsp.readdir(ws.src)) await fsp.rm(path.join(ws.src, f));
    const r3 = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-03T02:00:00Z', '--report', 'reports']);
    expect(r3.code, r3.stderr).toBe(3);
    const three = await reports(dir);
    expect(three.cases).toContain('usb prune SKIPPED');
    expect(three.cases).toContain('usb guards FAILED');
    expect(three.failures['usb guards FAILED']).toMatch(/^guard: /);
    expect(three.json.targets.map((t) => t.status)).toEqual(['suspicious', 'suspicious']);
    expect(three.summary.split('\n')[0]).toMatch(/: completed with warnings \(exit 3, /);
  });

  it('reports a run that ends in an error, and the steps of a Cryptomator backup', async () => {
    const dir = await tempDir();
    await fsp.mkdir(path.join(dir, 'src'));
    await fsp.writeFile(path.join(dir, 'src', 'a.txt'), 'vault me');
    await fsp.writeFile(
      path.join(dir, 'c.yaml'),
      'jobs:\n  vault:\n    source: { paths: [src] }\n    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }\n    targets:\n      - { name: disk, type: local, path: repo }\n    timezone: UTC\n',
    );
    const env = { CERBERUS_STATE_DIR: path.join(dir, 'state'), VAULT_PASSWORD: 'report test password' };
    // no repository yet: the run fails in its plan
    const bad = await cerberus(['backup', '-c', 'c.yaml', '--report', 'out'], { cwd: dir, env });
    expect(bad.code).toBe(1);
    const failed = await reports(path.join(dir, 'out'));
    expect(failed.cases).toEqual(['disk plan FAILED']);
    expect(failed.failures['disk plan FAILED']).toMatch(/cerberus init/);

    expect((await cerberus(['init', '-c', 'c.yaml'], { cwd: dir, env })).code).toBe(0);
    const ok = await cerberus(['backup', '-c', 'c.yaml', '--report', 'out'], { cwd: dir, env });
    expect(ok.code, ok.stderr).toBe(0);
    const good = await reports(path.join(dir, 'out'));
    expect(good.cases).toEqual(['disk plan', 'disk scan+encrypt+upload', 'disk verify', 'disk prune', 'disk guards']);
    expect(good.json.targets[0]).toMatchObject({ target: 'disk', status: 'committed', files: 1, changedFiles: 1, bytesRead: 8, kept: 1 });

    // the mirror commands report a step per target
    const sync = await cerberus(['sync', 'up', '-c', 'c.yaml', '--report', 'out'], { cwd: dir, env });
    expect(sync.code, sync.stderr).toBe(0);
    const synced = await reports(path.join(dir, 'out'));
    expect(synced.suite).toMatchObject({ '@_name': 'cerberus sync up vault', '@_failures': '0' });
    expect(synced.cases).toEqual(['disk sync up']);
  });

  it('verify --report and prune --report: a case per target, a damaged file a failure', async () => {
    const ws = await twoTargets();
    for (const day of ['01', '02']) expect((await ws.run(['backup', '-c', ws.config, '--now', `2026-01-${day}T02:00:00Z`])).code).toBe(0);
    const ok = await ws.run(['verify', '-c', ws.config, '--report', 'v']);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await reports(path.join(ws.dir, 'v'))).cases).toEqual(['usb verify', 'spare verify']);

    const daily = path.join(ws.dir, 'spare', 'daily', '2026-01-02T020000Z', 'data.tar.gpg.0001');
    const bytes = await fsp.readFile(daily);
    bytes[bytes.length - 1]! ^= 1;
    await fsp.writeFile(daily, bytes);
    const bad = await ws.run(['verify', '-c', ws.config, '--report', 'v']);
    expect(bad.code).toBe(1);
    const v = await reports(path.join(ws.dir, 'v'));
    expect(v.cases).toEqual(['usb verify', 'spare verify FAILED']);
    expect(v.failures['spare verify FAILED']).toMatch(/daily\/2026-01-02T020000Z: data\.tar\.gpg\.0001 does not match SHA256SUMS/);

    const pruned = await ws.run(['prune', '-c', ws.config, '--now', '2026-01-02T03:00:00Z', '--report', 'p']);
    expect(pruned.code, pruned.stderr).toBe(0);
    const p = await reports(path.join(ws.dir, 'p'));
    expect(p.cases).toEqual(['usb prune', 'spare prune']);
    expect(p.summary).toMatch(/\| prune \| usb \| passed \|/);
  });

  it('reports a config that does not load, and restore --report', async () => {
    const ws = await twoTargets();
    await fsp.writeFile(path.join(ws.src, 'Zoë.txt'), 'restore me');
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-01-01T02:00:00Z'])).code).toBe(0);

    // an unset variable: exit 2, and Jenkins still gets a failed test case saying why
    await fsp.writeFile(path.join(ws.dir, 'broken.yaml'), (await fsp.readFile(ws.config, 'utf8')).replace('path: repo', 'path: "${NO_SUCH_VARIABLE}"'));
    for (const command of [['backup'], ['restore', '--at', 'latest', '--to', 'r'], ['sync', 'up'], ['verify']]) {
      const r = await ws.run([...command, '-c', 'broken.yaml', '--report', 'bad']);
      expect(r.code, r.stderr).toBe(2);
      const bad = await reports(path.join(ws.dir, 'bad'));
      expect(bad.cases).toEqual(['run FAILED']);
      expect(bad.failures['run FAILED']).toMatch(/NO_SUCH_VARIABLE/);
      expect(bad.summary.split('\n')[0]).toMatch(new RegExp(`^### cerberus ${command.slice(0, command[0] === 'sync' ? 2 : 1).join(' ')} \`-\`: FAILED \\(exit 2, `));
    }

    const restored = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', 'r', '--report', 'rr']);
    expect(restored.code, restored.stderr).toBe(0);
    const r = await reports(path.join(ws.dir, 'rr'));
    expect(r.suite).toMatchObject({ '@_name': 'cerberus restore docs', '@_tests': '1', '@_failures': '0' });
    expect(r.cases).toEqual(['usb restore']);
    const missing = await ws.run(['restore', '-c', ws.config, '--at', '2020-01-01', '--to', 'r2', '--report', 'rr']);
    expect(missing.code).toBe(1);
    expect((await reports(path.join(ws.dir, 'rr'))).cases).toEqual(['usb restore FAILED']);
  });

  it('puts the warnings of GitHub alerts into the report', async () => {
    const ws = await workspace({ yamlExtra: '    report:\n      github: { repo: me/backups, token: "${GITHUB_TOKEN}", apiUrl: "http://127.0.0.1:9" }' });
    const env = { GITHUB_TOKEN: 'ghp_unreachable' };
    expect((await ws.run(['init', '-c', ws.config], env)).code).toBe(0);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--report', 'out'], env);
    expect(r.code, r.stderr).toBe(0);
    const out = await reports(path.join(ws.dir, 'out'));
    expect(out.json.warnings).toEqual([expect.stringMatching(/could not update the GitHub issues of job docs in me\/backups/)]);
    expect(out.summary).toMatch(/Warnings \(1\):\n\n- could not update the GitHub issues/);
  });
});
