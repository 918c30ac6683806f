import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CryptomatorKeys } from '../../src/formats/cryptomator/index.js';
import { MemoryReporter } from '../../src/report/log.js';
import { LocalBackend } from '../../src/storage/index.js';
import { applyToVault } from '../../src/vault/apply.js';
import { parseVaultState, stateParts, vaultObjects, type VaultState } from '../../src/vault/state.js';
import { tempDir } from '../helpers/cli.js';

/**
 * The vault state records the hash of every object it wrote, and VAULT.SHA256SUMS is made
 * from it: what it derives must be exactly the files under the vault's `d/`, through adds,
 * changes, type changes, long names and deletes. Older caches (format 1) read into the same.
 */

let dir: string;
const keys: CryptomatorKeys = { encKey: randomBytes(32), macKey: randomBytes(32) };
beforeEach(async () => {
  dir = await tempDir('cerberus-vault-state-');
});
afterEach(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

const long = (c: string, n: number) => c.repeat(n);

async function apply(previous: VaultState | undefined): Promise<VaultState> {
  const r = await applyToVault({
    backend: new LocalBackend(path.join(dir, 'repo')),
    root: 'vault',
    keys,
    previous,
    source: { paths: [path.join(dir, 'src')], exclude: [] },
    oldHashes: new Map(),
    dryRun: false,
    reporter: new MemoryReporter(),
    parallel: 4,
    holder: 'g',
  });
  expect(r.problems).toEqual([]);
  return r.state;
}

/** Every file under the vault's d/, with its sha256: what the sums must list. */
function objectsOnDisk(): Array<[string, string]> {
  const root = path.join(dir, 'repo', 'vault');
  const out: Array<[string, string]> = [];
  for (const e of fs.readdirSync(path.join(root, 'd'), { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const abs = path.join(e.parentPath, e.name);
    out.push([path.relative(root, abs), createHash('sha256').update(fs.readFileSync(abs)).digest('hex')]);
  }
  return out.sort(([a], [b]) => (a < b ? -1 : 1));
}

const derived = (s: VaultState) => [...vaultObjects(keys, s)].sort(([a], [b]) => (a < b ? -1 : 1));

async function write(rel: string, data: string): Promise<void> {
  await fsp.mkdir(path.dirname(path.join(dir, 'src', rel)), { recursive: true });
  await fsp.writeFile(path.join(dir, 'src', rel), data);
}

describe('the vault state', () => {
  it('knows every object of the vault, through changes, type changes, long names and deletes', async () => {
    await write('a.txt', 'a');
    await write(`${long('f', 230)}.txt`, 'long file');
    await write(`${long('d', 240)}/inner.txt`, 'in a long folder');
    await write('sub/deep/b.txt', 'b');
    await write('becomes-dir', 'a file first');
    await fsp.mkdir(path.join(dir, 'src/empty'));
    await fsp.symlink('a.txt', path.join(dir, 'src/link'));
    await fsp.symlink('a.txt', path.join(dir, 'src', long('l', 225)));
    const first = await apply(undefined);
    expect(derived(first)).toEqual(objectsOnDisk());

    await write(`${long('f', 230)}.txt`, 'long file, changed');
    await fsp.rm(path.join(dir, 'src/becomes-dir'));
    await write('becomes-dir/x.txt', 'now a folder');
    await fsp.rm(path.join(dir, 'src/sub'), { recursive: true });
    await fsp.rm(path.join(dir, 'src/link'));
    await fsp.symlink('elsewhere', path.join(dir, 'src/link'));
    await fsp.rm(path.join(dir, 'src', long('l', 225)));
    await fsp.symlink('elsewhere', path.join(dir, 'src', long('l', 225)));
    const second = await apply(first);
    expect(derived(second)).toEqual(objectsOnDisk());
  });

  it('reads back what it wrote, a line per entry, names with newlines and other scripts included', async () => {
    await write('a.txt', 'a');
    await write('Grüße\nzwei/日本.txt', 'b');
    const state = await apply(undefined);
    const bytes = Buffer.concat([...stateParts(state)]);
    expect(bytes.toString('utf8').split('\n').length).toBeGreaterThan(Object.keys(state.entries).length);
    expect(parseVaultState(bytes)).toEqual(state);
    // a damaged cache is a missing cache, never half of one
    const text = bytes.toString('utf8');
    expect(parseVaultState(Buffer.from(text.replace('"ct":"', '"ct":"x')))).toBeUndefined();
    expect(parseVaultState(bytes.subarray(0, bytes.length - 3))).toBeUndefined();
  });

  it('reads an older cache (one line, with an objects map) into the same records, given the keys', async () => {
    await write('a.txt', 'a');
    await write(`${long('f', 230)}.txt`, 'long');
    await write('sub/b.txt', 'b');
    await fsp.symlink('a.txt', path.join(dir, 'src/link'));
    const state = await apply(undefined);
    // what format 1 held: records without hashes, and every object of the vault by path
    const entries = Object.fromEntries(Object.entries(state.entries).map(([p, { ct: _ct, ns: _ns, ...r }]) => [p, r]));
    const old = Buffer.from(JSON.stringify({ format: 1, entries, objects: Object.fromEntries(objectsOnDisk()) }));
    expect(parseVaultState(old, keys)).toEqual(state);
    // without the keys, or with an object missing, it cannot be read: the next vault is uploaded whole
    expect(parseVaultState(old)).toBeUndefined();
    const lacking = Object.fromEntries(objectsOnDisk().filter(([p]) => !p.endsWith('name.c9s')));
    expect(parseVaultState(Buffer.from(JSON.stringify({ format: 1, entries, objects: lacking })), keys)).toBeUndefined();
    // a mirror's older cache had no objects, and needs none
    expect(parseVaultState(Buffer.from(JSON.stringify({ format: 1, entries })))).toEqual({ entries });
  });
});
