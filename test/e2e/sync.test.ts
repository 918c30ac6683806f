import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { s3Target, useTargets, webdavTarget } from '../helpers/remote.js';
import { checkVaultRules } from '../formats/cryptomator/vault-rules.js';

/**
 * Mirror mode through the built CLI: `sync up` / `sync down` keep one Cryptomator vault and
 * a folder equal, `--dry-run` says exactly what the real run does, mass deletions need
 * --yes, and `upload` wipes the local copy only after every file decrypts to the source.
 */

const PASSWORD = 'mirror pässword';
const ENV = { VAULT_PASSWORD: PASSWORD };

async function mirrorWorkspace(extra = ''): Promise<Workspace> {
  const ws = await workspace({ keygen: false, yamlExtra: extra });
  const text = await fsp.readFile(ws.config, 'utf8');
  await fsp.writeFile(ws.config, text.replace(/encryption: \{[^}]*\}/, 'encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }'));
  const r = await ws.run(['init', '-c', ws.config], ENV);
  expect(r.code, r.stderr).toBe(0);
  return ws;
}

async function write(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [p, data] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await fsp.writeFile(path.join(root, p), data);
  }
}

/**
 * Content only: a mirror keeps bytes, types and link targets, not times or modes; and names
 * come back in NFC, as a Cryptomator vault stores them.
 */
function content(tree: Map<string, TreeEntry>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [p, e] of tree) out[p.normalize('NFC')] = e.type === 'file' ? `file ${e.size} ${e.sha}` : e.type === 'symlink' ? `link ${e.target}` : 'dir';
  return out;
}

/** The changes a sync printed, without the "would " of a dry run. */
function changeLines(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => /^(would )?(add|change|delete) /.test(l))
    .map((l) => l.replace(/^would /, '').replace(/ +/g, ' '))
    .sort();
}

async function syncDownFresh(ws: Workspace, env: NodeJS.ProcessEnv = ENV): Promise<Record<string, string>> {
  const to = path.join(ws.dir, `down-${Math.random().toString(36).slice(2)}`);
  const r = await ws.run(['sync', 'down', '-c', ws.config, '--to', to], env);
  expect(r.code, r.stderr).toBe(0);
  return content(await snapshotTree(to));
}

const TREE = {
  'a.txt': 'alpha\n',
  'empty.txt': '',
  'sub/b.bin': Buffer.alloc(70_000, 7),
  'sub/deep/c.txt': 'c',
  [`${'l'.repeat(230)}.txt`]: 'long name',
  'Cafe\u0301/no\u0308te.txt': 'nfd',
};

