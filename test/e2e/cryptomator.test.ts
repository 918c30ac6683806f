/**
 * Cryptomator repositories end to end, through the built CLI: bit-exact round trips of an
 * awkward tree (100 MB file included) over a local disk, WebDAV (Apache mod_dav) and S3
 * (s3rver); 30 days over WebDAV with every PUT accounted for; damaged vaults; dry runs, a lost
 * state cache and prune.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cerberus, diffTrees, snapshotTree, tempDir, workspace, workspaceAt, type RunResult, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { expectError } from '../helpers/errors.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { s3Target, START, useTargets, webdavTarget, type BackupJson, type ListJson } from '../helpers/remote.js';
import { listFiles, mutate, rng } from '../helpers/history.js';
import { buildTree, bigFile, BIG_SIZE, filesUnder, NFC_NAME, removeBigFile, vaultOwners } from '../helpers/vault-tree.js';
import { checkVaultRules } from '../formats/cryptomator/vault-rules.js';
import { createMasterkey, unlockMasterkey } from '../../src/formats/cryptomator/index.js';

const PASSWORD = 'vault pässword 42';
const DAY = 86_400_000;
const T1 = '2026-01-05T03:00:00Z';
const ID1 = '2026-01-05T030000Z';
const T2 = '2026-01-06T03:00:00Z';
const ID2 = '2026-01-06T030000Z';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fsp.rm(d, { recursive: true, force: true });
  await removeBigFile();
});

/** A workspace whose job writes a Cryptomator repository to a local `repo` (replace with useTargets). */
async function vaultWorkspace(extra = ''): Promise<Workspace> {
  const ws = await workspace({ keygen: false });
  scratch.push(ws.dir);
  ws.env.VAULT_PASSWORD = PASSWORD;
  await fsp.writeFile(
    ws.config,
    [
      'jobs:',
      '  docs:',
      '    source: { paths: [src] }',
      '    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }',
      '    targets:',
      '      - { name: usb, type: local, path: repo }',
      '    timezone: UTC',
      extra,
    ].join('\n') + '\n',
  );
  return ws;
}

/**
 * Re-wraps a repository's masterkey.cryptomator (the same two keys) with scrypt N=1024 instead
 * of Cryptomator's 32768. Every CLI run and every check here unlocks it, and at N=32768 that is
 * 0.2 s of CPU each time: the cost, not the format, would dominate the long tests below. Each
 * vault copies this file, and unlocks by the N it names, as the apps do. The round trips keep
 * N=32768 and check it among the vault rules, and the masterkey unit tests check the KDF itself.
 */
async function cheapKdf(file: string): Promise<void> {
  const keys = await unlockMasterkey(await fsp.readFile(file, 'utf8'), PASSWORD);
  await fsp.writeFile(file, (await createMasterkey(PASSWORD, { N: 1024, r: 8, keys })).text);
}

function ok(r: RunResult, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
}


const backup = (ws: Workspace, env: NodeJS.ProcessEnv, when: string, extra: string[] = []) =>
  ws.run(['backup', '-c', ws.config, '--now', when, '--json', ...extra], env, { timeoutMs: 150_000 });

