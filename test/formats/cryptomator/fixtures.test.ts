import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../../src/errors.js';
import { openVault, walkVault, type VaultEntry } from '../../../src/formats/cryptomator/vault-reader.js';
import { LocalBackend } from '../../../src/storage/local.js';

const FIX = '/work/shared/fixtures/cryptomator';

const FIXTURES = [
  { dir: 'yombar_siv_gcm_2024', password: 'password', combo: 'SIV_GCM' },
  { dir: 'yombar_siv_gcm_2025_weak_scrypt', password: 'password', combo: 'SIV_GCM' },
  { dir: 'yombar_siv_ctrmac_2024', password: 'password', combo: 'SIV_CTRMAC' },
  { dir: 'mangocubes_siv_ctrmac_vault1', password: 'qq11@@11', combo: 'SIV_CTRMAC' },
  { dir: 'mangocubes_siv_ctrmac_vault2', password: '12341234', combo: 'SIV_CTRMAC' },
] as const;

type Node = { type: 'dir' } | { type: 'file'; data: Buffer } | { type: 'symlink'; target: string };

function expectedTree(root: string, prefix = '', out = new Map<string, Node>()): Map<string, Node> {
  for (const name of readdirSync(join(root, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = lstatSync(join(root, rel));
    if (st.isSymbolicLink()) out.set(rel, { type: 'symlink', target: readlinkSync(join(root, rel)) });
    else if (st.isDirectory()) {
      out.set(rel, { type: 'dir' });
      expectedTree(root, rel, out);
    } else out.set(rel, { type: 'file', data: readFileSync(join(root, rel)) });
  }
  return out;
}

async function vaultTree(dir: string, password: string): Promise<{ tree: Map<string, Node>; entries: VaultEntry[] }> {
  const vault = await openVault(new LocalBackend(join(FIX, dir)), password, 'vault');
  const tree = new Map<string, Node>();
  const entries: VaultEntry[] = [];
  for await (const e of walkVault(vault)) {
    entries.push(e);
    if (e.type === 'file') {
      const data = await buffer(await e.open());
      expect(data.length, `${e.path} size`).toBe(e.size);
      expect(e.content, e.path).toBe(e.node.endsWith('.c9s') ? `${e.node}/contents.c9r` : e.node);
      tree.set(e.path, { type: 'file', data });
    } else if (e.type === 'symlink') tree.set(e.path, { type: 'symlink', target: e.target });
    else tree.set(e.path, { type: 'dir' });
  }
  return { tree, entries };
}

/**
 * The fixtures' expected/ trees were copied in a way that (a) turned symlinks into regular
 * files holding the link target and (b) dropped empty directories. Both are normalised here,
 * explicitly, and nothing else is.
 */
function compare(actual: Map<string, Node>, expected: Map<string, Node>): void {
  for (const [path, node] of actual) {
    const exp = expected.get(path);
    if (exp === undefined) {
      const isEmptyDir = node.type === 'dir' && ![...actual.keys()].some((p) => p.startsWith(`${path}/`));
      expect(isEmptyDir, `unexpected vault entry ${path}`).toBe(true);
      continue;
    }
    if (node.type === 'symlink') {
      if (exp.type === 'symlink') expect(node.target, path).toBe(exp.target);
      else {
        expect(exp.type, path).toBe('file');
        expect(node.target, path).toBe((exp as { data: Buffer }).data.toString('utf8'));
      }
      continue;
    }
    expect(node.type, path).toBe(exp.type);
    if (node.type === 'file' && exp.type === 'file') expect(node.data.equals(exp.data), `${path} bytes`).toBe(true);
  }
  for (const path of expected.keys()) expect(actual.has(path), `missing ${path}`).toBe(true);
}

describe.each(FIXTURES)('fixture $dir', ({ dir, password, combo }) => {
  it(`decrypts to expected/ (${combo}: names, types, bytes, symlink targets)`, async () => {
    const { tree } = await vaultTree(dir, password);
    compare(tree, expectedTree(join(FIX, dir, 'expected')));
    expect(tree.size).toBeGreaterThan(1);
  });
});

describe('yombar_siv_gcm_2024 specifics', () => {
  it('has real symlinks, the empty long-named dir and the multi-chunk image', async () => {
    const { tree, entries } = await vaultTree('yombar_siv_gcm_2024', 'password');
    expect(tree.get('test_link')).toEqual({ type: 'symlink', target: 'test_dir/test_file_2.txt' });
    const long = '_name_too_long'.repeat(10);
    expect(tree.get(`test_dir/test_dir${long}`)).toEqual({ type: 'dir' });
    expect(tree.get(`test_dir/test_link${long}`)).toEqual({ type: 'symlink', target: `test${long}.txt` });
    expect(entries.find((e) => e.path === 'test_image.jpg')).toMatchObject({ type: 'file', size: 484818 });
    const f = entries.find((e) => e.path === 'test_file.txt');
    expect(f?.type === 'file' && (await text(await f.open()))).toBe('this is a test file with some text in it\n');
  });

  it('a wrong password is a KEY error', async () => {
    const err = await openVault(new LocalBackend(join(FIX, 'yombar_siv_gcm_2024', 'vault')), 'nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('KEY');
  });
});

describe('reading through a store', () => {
  it('the vault may sit at the store root, and node paths are vault-relative', async () => {
    const vault = await openVault(new LocalBackend(join(FIX, 'yombar_siv_gcm_2024', 'vault')), 'password');
    const entries: VaultEntry[] = [];
    for await (const e of walkVault(vault)) entries.push(e);
    expect(entries.map((e) => e.path)).toEqual([
      'test_dir',
      `test_dir/test_dir${'_name_too_long'.repeat(10)}`,
      'test_dir/test_file_2.txt',
      `test_dir/test_link${'_name_too_long'.repeat(10)}`,
      `test_dir/test${'_name_too_long'.repeat(10)}.txt`,
      'test_file.txt',
      'test_image.jpg',
      'test_link',
    ]);
    expect(entries[0]).toMatchObject({
      type: 'dir',
      node: 'd/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5/dmFqnPnkmS0TGuiVp1wgcWbyeiwfvnli.c9r',
      dirId: '1a3534ba-34fb-4ba6-ad67-1e37627d40be',
    });
    expect(entries.find((e) => e.path === 'test_file.txt')).toMatchObject({
      node: 'd/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5/AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r',
      content: 'd/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5/AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r',
      ctSize: 137,
      size: 41,
    });
    expect(entries.find((e) => e.path.endsWith('.txt') && e.path.includes('too_long'))).toMatchObject({
      node: 'd/RT/C3KT7DD5C3X6QE32X4IL6PM6WHHNB5/WKTqrlqJR2bzK9gPEHfNYjklYxA=.c9s',
      content: 'd/RT/C3KT7DD5C3X6QE32X4IL6PM6WHHNB5/WKTqrlqJR2bzK9gPEHfNYjklYxA=.c9s/contents.c9r',
      ctSize: 125,
    });
  });

  it('a folder without a vault is NOT_FOUND', async () => {
    const err = await openVault(new LocalBackend(FIX), 'password').catch((e: unknown) => e);
    expect((err as CerberusError).code).toBe('NOT_FOUND');
  });
});