describe('sync up and down on a local target', () => {
  it('mirrors adds, changes and deletes, and --dry-run lists exactly what the real run then does', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    await fsp.mkdir(path.join(ws.src, 'empty dir'));
    await fsp.symlink('a.txt', path.join(ws.src, 'link'));

    const dry = await ws.run(['sync', 'up', '-c', ws.config, '--dry-run'], ENV);
    expect(dry.code, dry.stderr).toBe(0);
    expect(await fsp.stat(path.join(ws.repo, 'mirror')).catch(() => undefined)).toBeUndefined();
    const real = await ws.run(['sync', 'up', '-c', ws.config], ENV);
    expect(real.code, real.stderr).toBe(0);
    expect(changeLines(real.stdout)).toEqual(changeLines(dry.stdout));
    expect(changeLines(real.stdout)).toContain('add sub/deep/c.txt');
    expect(await checkVaultRules(path.join(ws.repo, 'mirror'), PASSWORD)).toEqual([]);
    expect(await syncDownFresh(ws)).toEqual(content(await snapshotTree(ws.src)));

    // a day of changes: add, change, delete, rename, a folder gone, a type change
    await write(ws.src, { 'new.txt': 'new', 'a.txt': 'alpha, edited\n' });
    await fsp.rm(path.join(ws.src, 'sub/deep'), { recursive: true });
    await fsp.rename(path.join(ws.src, 'empty.txt'), path.join(ws.src, 'renamed.txt'));
    await fsp.rm(path.join(ws.src, 'link'));
    await fsp.mkdir(path.join(ws.src, 'link'));
    // two of six files go (a third): more than guards.maxShrink, hence --yes
    const dry2 = await ws.run(['sync', 'up', '-c', ws.config, '--dry-run', '--yes'], ENV);
    const real2 = await ws.run(['sync', 'up', '-c', ws.config, '--yes'], ENV);
    expect(real2.code, real2.stderr).toBe(0);
    expect(changeLines(real2.stdout)).toEqual(changeLines(dry2.stdout));
    expect(changeLines(real2.stdout)).toEqual(
      ['add new.txt', 'add renamed.txt', 'change a.txt', 'change link', 'delete empty.txt', 'delete sub/deep', 'delete sub/deep/c.txt'].sort(),
    );
    expect(await checkVaultRules(path.join(ws.repo, 'mirror'), PASSWORD)).toEqual([]);
    expect(await syncDownFresh(ws)).toEqual(content(await snapshotTree(ws.src)));
  });

  it('a no-change sync up writes nothing to the target', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    expect((await ws.run(['sync', 'up', '-c', ws.config], ENV)).code).toBe(0);
    const before = await snapshotTree(path.join(ws.repo, 'mirror'));
    const r = await ws.run(['sync', 'up', '-c', ws.config], ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(changeLines(r.stdout)).toEqual([]);
    expect(await snapshotTree(path.join(ws.repo, 'mirror'))).toEqual(before);
  });

  it('finds files changed in the vault behind its back (by the apps) and puts them right', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    expect((await ws.run(['sync', 'up', '-c', ws.config], ENV)).code).toBe(0);
    // another device removed a file from the vault: the next sync up uploads it again
    const down = path.join(ws.dir, 'other-device');
    expect((await ws.run(['sync', 'down', '-c', ws.config, '--to', down], ENV)).code).toBe(0);
    // a plain file node (not a folder's or link's node, whose removal would hide a subtree)
    let victim = '';
    for (const f of await listVaultFiles(path.join(ws.repo, 'mirror', 'd'))) {
      if (f.endsWith('.c9r') && !/(^|\/)(dir|dirid)\.c9r$/.test(f) && (await fsp.stat(f)).isFile()) victim = f;
    }
    expect(victim).not.toBe('');
    await fsp.rm(victim);
    const r = await ws.run(['sync', 'up', '-c', ws.config], ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(changeLines(r.stdout).length).toBe(1);
    expect(await syncDownFresh(ws)).toEqual(content(await snapshotTree(ws.src)));
  });

  it('refuses to delete more than guards.maxShrink of the mirror without --yes, and nothing when the source is gone', async () => {
    const ws = await mirrorWorkspace();
    const files: Record<string, string> = {};
    for (let i = 0; i < 10; i++) files[`doc-${i}.txt`] = `doc ${i}`;
    await write(ws.src, files);
    expect((await ws.run(['sync', 'up', '-c', ws.config], ENV)).code).toBe(0);
    const full = content(await snapshotTree(ws.src));
    for (let i = 0; i < 5; i++) await fsp.rm(path.join(ws.src, `doc-${i}.txt`));

    const dry = await ws.run(['sync', 'up', '-c', ws.config, '--dry-run'], ENV);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/would delete 5 of 10 files \(50 %\).*needs --yes/);
    const refused = await ws.run(['sync', 'up', '-c', ws.config], ENV);
    expect(refused.code).toBe(3);
    expect(refused.stderr.trim().split('\n').at(-1)).toMatch(/^cerberus: error: .*would delete 5 of 10 files .*add --yes/);
    expect(await syncDownFresh(ws)).toEqual(full);

    const yes = await ws.run(['sync', 'up', '-c', ws.config, '--yes'], ENV);
    expect(yes.code, yes.stderr).toBe(0);
    expect(await syncDownFresh(ws)).toEqual(content(await snapshotTree(ws.src)));

    // an unmounted source is never a reason to empty the mirror, --yes or not
    const kept = content(await snapshotTree(ws.src));
    await fsp.rename(ws.src, `${ws.src}.away`);
    const gone = await ws.run(['sync', 'up', '-c', ws.config, '--yes'], ENV);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/is missing, so sync up deletes nothing/);
    expect(await syncDownFresh(ws)).toEqual(kept);
  });

  it('sync down makes --to equal to the vault, deletes what it must, and is guarded the same way', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    expect((await ws.run(['sync', 'up', '-c', ws.config], ENV)).code).toBe(0);
    const to = path.join(ws.dir, 'local');
    expect((await ws.run(['sync', 'down', '-c', ws.config, '--to', to], ENV)).code).toBe(0);

    await write(to, { 'stray.txt': 'not in the vault', 'a.txt': 'edited locally' });
    const dry = await ws.run(['sync', 'down', '-c', ws.config, '--to', to, '--dry-run'], ENV);
    expect(changeLines(dry.stdout)).toEqual(['change a.txt', 'delete stray.txt']);
    expect(await fsp.readFile(path.join(to, 'stray.txt'), 'utf8')).toBe('not in the vault');
    const real = await ws.run(['sync', 'down', '-c', ws.config, '--to', to], ENV);
    expect(changeLines(real.stdout)).toEqual(changeLines(dry.stdout));
    expect(content(await snapshotTree(to))).toEqual(content(await snapshotTree(ws.src)));

    // a folder holding mostly other things: sync down would wipe them, so it asks first
    const other = path.join(ws.dir, 'other');
    const many: Record<string, string> = {};
    for (let i = 0; i < 20; i++) many[`mine-${i}.txt`] = `${i}`;
    await write(other, many);
    const refused = await ws.run(['sync', 'down', '-c', ws.config, '--to', other], ENV);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/would delete 20 of 20 files/);
    expect(Object.keys(content(await snapshotTree(other)))).toHaveLength(20);
    const yes = await ws.run(['sync', 'down', '-c', ws.config, '--to', other, '--yes'], ENV);
    expect(yes.code, yes.stderr).toBe(0);
    expect(content(await snapshotTree(other))).toEqual(content(await snapshotTree(ws.src)));
  });

  it('a wrong password or an OpenPGP job is a clear error', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    const bad = await ws.run(['sync', 'up', '-c', ws.config], { VAULT_PASSWORD: 'wrong' });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^cerberus: error: target usb: wrong password/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const down = await ws.run(['sync', 'down', '-c', ws.config, '--to', path.join(ws.dir, 'x')], ENV);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/holds no mirror vault yet \(run `cerberus sync up` first\)/);
  });
});