async function restoreAndCompare(ws: Workspace, env: NodeJS.ProcessEnv, at: string, want: Map<string, TreeEntry>, target?: string): Promise<void> {
  const to = path.join(ws.dir, `restore-${at}-${Math.random().toString(36).slice(2)}`);
  const r = await ws.run(['restore', '-c', ws.config, '--at', at, '--to', to, ...(target ? ['--target', target] : [])], env, { timeoutMs: 150_000 });
  ok(r, `restore ${at}`);
  expect(diffTrees(want, await snapshotTree(to)), `restore ${at}`).toEqual([]);
  await fsp.rm(to, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------

describe('round trips are bit-exact', () => {
  let dav: ApacheServer;
  let s3: S3Server;
  beforeAll(async () => {
    [dav, s3] = await Promise.all([startApache(), startS3rver({ bucket: 'vaults' }), bigFile()]).then(([d, s3s]) => [d, s3s] as const);
  }, 120_000);
  afterAll(async () => {
    await dav?.stop();
    await s3?.stop();
  });

  /**
   * Two generations: the second changes one file at a chunk edge, adds one, removes one, so it
   * starts from a server-side copy. Both restore exactly; the first is untouched by the second.
   */
  async function roundTrip(
    ws: Workspace,
    env: NodeJS.ProcessEnv,
    opts: { big: boolean; restoreFirst: boolean; vaultDir?: (level: string, id: string) => string },
  ): Promise<void> {
    await buildTree(ws.src, opts.big ? { big: await bigFile() } : {});
    ok(await ws.run(['init', '-c', ws.config], env), 'init');
    const b1 = await backup(ws, env, T1);
    ok(b1, 'backup 1');
    const first = await snapshotTree(ws.src);
    if (opts.big) expect(first.get('big.bin')?.size).toBe(BIG_SIZE);

    await fsp.writeFile(path.join(ws.src, 'a/b/chunk-32769.bin'), Buffer.alloc(32769, 7));
    await fsp.writeFile(path.join(ws.src, 'a/new.txt'), 'new on day 2\n');
    await fsp.rm(path.join(ws.src, NFC_NAME));
    const b2 = await ws.run(['backup', '-c', ws.config, '--now', T2], env, { timeoutMs: 150_000 });
    ok(b2, 'backup 2');
    // the server-side copy worked (no fallback to a whole upload), and only 2 files were encrypted
    expect(b2.stderr).toMatch(/starting from a copy of quarterly\/2026-01-05T030000Z/);
    expect(b2.stderr).not.toMatch(/WARNING/);
    expect(b2.stderr).toMatch(/, 2 encrypted and uploaded \(32\.\d KiB\), 1 removed since the last vault/);
    const second = await snapshotTree(ws.src);

    await restoreAndCompare(ws, env, 'latest', second);
    // the first vault is untouched by the second, which began as its copy
    if (opts.restoreFirst) await restoreAndCompare(ws, env, ID1, first);
    if (opts.vaultDir) {
      if (opts.restoreFirst) expect(await checkVaultRules(opts.vaultDir('quarterly', ID1), PASSWORD)).toEqual([]);
      expect(await checkVaultRules(opts.vaultDir('daily', ID2), PASSWORD)).toEqual([]);
    }
    const v = await ws.run(['verify', '-c', ws.config, '--full'], env, { timeoutMs: 150_000 });
    ok(v, 'verify --full');
    expect(v.stdout).toMatch(/2 restore points checked \(full\): no problems/);
  }

  it('on a local disk', async () => {
    const ws = await vaultWorkspace();
    await roundTrip(ws, {}, { big: true, restoreFirst: true, vaultDir: (level, id) => path.join(ws.repo, level, id) });
    // the copy is by hard link, and a changed file got a new inode instead of a write into the shared one
    const owners1 = await vaultOwners(path.join(ws.repo, 'quarterly', ID1), PASSWORD);
    const owners2 = await vaultOwners(path.join(ws.repo, 'daily', ID2), PASSWORD);
    const contentOf = (m: Map<string, { path: string; role: string }>, p: string) => [...m].find(([, o]) => o.path === p && o.role === 'content')?.[0];
    const ino = (gen: string, obj: string | undefined) => fs.statSync(path.join(ws.repo, gen, obj!)).ino;
    expect(ino(`quarterly/${ID1}`, contentOf(owners1, 'big.bin'))).toBe(ino(`daily/${ID2}`, contentOf(owners2, 'big.bin')));
    expect(ino(`quarterly/${ID1}`, contentOf(owners1, 'a/b/chunk-32769.bin'))).not.toBe(ino(`daily/${ID2}`, contentOf(owners2, 'a/b/chunk-32769.bin')));
  }, 180_000);

  it('over WebDAV', async () => {
    const ws = await vaultWorkspace();
    await useTargets(ws, [webdavTarget('dav', dav)]);
    // the vault as Apache stores it is checked against the format's rules
    await roundTrip(ws, { DAV_USER: dav.username, DAV_PASSWORD: dav.password }, {
      big: true,
      restoreFirst: false,
      vaultDir: (level, id) => path.join(dav.dataDir, 'backups/docs', level, id),
    });
  }, 180_000);

  it('over S3', async () => {
    const ws = await vaultWorkspace();
    await useTargets(ws, [s3Target('s3', s3)]);
    // without the 100 MB file (local and WebDAV carry it): s3rver is slow with it and adds nothing new
    await roundTrip(ws, { S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey }, { big: false, restoreFirst: true });
  }, 180_000);
});

// ---------------------------------------------------------------------------------------------

interface StatKey {
  type: 'file' | 'dir' | 'symlink';
  key: string;
}

/**
 * What decides "unchanged" for the delta writer: the type, and for a file its content (a
 * file whose stat changed is hashed first, and not sent again when its bytes are the same).
 */
async function statTree(root: string, rel = '', out = new Map<string, StatKey>()): Promise<Map<string, StatKey>> {
  for (const name of await fsp.readdir(path.join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    const st = await fsp.lstat(path.join(root, r), { bigint: true });
    if (st.isSymbolicLink()) out.set(r, { type: 'symlink', key: await fsp.readlink(path.join(root, r)) });
    else if (st.isDirectory()) {
      out.set(r, { type: 'dir', key: '' });
      await statTree(root, r, out);
    } else out.set(r, { type: 'file', key: createHash('sha256').update(await fsp.readFile(path.join(root, r))).digest('hex') });
  }
  return out;
}

/** The generation-relative path a PUT finally lands on, or undefined for one outside a generation. */
function putTarget(line: string): { gen?: string; rel: string } {
  const url = decodeURIComponent(/^"PUT (\S+) HTTP/.exec(line)![1]!);
  const rel = url.replace(/^\/dav\/backups\/docs\//, '');
  const tmpless = rel.replace(/(^|\/)\.tmp-[0-9a-f]{12}-([^/]+)$/, '$1$2');
  const m = /^[a-z]+\/(?:\.incomplete-)?(\d{4}-\d\d-\d\dT\d{6}Z)\/(.+)$/.exec(tmpless);
  return m ? { gen: m[1]!, rel: m[2]! } : { rel: tmpless };
}

const FIXED = ['SHA256SUMS', 'VAULT.SHA256SUMS', 'info.json', 'manifest.json.c9r', 'masterkey.cryptomator', 'vault.cryptomator'];

describe('30 days over WebDAV', () => {
  let dav: ApacheServer;
  beforeAll(async () => {
    dav = await startApache();
  });
  afterAll(async () => {
    await dav?.stop();
  });

  it('each day uploads exactly what changed, and every generation restores on its own', async () => {
    const ws = await vaultWorkspace();
    // size checks only: a read-back of every object would double the requests and prove nothing here
    await useTargets(ws, [webdavTarget('dav', dav).replace('verify: readback', 'verify: size')]);
    const env = { DAV_USER: dav.username, DAV_PASSWORD: dav.password };
    ok(await ws.run(['init', '-c', ws.config], env), 'init');
    await cheapKdf(path.join(dav.dataDir, 'backups/docs/masterkey.cryptomator'));
    const r = rng(11);
    const expected = new Map<string, Map<string, TreeEntry>>();
    let prev = new Map<string, StatKey>();
    let seen = (await dav.accessLog()).length;
    const quietDays = new Set([9, 21]);
    let restoring: Promise<{ err: unknown } | undefined> = Promise.resolve(undefined);
    const settle = async (p: typeof restoring) => {
      const r = await p;
      if (r) throw r.err;
    };
    for (let day = 0; day < 30; day++) {
      const when = new Date(START + day * DAY);
      if (day === 0) {
        await fsp.mkdir(path.join(ws.src, 'letters/2026'), { recursive: true });
        await fsp.mkdir(path.join(ws.src, 'empty'));
        for (let i = 0; i < 15; i++) await fsp.writeFile(path.join(ws.src, i % 3 ? `doc ${i}.txt` : `letters/doc ${i}.txt`), r.bytes(r.int(0, 70_000)));
        await fsp.writeFile(path.join(ws.src, `letters/${'long name '.repeat(23)}.txt`), 'a shortened node\n');
        await fsp.symlink('doc 1.txt', path.join(ws.src, 'link'));
      } else if (!quietDays.has(day)) {
        await mutate(ws.src, r, day, when);
        // now and then a link retargeted: only its symlink.c9r is uploaded again
        if (day % 7 === 3) {
          await fsp.rm(path.join(ws.src, 'link'), { force: true });
          await fsp.symlink(r.pick(await listFiles(ws.src)), path.join(ws.src, 'link'));
        }
      }
      const cur = await statTree(ws.src);
      const b = await backup(ws, env, when.toISOString());
      ok(b, `day ${day} backup`);
      const id = (JSON.parse(b.stdout) as BackupJson).targets[0]!.id!;
      const level = (JSON.parse(b.stdout) as BackupJson).targets[0]!.level!;
      expected.set(id, await snapshotTree(ws.src));

      // what should have been sent
      const changedFiles = [...cur].filter(([p, s]) => s.type === 'file' && (prev.get(p)?.type !== 'file' || prev.get(p)!.key !== s.key)).map(([p]) => p);
      const newDirs = [...cur].filter(([p, s]) => s.type === 'dir' && prev.get(p)?.type !== 'dir').map(([p]) => p);
      const links = [...cur].filter(([p, s]) => s.type === 'symlink' && (prev.get(p)?.type !== 'symlink' || prev.get(p)!.key !== s.key)).map(([p]) => p);
      const newNodes = new Set([...cur].filter(([p, s]) => prev.get(p)?.type !== s.type).map(([p]) => p.normalize('NFC')));

      // what was sent
      const log = await dav.accessLog();
      const puts = log.slice(seen).filter((l) => l.startsWith('"PUT ')).map(putTarget);
      seen = log.length;
      const owners = await vaultOwners(path.join(dav.dataDir, 'backups/docs', level, id), PASSWORD);
      const inGen = puts.filter((p) => p.gen === id);
      expect(puts.filter((p) => p.gen !== id && !p.rel.startsWith('locks/')), `day ${day}: PUTs outside the generation`).toEqual([]);
      expect(inGen.filter((p) => !p.rel.startsWith('d/')).map((p) => p.rel).sort(), `day ${day}`).toEqual(FIXED);
      const byRole = new Map<string, string[]>();
      for (const p of inGen.filter((x) => x.rel.startsWith('d/'))) {
        const o = owners.get(p.rel);
        expect(o, `day ${day}: PUT of ${p.rel}, which is no object of the vault`).toBeDefined();
        byRole.set(o!.role, [...(byRole.get(o!.role) ?? []), o!.path]);
      }
      const sorted = (xs: string[] | undefined) => [...(xs ?? [])].sort();
      const nfc = (xs: string[]) => xs.map((x) => x.normalize('NFC')).sort();
      expect(sorted(byRole.get('content')), `day ${day}: file contents sent`).toEqual(nfc(changedFiles));
      expect(sorted(byRole.get('dir')), `day ${day}: dir.c9r sent`).toEqual(nfc(newDirs));
      expect(sorted(byRole.get('dirid')), `day ${day}: dirid.c9r sent`).toEqual(nfc(day === 0 ? ['', ...newDirs] : newDirs));
      expect(sorted(byRole.get('symlink')), `day ${day}: symlink.c9r sent`).toEqual(nfc(links));
      for (const p of byRole.get('name') ?? []) expect(newNodes.has(p), `day ${day}: name.c9s of ${p}, which is not new`).toBe(true);
      // every shortened node that is new got its name.c9s, nothing else
      const newShortened = [...owners.values()].filter((o) => o.role === 'name' && newNodes.has(o.path)).map((o) => o.path);
      expect(sorted(byRole.get('name'))).toEqual(newShortened.sort());
      const fixedOnly = changedFiles.length + newDirs.length + links.length === 0;
      if (quietDays.has(day)) expect(fixedOnly, `day ${day} changed nothing`).toBe(true);
      if (fixedOnly) expect(inGen.length, `day ${day}: a day without changes sends only the generation's own files`).toBe(FIXED.length);
      // the exact count, spelled out
      expect(inGen.length).toBe(FIXED.length + changedFiles.length + 2 * newDirs.length + links.length + newShortened.length + (day === 0 ? 1 : 0));
      if (day === 0) expect(newShortened.length).toBe(1);

      // the new generation opens on its own
      // the new generation opens on its own; restored while the next day is backed up (it is
      // younger than keepWithin, so that run cannot prune it)
      await settle(restoring);
      restoring = restoreAndCompare(ws, env, id, expected.get(id)!).then(() => undefined, (err: unknown) => ({ err }));
      prev = cur;
    }

    await settle(restoring);
    const list = JSON.parse((await ws.run(['list', '-c', ws.config, '--json'], env)).stdout) as ListJson;
    expect(list.points.length).toBeGreaterThan(5);
    expect(list.points.length).toBeLessThan(30); // pruned as it went
    // each was restored on its day; after all the pruning, the oldest and the newest again
    // (verify --full below decrypts every remaining one against its manifest)
    const ends = [list.points[0]!, list.points.at(-1)!];
    await Promise.all(ends.map((p) => restoreAndCompare(ws, env, p.id, expected.get(p.id)!)));
    const v = await ws.run(['verify', '-c', ws.config, '--full'], env, { timeoutMs: 150_000 });
    ok(v, 'verify --full');
    expect(v.stdout).toMatch(/restore points checked \(full\): no problems/);
    // pruned generations are gone from the server, not just from the list
    const onServer = (await fsp.readdir(path.join(dav.dataDir, 'backups/docs'), { recursive: true })).filter((p) => /^[a-z]+\/[^/]*\d{6}Z$/.test(p));
    expect(onServer.sort()).toEqual(list.points.map((p) => `${p.level}/${p.id}`).sort());
  }, 240_000);
});

// ---------------------------------------------------------------------------------------------

describe.concurrent('bad input', () => {
  /** A local repository with one generation: chunked file, siblings, a folder. Copied per case. */
  let template: Promise<{ dir: string; tree: Map<string, TreeEntry> }> | undefined;
  const getTemplate = () =>
    (template ??= (async () => {
      const ws = await vaultWorkspace();
      await fsp.mkdir(path.join(ws.src, 'docs'), { recursive: true });
      await fsp.writeFile(path.join(ws.src, 'docs/multi.bin'), Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7) & 255)));
      await fsp.writeFile(path.join(ws.src, 'docs/alpha.txt'), 'alpha\n');
      await fsp.writeFile(path.join(ws.src, 'docs/beta.txt'), 'beta, longer\n');
      await fsp.writeFile(path.join(ws.src, 'top.txt'), 'top\n');
      ok(await ws.run(['init', '-c', ws.config]), 'init');
      await cheapKdf(path.join(ws.repo, 'masterkey.cryptomator'));
      ok(await backup(ws, {}, T1), 'backup');
      return { dir: ws.dir, tree: await snapshotTree(ws.src) };
    })());

  async function copy(): Promise<{ ws: Workspace; gen: string; owners: Map<string, { path: string; role: string }> }> {
    const t = await getTemplate();
    const dir = await tempDir();
    scratch.push(dir);
    await fsp.cp(t.dir, dir, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
    const ws = workspaceAt(dir);
    ws.env.VAULT_PASSWORD = PASSWORD;
    const gen = path.join(ws.repo, 'quarterly', ID1);
    return { ws, gen, owners: await vaultOwners(gen, PASSWORD) };
  }
  const objectOf = (owners: Map<string, { path: string; role: string }>, p: string, role = 'content') =>
    [...owners].find(([, o]) => o.path === p && o.role === role)![0];

  /** restore fails with one clear line naming `names`, leaving no --to; verify --full fails naming them too. */
  async function expectDamage(ws: Workspace, restoreLine: RegExp[], verifyLine: RegExp): Promise<void> {
    const to = path.join(ws.dir, 'out');
    expectError(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]), 1, restoreLine);
    expect(fs.existsSync(to), 'a failed restore leaves no --to behind').toBe(false);
    // an existing (empty) --to stays as it was
    await fsp.mkdir(to);
    expectError(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]), 1, restoreLine);
    expect(await fsp.readdir(to)).toEqual([]);
    const v = await ws.run(['verify', '-c', ws.config, '--full']);
    expect(v.code, v.stdout + v.stderr).toBe(1);
    expect(v.stdout + v.stderr).toMatch(verifyLine);
    expect(v.stderr).not.toMatch(/^\s+at /m);
  }

  it('a wrong password: backup and restore end 1 with one line about the password', async () => {
    const { ws } = await copy();
    const bad = { VAULT_PASSWORD: 'not the password' };
    // a backup reports it as that target's failure (another target may have another masterkey)
    const b = await ws.run(['backup', '-c', ws.config, '--now', T2], bad);
    expect(b.code, b.stderr).toBe(1);
    expect(b.stderr).toBe('WARNING: target usb: wrong password for the Cryptomator vault (check the vault password (it is case-sensitive))\n');
    expect(b.stdout).toMatch(/^usb: wrong password/m);
    expect(fs.existsSync(path.join(ws.repo, 'daily', ID2))).toBe(false);
    const to = path.join(ws.dir, 'out');
    expectError(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], bad), 1, [/password/i]);
    expect(fs.existsSync(to)).toBe(false);
    const v = await ws.run(['verify', '-c', ws.config, '--full'], bad);
    expect(v.code).toBe(1);
    expect(v.stdout + v.stderr).toMatch(/password/i);
  });

  it('a flipped byte in a chunk, in a header, and two swapped chunks are found and named', async () => {
    const CHUNK = 12 + 32768 + 16;
    const HEADER = 68;
    const cases: Array<(b: Buffer) => Buffer> = [
      (b) => (b.writeUInt8(b.readUInt8(HEADER + 100) ^ 0x01, HEADER + 100), b),
      (b) => (b.writeUInt8(b.readUInt8(20) ^ 0x80, 20), b),
      (b) => Buffer.concat([b.subarray(0, HEADER), b.subarray(HEADER + CHUNK, HEADER + 2 * CHUNK), b.subarray(HEADER, HEADER + CHUNK), b.subarray(HEADER + 2 * CHUNK)]),
    ];
    await Promise.all(
      cases.map(async (edit) => {
        const { ws, gen, owners } = await copy();
        const file = path.join(gen, objectOf(owners, 'docs/multi.bin'));
        const before = await fsp.readFile(file);
        const after = edit(Buffer.from(before));
        expect(after.length).toBe(before.length);
        expect(after.equals(before)).toBe(false);
        await fsp.writeFile(file, after);
        await expectDamage(ws, [/docs\/multi\.bin/], /docs\/multi\.bin/);
        // the quick check (no password) sees it too
        const q = await ws.run(['verify', '-c', ws.config]);
        expect(q.code).toBe(1);
      }),
    );
  });

  it('swapped names of two files, and a changed character in a name', async () => {
    // swapped: both names decrypt, but each holds the other's bytes
    {
      const { ws, gen, owners } = await copy();
      const a = path.join(gen, objectOf(owners, 'docs/alpha.txt'));
      const b = path.join(gen, objectOf(owners, 'docs/beta.txt'));
      await fsp.rename(a, `${a}.x`);
      await fsp.rename(b, a);
      await fsp.rename(`${a}.x`, b);
      await expectDamage(ws, [/docs\/(alpha|beta)\.txt/], /docs\/(alpha|beta)\.txt/);
    }
    // one base64 character changed: the name no longer decrypts
    {
      const { ws, gen, owners } = await copy();
      const obj = objectOf(owners, 'top.txt');
      const base = path.basename(obj);
      const flipped = (base[0] === 'A' ? 'B' : 'A') + base.slice(1);
      await fsp.rename(path.join(gen, obj), path.join(gen, path.dirname(obj), flipped));
      await expectDamage(ws, [/top\.txt|damaged|vault/i], new RegExp(flipped.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    }
  });

  it('a job and a repository of different kinds: exit 2, saying so', async () => {
    const ws = await workspace({ volumeSize: '64KiB' });
    scratch.push(ws.dir);
    ws.env.VAULT_PASSWORD = PASSWORD;
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    ok(await ws.run(['init', '-c', ws.config]), 'init openpgp');
    const openpgpYaml = await fsp.readFile(ws.config, 'utf8');
    const vaultYaml = openpgpYaml.replace(/encryption: \{[^}]*\}/, 'encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }');
    await fsp.writeFile(path.join(ws.dir, 'vault.yaml'), vaultYaml.replace('path: repo', 'path: vrepo'));
    ok(await ws.run(['init', '-c', 'vault.yaml']), 'init cryptomator');
    // a cryptomator job on the OpenPGP repository
    await fsp.writeFile(path.join(ws.dir, 'cross1.yaml'), vaultYaml);
    // an OpenPGP job on the Cryptomator repository
    await fsp.writeFile(path.join(ws.dir, 'cross2.yaml'), openpgpYaml.replace('path: repo', 'path: vrepo'));
    for (const c of ['cross1.yaml', 'cross2.yaml']) {
      expectError(await ws.run(['backup', '-c', c, '--now', T1]), 2, [/cryptomator/i, /openpgp/i]);
      expectError(await ws.run(['restore', '-c', c, '--at', 'latest', '--to', path.join(ws.dir, 'out')]), 2, [/cryptomator/i, /openpgp/i]);
      expect(fs.existsSync(path.join(ws.dir, 'out'))).toBe(false);
    }
    expect(await filesUnder(path.join(ws.dir, 'vrepo'), 'quarterly')).toEqual([]);
  });

  it('two names that differ only in normalization: one is left out with a warning (exit 3)', async () => {
    const ws = await vaultWorkspace();
    await fsp.writeFile(path.join(ws.src, 'caf\u00e9.txt'), 'nfc');
    await fsp.writeFile(path.join(ws.src, 'cafe\u0301.txt'), 'nfd');
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    const b = await ws.run(['backup', '-c', ws.config, '--now', T1]);
    expect(b.code, b.stderr).toBe(3);
    expect(b.stderr).toMatch(/left out .*caf.*Unicode normalization/);
    const to = path.join(ws.dir, 'out');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]), 'restore');
    expect((await fsp.readdir(to)).length).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

