import { createHmac, randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, cpSync, createWriteStream, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CerberusError } from '../../../src/errors.js';
import {
  childNode,
  ciphertextSize,
  createMasterkey,
  decryptBuffer,
  dirFolder,
  dirNodeObjects,
  EncryptStream,
  encryptBuffer,
  encryptName,
  fileContentPath,
  newDirId,
  shortenedName,
  openVault,
  symlinkNodeObjects,
  unlockMasterkey,
  walkVault,
  writeVaultConfig,
  type CryptomatorKeys,
  type VaultDamage,
  type VaultEntry,
  type VaultObject,
} from '../../../src/formats/cryptomator/index.js';
import { LocalBackend } from '../../../src/storage/local.js';
import { checkVaultRules } from './vault-rules.js';

const FIX = '/work/shared/fixtures/cryptomator/yombar_siv_gcm_2024/vault';
const COMBO = 'SIV_GCM';
const PASSWORD = 'correct horse';
const tmpBase = process.env.CERBERUS_TEST_TMP ?? tmpdir();

describe('layout against the real yombar_siv_gcm_2024 vault', () => {
  let keys: CryptomatorKeys;
  beforeAll(async () => {
    keys = await unlockMasterkey(readFileSync(join(FIX, 'masterkey.cryptomator'), 'utf8'), 'password');
  });
  const ROOT = 'd/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5';
  const TEST_DIR = 'd/RT/C3KT7DD5C3X6QE32X4IL6PM6WHHNB5';
  const TEST_DIR_ID = '1a3534ba-34fb-4ba6-ad67-1e37627d40be';
  const LONG = '_name_too_long'.repeat(10);

  it('puts the root and test_dir where Cryptomator did, with dirid.c9r of the same size', () => {
    const root = dirFolder(keys, COMBO, '');
    expect(root.folder).toBe(ROOT);
    expect(root.objects.map((o) => o.path)).toEqual([`${ROOT}/dirid.c9r`]);
    expect(root.objects[0]!.data.length).toBe(68);
    const sub = dirFolder(keys, COMBO, TEST_DIR_ID);
    expect(sub.folder).toBe(TEST_DIR);
    expect(sub.objects[0]!.data.length).toBe(readFileSync(join(FIX, TEST_DIR, 'dirid.c9r')).length);
    expect(decryptBuffer(COMBO, keys, sub.objects[0]!.data, 'x').toString()).toBe(TEST_DIR_ID);
  });

  it('names plain and shortened nodes exactly as the fixture does', () => {
    expect(childNode(keys, ROOT, '', 'test_file.txt')).toEqual({
      node: `${ROOT}/AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r`,
      shortened: false,
      objects: [],
    });
    const dir = childNode(keys, TEST_DIR, TEST_DIR_ID, `test_dir${LONG}`);
    expect(dir.node).toBe(`${TEST_DIR}/biriOq0g_HryVlCHfK3sQwEOcdM=.c9s`);
    expect(dir.objects).toEqual([{ path: `${dir.node}/name.c9s`, data: readFileSync(join(FIX, dir.node, 'name.c9s')) }]);
    expect(dir.objects[0]!.data.toString().endsWith('.c9r')).toBe(true);
    const file = childNode(keys, TEST_DIR, TEST_DIR_ID, `test${LONG}.txt`);
    expect(fileContentPath(file)).toBe(`${TEST_DIR}/WKTqrlqJR2bzK9gPEHfNYjklYxA=.c9s/contents.c9r`);
    expect(fileContentPath(childNode(keys, ROOT, '', 'test_file.txt'))).toBe(`${ROOT}/AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r`);
  });

  it('dir.c9r and symlink.c9r match the fixture', () => {
    const dirNode = childNode(keys, ROOT, '', 'test_dir');
    expect(dirNodeObjects(dirNode, TEST_DIR_ID)).toEqual([
      { path: `${ROOT}/dmFqnPnkmS0TGuiVp1wgcWbyeiwfvnli.c9r/dir.c9r`, data: readFileSync(join(FIX, ROOT, 'dmFqnPnkmS0TGuiVp1wgcWbyeiwfvnli.c9r/dir.c9r')) },
    ]);
    const link = childNode(keys, ROOT, '', 'test_link');
    const [obj] = symlinkNodeObjects(keys, COMBO, link, 'test_dir/test_file_2.txt');
    const real = readFileSync(join(FIX, obj!.path));
    expect(obj!.data.length).toBe(real.length);
    expect(decryptBuffer(COMBO, keys, obj!.data, 'x')).toEqual(decryptBuffer(COMBO, keys, real, 'x'));
  });

  it('normalises names to NFC and refuses names that are not plain', () => {
    expect(childNode(keys, ROOT, '', 'café'.normalize('NFD')).node).toBe(childNode(keys, ROOT, '', 'café'.normalize('NFC')).node);
    for (const bad of ['', '.', '..', 'a/b']) {
      expect(() => childNode(keys, ROOT, '', bad)).toThrow(expect.objectContaining({ code: 'UNSAFE_PATH' }));
    }
    expect(() => dirNodeObjects({ node: 'x' }, '')).toThrow(CerberusError);
    expect(newDirId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

/** A vault written with layout.ts only; returns what it should decrypt to. */
class VaultBuilder {
  constructor(
    readonly root: string,
    readonly keys: CryptomatorKeys,
  ) {}

  write(objects: VaultObject[]): void {
    for (const o of objects) {
      mkdirSync(dirname(join(this.root, o.path)), { recursive: true });
      writeFileSync(join(this.root, o.path), o.data);
    }
  }

  dir(parent: { folder: string; id: string } | undefined, name: string): { folder: string; id: string; node: string } {
    if (!parent) {
      const root = dirFolder(this.keys, COMBO, '');
      this.write(root.objects);
      return { folder: root.folder, id: '', node: '' };
    }
    const id = newDirId();
    const node = childNode(this.keys, parent.folder, parent.id, name);
    const folder = dirFolder(this.keys, COMBO, id);
    this.write([...node.objects, ...dirNodeObjects(node, id), ...folder.objects]);
    return { folder: folder.folder, id, node: node.node };
  }

  async file(parent: { folder: string; id: string }, name: string, data: Buffer): Promise<string> {
    const node = childNode(this.keys, parent.folder, parent.id, name);
    this.write(node.objects);
    const dest = join(this.root, fileContentPath(node));
    mkdirSync(dirname(dest), { recursive: true });
    await pipeline(Readable.from([data]), new EncryptStream(COMBO, this.keys), createWriteStream(dest));
    return node.node;
  }

  symlink(parent: { folder: string; id: string }, name: string, target: string): void {
    const node = childNode(this.keys, parent.folder, parent.id, name);
    this.write([...node.objects, ...symlinkNodeObjects(this.keys, COMBO, node, target)]);
  }
}

type Node = { type: 'dir' } | { type: 'file'; data: Buffer } | { type: 'symlink'; target: string };

async function readBack(root: string, onDamage?: (d: VaultDamage) => void): Promise<Map<string, Node>> {
  const vault = await openVault(new LocalBackend(root), PASSWORD);
  const out = new Map<string, Node>();
  for await (const e of walkVault(vault, onDamage ? { onDamage } : {})) {
    if (e.type === 'file') out.set(e.path, { type: 'file', data: await buffer(await e.open()) });
    else if (e.type === 'symlink') out.set(e.path, { type: 'symlink', target: e.target });
    else out.set(e.path, { type: 'dir' });
  }
  return out;
}

describe('a vault built with layout.ts', () => {
  let base: string;
  let root: string;
  let b: VaultBuilder;
  const expected = new Map<string, Node>();
  const LONG_FILE = `${'f'.repeat(226)}.txt`;
  const LONG_DIR = 'D'.repeat(240);
  const nodes: Record<string, string> = {};
  let longDir: { folder: string; id: string; node: string };

  beforeAll(async () => {
    base = await mkdtemp(join(tmpBase, 'cryptomator-layout-'));
    root = join(base, 'vault');
    mkdirSync(root);
    const { keys, text } = await createMasterkey(PASSWORD);
    writeFileSync(join(root, 'masterkey.cryptomator'), text);
    writeFileSync(join(root, 'vault.cryptomator'), writeVaultConfig(keys));
    b = new VaultBuilder(root, keys);
    const top = b.dir(undefined, '');
    const add = async (parent: { folder: string; id: string }, path: string, name: string, data: Buffer) => {
      nodes[path] = await b.file(parent, name, data);
      expected.set(path, { type: 'file', data });
    };
    await add(top, 'a.txt', 'a.txt', Buffer.from('hello'));
    await add(top, 'empty.txt', 'empty.txt', Buffer.alloc(0));
    await add(top, LONG_FILE, LONG_FILE, Buffer.from('long name'));
    await add(top, 'exact-chunk.bin', 'exact-chunk.bin', randomBytes(32 * 1024));
    await add(top, 'café.txt'.normalize('NFC'), 'café.txt'.normalize('NFD'), Buffer.from('accent'));
    longDir = b.dir(top, LONG_DIR);
    expected.set(LONG_DIR, { type: 'dir' });
    await add(longDir, `${LONG_DIR}/inner.bin`, 'inner.bin', randomBytes(70_000));
    const empty = b.dir(top, 'empty-dir');
    nodes['empty-dir'] = empty.node;
    expected.set('empty-dir', { type: 'dir' });
    b.symlink(top, 'link', 'a.txt');
    expected.set('link', { type: 'symlink', target: 'a.txt' });
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('reads back through LocalBackend, in walk order, and follows every format rule', async () => {
    const tree = await readBack(root);
    expect([...tree.keys()]).toEqual([...expected.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
    expect(tree).toEqual(expected);
    expect(await checkVaultRules(root, PASSWORD)).toEqual([]);
  });

  it('shortens the long names and keeps the short ones', () => {
    expect(nodes[LONG_FILE]).toMatch(/\.c9s$/);
    expect(longDir.node).toMatch(/\.c9s$/);
    expect(nodes['a.txt']).toMatch(/\.c9r$/);
  });

  describe('damage', () => {
    let copy: string;
    beforeAll(async () => {
      copy = join(base, 'damaged');
      cpSync(root, copy, { recursive: true });
      // a valid base64url name that does not authenticate in this folder
      const a = nodes['a.txt']!;
      const folder = a.slice(0, a.lastIndexOf('/'));
      const moved = `${folder}/${encryptName(b.keys, 'a.txt', 'some-other-dir')}`;
      renameSync(join(copy, a), join(copy, moved));
      nodes.moved = moved;
      // dir.c9r naming a folder already walked, and one naming no folder
      writeFileSync(join(copy, nodes['empty-dir']!, 'dir.c9r'), longDir.id);
      const ghost = childNode(b.keys, folder, '', 'ghost');
      mkdirSync(join(copy, ghost.node));
      writeFileSync(join(copy, ghost.node, 'dir.c9r'), newDirId());
      nodes.ghost = ghost.node;
      // junk inside a sub-folder, and an oversized name.c9s
      writeFileSync(join(copy, longDir.folder, 'zzzz.c9r'), 'x');
      const big = `${longDir.folder}/AAAA.c9s`;
      mkdirSync(join(copy, big));
      writeFileSync(join(copy, big, 'name.c9s'), Buffer.alloc(1024 * 1024 + 1, 0x41));
      nodes.big = big;
    });

    it('with onDamage: reports each bad object and still yields the rest', async () => {
      const damage: VaultDamage[] = [];
      const tree = await readBack(copy, (d) => damage.push(d));
      const sorted = [...damage].sort((x, y) => (x.object < y.object ? -1 : 1));
      expect(sorted).toEqual(
        [
          { dir: '', object: nodes.moved, problem: expect.stringMatching(/does not authenticate/) },
          { dir: '', object: `${nodes['empty-dir']}/dir.c9r`, problem: expect.stringMatching(/already walked/) },
          { dir: '', object: `${nodes.ghost}/dir.c9r`, problem: expect.stringMatching(/missing/) },
          { dir: LONG_DIR, object: `${longDir.folder}/zzzz.c9r`, problem: expect.stringMatching(/does not authenticate/) },
          { dir: LONG_DIR, object: `${nodes.big}/name.c9s`, problem: expect.stringMatching(/larger than/) },
        ].sort((x, y) => (x.object! < y.object! ? -1 : 1)),
      );
      const rest = new Map(expected);
      rest.delete('a.txt');
      rest.delete('empty-dir');
      expect(tree).toEqual(rest);
    });

    it('without onDamage: an INTEGRITY error naming the folder and the object', async () => {
      const err = await readBack(copy).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CerberusError);
      expect((err as CerberusError).code).toBe('INTEGRITY');
      expect((err as Error).message).toContain(nodes.moved!);
      expect((err as Error).message).toMatch(/^vault folder \/:/);
    });

    it('an entry named like a path is UNSAFE_PATH even with onDamage', async () => {
      const evil = join(base, 'evil');
      cpSync(root, evil, { recursive: true });
      const a = nodes['a.txt']!;
      renameSync(join(evil, a), join(evil, a.slice(0, a.lastIndexOf('/')), encryptName(b.keys, '..', '')));
      const err = await readBack(evil, () => {}).catch((e: unknown) => e);
      expect((err as CerberusError).code).toBe('UNSAFE_PATH');
    });

    it('a missing root folder is damage too', async () => {
      const bare = join(base, 'bare');
      mkdirSync(bare);
      writeFileSync(join(bare, 'masterkey.cryptomator'), readFileSync(join(root, 'masterkey.cryptomator')));
      writeFileSync(join(bare, 'vault.cryptomator'), readFileSync(join(root, 'vault.cryptomator')));
      const damage: VaultDamage[] = [];
      expect(await readBack(bare, (d) => damage.push(d))).toEqual(new Map());
      expect(damage).toEqual([{ dir: '', object: dirFolder(b.keys, COMBO, '').folder, problem: expect.stringMatching(/missing/) }]);
      await expect(readBack(bare)).rejects.toMatchObject({ code: 'INTEGRITY' });
    });

    it('an impossible ciphertext size is damage', async () => {
      const odd = join(base, 'odd');
      cpSync(root, odd, { recursive: true });
      writeFileSync(join(odd, nodes['a.txt']!), encryptBuffer(COMBO, b.keys, Buffer.from('x')).subarray(0, 70));
      const damage: VaultDamage[] = [];
      const entries: VaultEntry[] = [];
      const vault = await openVault(new LocalBackend(odd), PASSWORD);
      for await (const e of walkVault(vault, { onDamage: (d) => damage.push(d) })) entries.push(e);
      expect(damage).toEqual([{ dir: '', object: nodes['a.txt'], problem: 'ciphertext size 70 is impossible' }]);
      expect(entries.map((e) => e.path)).not.toContain('a.txt');
    });
  });
});

// ---- checkVaultRules: each format-8 rule, shown catching a copy of the real vault that breaks it

const FIXTURES = '/work/shared/fixtures/cryptomator';
const R_ROOT = 'd/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5';
const R_TEST_DIR = 'd/RT/C3KT7DD5C3X6QE32X4IL6PM6WHHNB5';
const R_TEST_DIR_ID = '1a3534ba-34fb-4ba6-ad67-1e37627d40be';
const DIR_NODE = `${R_ROOT}/dmFqnPnkmS0TGuiVp1wgcWbyeiwfvnli.c9r`;
const FILE_NODE = `${R_ROOT}/AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r`;
const R_LONG_DIR = `${R_TEST_DIR}/biriOq0g_HryVlCHfK3sQwEOcdM=.c9s`;
const R_LONG_FILE = `${R_TEST_DIR}/WKTqrlqJR2bzK9gPEHfNYjklYxA=.c9s`;

let rulesBase: string;
let rulesKeys: CryptomatorKeys;
let n = 0;

function makeWritable(p: string): void {
  chmodSync(p, statSync(p).isDirectory() ? 0o755 : 0o644);
  if (statSync(p).isDirectory()) for (const c of readdirSync(p)) makeWritable(join(p, c));
}

function copy(): string {
  const dest = join(rulesBase, `v${n++}`);
  cpSync(join(FIXTURES, 'yombar_siv_gcm_2024', 'vault'), dest, { recursive: true });
  makeWritable(dest);
  return dest;
}

/** A correctly signed vault.cryptomator with exactly this claims text. */
function tokenRaw(claimsText: string, header: object = HEADER): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(claimsText).toString('base64url')}`;
  return `${input}.${createHmac('sha256', Buffer.concat([rulesKeys.encKey, rulesKeys.macKey])).update(input).digest('base64url')}`;
}
const token = (header: object, claims: object) => tokenRaw(JSON.stringify(claims), header);
const HEADER = { kid: 'masterkeyfile:masterkey.cryptomator', alg: 'HS256', typ: 'JWT' };
const CLAIMS = { jti: '46cd26de-d575-4563-ad30-432123f85f36', format: 8, cipherCombo: 'SIV_GCM', shorteningThreshold: 220 };

function editMasterkey(v: string, edit: (mk: Record<string, unknown>) => void): void {
  const p = join(v, 'masterkey.cryptomator');
  const mk = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  edit(mk);
  writeFileSync(p, JSON.stringify(mk, null, 2));
}

beforeAll(async () => {
  rulesBase = await mkdtemp(join(tmpBase, 'cryptomator-rules-'));
  rulesKeys = await unlockMasterkey(readFileSync(join(FIXTURES, 'yombar_siv_gcm_2024/vault/masterkey.cryptomator'), 'utf8'), 'password');
});
afterAll(() => rmSync(rulesBase, { recursive: true, force: true }));

describe('checkVaultRules on real vaults', () => {
  it('finds nothing wrong with the vault Cryptomator wrote', async () => {
    expect(await checkVaultRules(join(FIXTURES, 'yombar_siv_gcm_2024', 'vault'), 'password')).toEqual([]);
  });

  it('flags only the weak scrypt parameters of the yombar-written 2025 vault', async () => {
    expect(await checkVaultRules(join(FIXTURES, 'yombar_siv_gcm_2025_weak_scrypt', 'vault'), 'password')).toEqual([
      'masterkey.cryptomator: scryptSalt is not 8 bytes of base64',
      'masterkey.cryptomator: scryptCostParam is 16, not 32768',
    ]);
  });

  it('an untouched copy passes, and the token helper reproduces the real config', async () => {
    const v = copy();
    expect(await checkVaultRules(v, 'password')).toEqual([]);
    writeFileSync(join(v, 'vault.cryptomator'), token(HEADER, CLAIMS));
    expect(await checkVaultRules(v, 'password')).toEqual([]);
  });
});

const MUTATIONS: Array<{ rule: string; mutate: (v: string) => void | Promise<void>; expect: RegExp }> = [
  // vault.cryptomator
  { rule: 'JWT alg HS256', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token({ ...HEADER, alg: 'HS384' }, CLAIMS)), expect: /alg is "HS384"/ },
  { rule: 'kid', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token({ ...HEADER, kid: 'hub+https://x' }, CLAIMS)), expect: /kid is/ },
  { rule: 'format 8 as an integer (string)', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token(HEADER, { ...CLAIMS, format: '8' })), expect: /format is "8"/ },
  {
    rule: 'format 8 as an integer (8.0)',
    mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), tokenRaw(JSON.stringify(CLAIMS).replace('"format":8', '"format":8.0'))),
    expect: /format is 8, not the integer 8/,
  },
  { rule: 'cipherCombo', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token(HEADER, { ...CLAIMS, cipherCombo: 'SIV_CTRMAC' })), expect: /cipherCombo is "SIV_CTRMAC"/ },
  { rule: 'shorteningThreshold', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token(HEADER, { ...CLAIMS, shorteningThreshold: 221 })), expect: /shorteningThreshold is 221/ },
  { rule: 'jti', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), token(HEADER, { ...CLAIMS, jti: undefined })), expect: /has no jti/ },
  { rule: 'config without trailing newline', mutate: (v) => appendFileSync(join(v, 'vault.cryptomator'), '\n'), expect: /vault\.cryptomator: ends with a newline/ },
  { rule: 'config signature', mutate: (v) => writeFileSync(join(v, 'vault.cryptomator'), `${token(HEADER, CLAIMS).slice(0, -2)}AA`), expect: /signature does not match/ },
  // masterkey.cryptomator
  { rule: 'version 999', mutate: (v) => editMasterkey(v, (mk) => (mk.version = 998)), expect: /version is 998/ },
  { rule: 'scryptSalt 8 bytes', mutate: (v) => editMasterkey(v, (mk) => (mk.scryptSalt = Buffer.alloc(16).toString('base64'))), expect: /scryptSalt is not 8 bytes/ },
  {
    rule: 'scryptCostParam 32768',
    mutate: async (v) => writeFileSync(join(v, 'masterkey.cryptomator'), (await createMasterkey('password', { keys: rulesKeys, N: 16384 })).text),
    expect: /scryptCostParam is 16384/,
  },
  {
    rule: 'scryptBlockSize 8',
    mutate: async (v) => writeFileSync(join(v, 'masterkey.cryptomator'), (await createMasterkey('password', { keys: rulesKeys, r: 4 })).text),
    expect: /scryptBlockSize is 4/,
  },
  ...(['primaryMasterKey', 'hmacMasterKey', 'versionMac'] as const).map((field) => ({
    rule: `masterkey field ${field}`,
    mutate: (v: string) => editMasterkey(v, (mk) => delete mk[field]),
    expect: new RegExp(`${field} is not \\d+ bytes`),
  })),
  // d/ folders
  { rule: 'folder has dirid.c9r', mutate: (v) => rmSync(join(v, R_TEST_DIR, 'dirid.c9r')), expect: new RegExp(`${R_TEST_DIR}/dirid.c9r: missing`) },
  {
    rule: 'dirid.c9r names its own folder',
    mutate: (v) => cpSync(join(v, R_TEST_DIR, 'dirid.c9r'), join(v, R_ROOT, 'dirid.c9r')),
    expect: new RegExp(`${R_ROOT}/dirid.c9r: holds "${R_TEST_DIR_ID}", whose folder is ${R_TEST_DIR}`),
  },
  { rule: 'root folder exists', mutate: (v) => rmSync(join(v, R_ROOT), { recursive: true }), expect: /root folder is missing/ },
  // dir nodes
  { rule: 'dir node has dir.c9r', mutate: (v) => rmSync(join(v, DIR_NODE, 'dir.c9r')), expect: /holds none of dir\.c9r\/symlink\.c9r/ },
  { rule: 'dir.c9r without newline', mutate: (v) => appendFileSync(join(v, DIR_NODE, 'dir.c9r'), '\n'), expect: /dir\.c9r: ends with a newline/ },
  { rule: 'dir.c9r is a 36-byte UUID', mutate: (v) => writeFileSync(join(v, DIR_NODE, 'dir.c9r'), 'not-a-uuid'), expect: /dir\.c9r: is not a 36-byte UUID/ },
  { rule: "dir.c9r's folder exists", mutate: (v) => rmSync(join(v, R_TEST_DIR), { recursive: true }), expect: new RegExp(`its folder ${R_TEST_DIR} is missing`) },
  // shortened nodes
  { rule: '.c9s has name.c9s', mutate: (v) => rmSync(join(v, R_LONG_FILE, 'name.c9s')), expect: /name\.c9s: missing/ },
  {
    rule: 'name.c9s matches its node name',
    mutate: (v) => {
      cpSync(join(v, R_LONG_DIR, 'name.c9s'), join(v, 'swap'));
      cpSync(join(v, R_LONG_FILE, 'name.c9s'), join(v, R_LONG_DIR, 'name.c9s'));
      renameSync(join(v, 'swap'), join(v, R_LONG_FILE, 'name.c9s'));
    },
    expect: /sha1\/base64url of the name is not the node name/,
  },
  { rule: 'name.c9s without newline', mutate: (v) => appendFileSync(join(v, R_LONG_FILE, 'name.c9s'), '\n'), expect: /name\.c9s: ends with a newline/ },
  {
    rule: 'name in name.c9s is longer than 220',
    mutate: (v) => {
      const enc = encryptName(rulesKeys, 'short.txt', R_TEST_DIR_ID);
      const node = join(v, R_TEST_DIR, shortenedName(enc));
      mkdirSync(node);
      writeFileSync(join(node, 'name.c9s'), enc);
      writeFileSync(join(node, 'contents.c9r'), encryptBuffer('SIV_GCM', rulesKeys, Buffer.from('x')));
    },
    expect: /short enough not to be shortened/,
  },
  { rule: '.c9s holds exactly one of contents/dir/symlink (two)', mutate: (v) => cpSync(join(v, R_LONG_DIR, 'dir.c9r'), join(v, R_LONG_FILE, 'dir.c9r')), expect: /holds contents\.c9r and dir\.c9r/ },
  { rule: '.c9s holds exactly one of contents/dir/symlink (none)', mutate: (v) => rmSync(join(v, R_LONG_FILE, 'contents.c9r')), expect: /holds none of contents\.c9r/ },
  // names and sizes
  {
    rule: '.c9r node name at most 220 chars',
    mutate: (v) => writeFileSync(join(v, R_ROOT, encryptName(rulesKeys, 'n'.repeat(150), '')), encryptBuffer('SIV_GCM', rulesKeys, Buffer.from('x'))),
    expect: /node name is \d+ chars, longer than 220/,
  },
  {
    rule: 'every name decrypts',
    mutate: (v) => renameSync(join(v, FILE_NODE), join(v, R_ROOT, encryptName(rulesKeys, 'test_file.txt', 'elsewhere'))),
    expect: /name does not decrypt/,
  },
  {
    rule: 'ciphertext size without an empty trailing chunk',
    mutate: (v) => {
      const full = encryptBuffer('SIV_GCM', rulesKeys, Buffer.alloc(32 * 1024));
      expect(full.length).toBe(ciphertextSize('SIV_GCM', 32 * 1024));
      writeFileSync(join(v, R_ROOT, encryptName(rulesKeys, 'padded.bin', '')), Buffer.concat([full, Buffer.alloc(28)]));
    },
    expect: /ciphertext size 32892 is not valid/,
  },
  {
    rule: 'ciphertext size possible at all',
    mutate: (v) => writeFileSync(join(v, FILE_NODE), readFileSync(join(v, FILE_NODE)).subarray(0, 68 + 10)),
    expect: new RegExp(`${FILE_NODE}: ciphertext size 78 is not valid`),
  },
];

describe.each(MUTATIONS)('rule: $rule', ({ mutate, expect: pattern }) => {
  it('catches a copy that breaks it', async () => {
    const v = copy();
    await mutate(v);
    const violations = await checkVaultRules(v, 'password');
    expect(violations.some((x) => pattern.test(x)), violations.join('\n')).toBe(true);
  });
});