async function listVaultFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !e.name.endsWith('.c9r') && !e.name.endsWith('.c9s')) out.push(...(await listVaultFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('upload and download', () => {
  it('upload refuses to wipe anything when a file of the mirror does not decrypt to the source', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    expect((await ws.run(['sync', 'up', '-c', ws.config], ENV)).code).toBe(0);
    // damage a file the next sync up will not touch (unchanged): only verification can see it
    let target = '';
    for (const f of await listVaultFiles(path.join(ws.repo, 'mirror', 'd'))) {
      if (f.endsWith('.c9r') && !/(dir|dirid)\.c9r$/.test(f) && (await fsp.stat(f)).isFile() && (await fsp.stat(f)).size > 100) target = f;
    }
    expect(target).not.toBe('');
    const bytes = await fsp.readFile(target);
    bytes[bytes.length - 5]! ^= 0x01;
    await fsp.writeFile(target, bytes);
    const config = await fsp.readFile(ws.config, 'utf8');

    const r = await ws.run(['upload', '-c', ws.config], ENV);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not match the source .*nothing was removed/);
    expect(content(await snapshotTree(ws.src))).toEqual(content(await snapshotTreeOf(TREE)));
    expect(await fsp.readFile(ws.config, 'utf8')).toBe(config);
    expect((await fsp.readdir(ws.state)).length).toBeGreaterThan(0);
  });

  it('upload verifies, then removes source, state and config; download brings the files back', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, TREE);
    const before = content(await snapshotTree(ws.src));
    const config = await fsp.readFile(ws.config, 'utf8');
    const r = await ws.run(['upload', '-c', ws.config], ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/verified 6 files on usb/);
    expect(r.stdout).toContain(`removed ${ws.src}`);
    expect(r.stdout).toContain(`removed ${ws.config}`);
    for (const p of [ws.src, ws.config, path.join(ws.state, 'docs')]) expect(await fsp.stat(p).catch(() => undefined)).toBeUndefined();

    // the new machine: the same config, and the password
    await fsp.writeFile(ws.config, config);
    const d = await ws.run(['download', '-c', ws.config], ENV);
    expect(d.code, d.stderr).toBe(0);
    expect(content(await snapshotTree(ws.src))).toEqual(before);
  });

  it('upload takes only its job out of a config that holds others', async () => {
    const ws = await mirrorWorkspace();
    await write(ws.src, { 'x.txt': 'x' });
    const text = await fsp.readFile(ws.config, 'utf8');
    await fsp.writeFile(ws.config, text + '  # another job stays\n  other:\n    source: { paths: [elsewhere] }\n    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }\n    targets: [ { name: usb2, type: local, path: repo2 } ]\n');
    const r = await ws.run(['upload', '-c', ws.config, '--job', 'docs'], ENV);
    expect(r.code, r.stderr).toBe(0);
    const left = await fsp.readFile(ws.config, 'utf8');
    expect(left).not.toMatch(/^ {2}docs:/m);
    expect(left).toMatch(/^ {2}other:/m);
    expect(left).toContain('# another job stays');
  });
});