describe.concurrent('dry runs, a lost state cache, prune', () => {
  /** Every file of the repository and the state cache, with size and mtime. */
  const fingerprint = async (ws: Workspace) => {
    const out: string[] = [];
    for (const root of [ws.repo, ws.state]) {
      for (const f of await filesUnder(root)) {
        const st = await fsp.stat(path.join(root, f));
        out.push(`${root}/${f} ${st.size} ${st.mtimeMs}`);
      }
    }
    return out;
  };

  it('a dry run writes nothing, first or later', async () => {
    const ws = await vaultWorkspace();
    await buildTree(ws.src);
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    let before = await fingerprint(ws);
    ok(await ws.run(['backup', '-c', ws.config, '--now', T1, '--dry-run']), 'dry run 1');
    expect(await fingerprint(ws)).toEqual(before);
    ok(await backup(ws, {}, T1), 'backup');
    await fsp.writeFile(path.join(ws.src, 'a/small.txt'), 'changed');
    await fsp.rm(path.join(ws.src, 'empty.txt'));
    before = await fingerprint(ws);
    const d = await ws.run(['backup', '-c', ws.config, '--now', T2, '--dry-run']);
    ok(d, 'dry run 2');
    expect(d.stderr).toMatch(/\[dry run\]/);
    expect(await fingerprint(ws)).toEqual(before);
  });

  it('without the state cache the next vault is uploaded whole, and restores', async () => {
    const ws = await vaultWorkspace();
    await buildTree(ws.src);
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    ok(await backup(ws, {}, T1), 'backup 1');
    await fsp.rm(ws.state, { recursive: true, force: true });
    await fsp.writeFile(path.join(ws.src, 'a/small.txt'), 'changed');
    const b = await ws.run(['backup', '-c', ws.config, '--now', T2]);
    ok(b, 'backup 2');
    expect(b.stderr).toMatch(/state cache does not know .* uploaded whole/);
    const info = JSON.parse(await fsp.readFile(path.join(ws.repo, 'daily', ID2, 'info.json'), 'utf8')) as { stats: { files: number; storedFiles: number } };
    expect(info.stats.storedFiles).toBe(info.stats.files);
    // nothing shared with the first vault: every object is its own file
    for (const f of await filesUnder(path.join(ws.repo, 'daily', ID2, 'd'))) expect(fs.statSync(path.join(ws.repo, 'daily', ID2, 'd', f)).nlink).toBe(1);
    await restoreAndCompare(ws, {}, 'latest', await snapshotTree(ws.src));
    expect(await checkVaultRules(path.join(ws.repo, 'daily', ID2), PASSWORD)).toEqual([]);
    // and the next run is incremental again
    const b3 = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-07T03:00:00Z']);
    ok(b3, 'backup 3');
    expect(b3.stderr).toMatch(/, 0 encrypted and uploaded/);
  });

  it('an unreadable file and folder keep their last backed-up state, ends with 3 and prunes nothing', async () => {
    const ws = await vaultWorkspace('    retention: { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0s }');
    await fsp.writeFile(path.join(ws.src, 'secret.txt'), 'version 1');
    await fsp.writeFile(path.join(ws.src, 'open.txt'), 'open');
    await fsp.mkdir(path.join(ws.src, 'private/inner'), { recursive: true });
    await fsp.writeFile(path.join(ws.src, 'private/inner/diary.txt'), 'dear diary');
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    await cheapKdf(path.join(ws.repo, 'masterkey.cryptomator'));
    ok(await backup(ws, {}, T1), 'backup 1');
    ok(await backup(ws, {}, T2), 'backup 2');
    await fsp.writeFile(path.join(ws.src, 'secret.txt'), 'version 2');
    await fsp.writeFile(path.join(ws.src, 'open.txt'), 'open, changed');
    await fsp.chmod(path.join(ws.src, 'secret.txt'), 0o000);
    await fsp.chmod(path.join(ws.src, 'private'), 0o000);
    // root reads anything: run the backup as nobody (who owns everything but those read bits)
    const asRoot = process.getuid?.() === 0;
    if (asRoot) execFileSync('chown', ['-R', 'nobody:nogroup', ws.dir]);
    const r = await cerberus(['backup', '-c', ws.config, '--now', '2026-01-07T03:00:00Z', '--json'], {
      cwd: ws.dir,
      env: { HOME: ws.dir, ...ws.env },
      ...(asRoot ? { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] } : {}),
    });
    if (asRoot) execFileSync('chown', ['-R', 'root:root', ws.dir]);
    await fsp.chmod(path.join(ws.src, 'private'), 0o755);
    await fsp.chmod(path.join(ws.src, 'secret.txt'), 0o644);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot read .*secret\.txt: EACCES; its last backed-up version is kept/);
    expect(r.stderr).toMatch(/cannot read .*private: EACCES; its last backed-up state is kept/);
    expect(r.stderr).toMatch(/nothing was pruned/);
    // what could not be read counts as it was: no guard mistakes it for a shrink
    const json = JSON.parse(r.stdout) as { targets: Array<{ suspicious: string[]; stats: Record<string, number> }> };
    expect(json.targets[0]!.suspicious).toEqual([]);
    expect(json.targets[0]!.stats).toMatchObject({ files: 3, dirs: 2, bytes: 'version 1'.length + 'open, changed'.length + 'dear diary'.length });
    const points = (JSON.parse((await ws.run(['list', '-c', ws.config, '--json'])).stdout) as ListJson).points;
    expect(points).toHaveLength(3);
    // the newest vault holds the last good secret and diary beside what was read, in its manifest too
    const to = path.join(ws.dir, 'out');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]), 'restore');
    expect(await fsp.readFile(path.join(to, 'secret.txt'), 'utf8')).toBe('version 1');
    expect(await fsp.readFile(path.join(to, 'open.txt'), 'utf8')).toBe('open, changed');
    expect(await fsp.readFile(path.join(to, 'private/inner/diary.txt'), 'utf8')).toBe('dear diary');
    ok(await ws.run(['verify', '-c', ws.config, '--full']), 'verify --full');
  });

  it('prune keeps every kept point restorable', async () => {
    const ws = await vaultWorkspace('    retention: { daily: 2, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0d }');
    const r = rng(3);
    for (let i = 0; i < 8; i++) await fsp.writeFile(path.join(ws.src, `f${i}.txt`), r.bytes(r.int(0, 40_000)));
    ok(await ws.run(['init', '-c', ws.config]), 'init');
    await cheapKdf(path.join(ws.repo, 'masterkey.cryptomator'));
    const expected = new Map<string, Map<string, TreeEntry>>();
    for (let day = 0; day < 10; day++) {
      const when = new Date(Date.UTC(2026, 0, 5 + day, 3));
      if (day > 0) {
        await fsp.writeFile(path.join(ws.src, `f${day % 8}.txt`), r.bytes(r.int(0, 40_000)));
        await fsp.utimes(path.join(ws.src, `f${day % 8}.txt`), when, when);
      }
      const b = await backup(ws, {}, when.toISOString());
      ok(b, `day ${day}`);
      const json = JSON.parse(b.stdout) as BackupJson;
      expected.set(json.targets[0]!.id!, await snapshotTree(ws.src));
    }
    ok(await ws.run(['prune', '-c', ws.config]), 'prune');
    const list = JSON.parse((await ws.run(['list', '-c', ws.config, '--json'])).stdout) as ListJson;
    expect(list.points.length).toBeGreaterThanOrEqual(3);
    expect(list.points.length).toBeLessThan(10);
    const onDisk = (await fsp.readdir(ws.repo, { recursive: true })).filter((p) => /^[a-z]+\/\d{4}-\d\d-\d\dT\d{6}Z$/.test(p));
    expect(onDisk.sort()).toEqual(list.points.map((p) => `${p.level}/${p.id}`).sort());
    for (const p of list.points) await restoreAndCompare(ws, {}, p.id, expected.get(p.id)!);
    ok(await ws.run(['verify', '-c', ws.config, '--full']), 'verify --full');
  });
});
