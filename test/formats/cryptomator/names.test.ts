import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../../src/errors.js';
import {
  decryptName, dirPath, encryptName, shortenedName, vaultNodeName,
} from '../../../src/formats/cryptomator/names.js';

const raw = Buffer.from('sXs8e6rKQX3iySTUkOd6V0FqaM3nqN/x8ULcUYdtBXQBSSDBbf8FEBAkUuGhpqot8leMQTfevZKICb7t8voIOQ==', 'base64');
const keys = { encKey: raw.subarray(0, 32), macKey: raw.subarray(32) };
const VAULT = '/work/shared/fixtures/cryptomator/yombar_siv_gcm_2024/vault';

describe('names (against the yombar GCM fixture)', () => {
  it('root and child dir paths', () => {
    expect(dirPath(keys, '')).toBe('d/RC/WG5EI3VR4DOIGAFUPFXLALP5SBGCL5');
    expect(dirPath(keys, '1a3534ba-34fb-4ba6-ad67-1e37627d40be')).toBe('d/RT/C3KT7DD5C3X6QE32X4IL6PM6WHHNB5');
  });

  it('encrypts and decrypts a known root name', () => {
    expect(encryptName(keys, 'test_file.txt', '')).toBe('AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r');
    expect(decryptName(keys, 'AlBBrYyQQqFiMXocarsNhcWd2oQ0yyRu86LZdZw=.c9r', '')).toBe('test_file.txt');
  });

  it('every long name in test_dir maps to its existing .c9s node', () => {
    const dirId = '1a3534ba-34fb-4ba6-ad67-1e37627d40be';
    const expected = readdirSync('/work/shared/fixtures/cryptomator/yombar_siv_gcm_2024/expected/test_dir');
    // the fixture's expected/ lost the empty long-named dir (git keeps no empty dirs); its README names it
    const longOnes = [...expected.filter((n) => n.length > 100), `test_dir${'_name_too_long'.repeat(10)}`];
    expect(longOnes.length).toBe(3);
    for (const name of longOnes) {
      const node = vaultNodeName(keys, name, dirId);
      expect(node.shortened).toBe(true);
      expect(existsSync(join(VAULT, dirPath(keys, dirId), node.nodeName, 'name.c9s'))).toBe(true);
    }
    const short = vaultNodeName(keys, 'test_file_2.txt', dirId);
    expect(short.shortened).toBe(false);
    expect(existsSync(join(VAULT, dirPath(keys, dirId), short.nodeName))).toBe(true);
  });

  it('round-trips NFC-normalised unicode; wrong parent fails with INTEGRITY', () => {
    const enc = encryptName(keys, 'cafe\u0301 한국어.txt', 'parent');
    expect(decryptName(keys, enc, 'parent')).toBe('caf\u00e9 한국어.txt');
    const err = (() => { try { decryptName(keys, enc, 'other'); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('INTEGRITY');
    expect(() => decryptName(keys, 'a*b.c9r', '')).toThrow(CerberusError);
  });

  it('shortening threshold boundary: length > threshold shortens, == does not', () => {
    const enc = encryptName(keys, 'x'.repeat(50), '');
    expect(vaultNodeName(keys, 'x'.repeat(50), '', enc.length).shortened).toBe(false);
    const s = vaultNodeName(keys, 'x'.repeat(50), '', enc.length - 1);
    expect(s.shortened).toBe(true);
    expect(s.nodeName).toBe(shortenedName(enc));
    expect(s.nodeName).toMatch(/^[A-Za-z0-9_-]{27}=\.c9s$/);
  });
});