async function snapshotTreeOf(files: Record<string, string | Buffer>): Promise<Map<string, TreeEntry>> {
  const ws = await workspace({ keygen: false });
  await write(ws.src, files);
  return snapshotTree(ws.src);
}

describe('mirror on WebDAV and S3', () => {
  let dav: ApacheServer;
  let s3: S3Server;
  beforeAll(async () => {
    [dav, s3] = await Promise.all([startApache({ username: 'u', password: 'p' }), startS3rver()]);
  });
  afterAll(async () => {
    await Promise.all([dav?.stop(), s3?.stop()]);
  });

  for (const kind of ['webdav', 's3'] as const) {
    it(`sync up, change, sync up, sync down over ${kind}`, async () => {
      const ws = await mirrorWorkspace();
      const env = { ...ENV, DAV_USER: 'u', DAV_PASSWORD: 'p', S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey };
      await useTargets(ws, [kind === 'webdav' ? webdavTarget('remote', dav) : s3Target('remote', s3)]);
      expect((await ws.run(['init', '-c', ws.config], env)).code).toBe(0);
      await write(ws.src, TREE);
      await fsp.symlink('../a.txt', path.join(ws.src, 'sub', 'up'));
      let r = await ws.run(['sync', 'up', '-c', ws.config], env);
      expect(r.code, r.stderr).toBe(0);
      await write(ws.src, { 'a.txt': 'changed', 'sub/new/x.txt': 'x' });
      await fsp.rm(path.join(ws.src, 'sub/deep'), { recursive: true });
      r = await ws.run(['sync', 'up', '-c', ws.config], env);
      expect(r.code, r.stderr).toBe(0);
      expect(changeLines(r.stdout)).toEqual(['add sub/new', 'add sub/new/x.txt', 'change a.txt', 'delete sub/deep', 'delete sub/deep/c.txt']);
      expect(await syncDownFresh(ws, env)).toEqual(content(await snapshotTree(ws.src)));
    });
  }
});
