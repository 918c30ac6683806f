import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../../src/errors.js';
import { createMasterkey, parseMasterkeyFile, unlockMasterkey } from '../../../src/formats/cryptomator/masterkey.js';
import { readVaultConfig, writeVaultConfig } from '../../../src/formats/cryptomator/vault-config.js';

const FIX = '/work/shared/fixtures/cryptomator';
const read = (f: string, p: string) => readFileSync(join(FIX, f, 'vault', p), 'utf8');

describe('masterkey.cryptomator', () => {
  it('unlocks the yombar GCM fixture to the independently known raw key', async () => {
    const keys = await unlockMasterkey(read('yombar_siv_gcm_2024', 'masterkey.cryptomator'), 'password');
    expect(Buffer.concat([keys.encKey, keys.macKey]).toString('base64')).toBe(
      'sXs8e6rKQX3iySTUkOd6V0FqaM3nqN/x8ULcUYdtBXQBSSDBbf8FEBAkUuGhpqot8leMQTfevZKICb7t8voIOQ==',
    );
    const cfg = readVaultConfig(read('yombar_siv_gcm_2024', 'vault.cryptomator'), keys);
    expect(cfg).toMatchObject({ format: 8, cipherCombo: 'SIV_GCM', shorteningThreshold: 220, jti: '46cd26de-d575-4563-ad30-432123f85f36' });
    expect(cfg.kid).toBe('masterkeyfile:masterkey.cryptomator');
  });

  it('unlocks the unpadded-salt, weak-scrypt fixture', async () => {
    const keys = await unlockMasterkey(read('yombar_siv_gcm_2025_weak_scrypt', 'masterkey.cryptomator'), 'password');
    expect(readVaultConfig(read('yombar_siv_gcm_2025_weak_scrypt', 'vault.cryptomator'), keys).cipherCombo).toBe('SIV_GCM');
  });

  it('a wrong password is a KEY error with a hint', async () => {
    const text = read('yombar_siv_gcm_2025_weak_scrypt', 'masterkey.cryptomator');
    const err = await unlockMasterkey(text, 'Password').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('KEY');
    expect((err as CerberusError).message).toMatch(/wrong password/);
    expect((err as CerberusError).hint).toBeTruthy();
  });

  it('rejects malformed JSON and a tampered versionMac', async () => {
    expect(() => parseMasterkeyFile('{')).toThrow(CerberusError);
    expect(() => parseMasterkeyFile('{"version":999}')).toThrow(/malformed/);
    const { text } = await createMasterkey('pw', { N: 16, r: 8 });
    const json = JSON.parse(text) as Record<string, unknown>;
    json.version = 998;
    await expect(unlockMasterkey(JSON.stringify(json), 'pw')).rejects.toThrow(/version MAC/);
  });

  it('createMasterkey writes every field and round-trips; NFC password', async () => {
    const { keys, file, text } = await createMasterkey('caf\u00e9', { N: 1024, r: 8 });
    expect(Object.keys(JSON.parse(text) as object).sort()).toEqual(
      ['hmacMasterKey', 'primaryMasterKey', 'scryptBlockSize', 'scryptCostParam', 'scryptSalt', 'version', 'versionMac'].sort(),
    );
    expect(file.version).toBe(999);
    expect(Buffer.from(file.scryptSalt, 'base64')).toHaveLength(8);
    const back = await unlockMasterkey(text, 'cafe\u0301');
    expect(back.encKey).toEqual(keys.encKey);
    expect(back.macKey).toEqual(keys.macKey);
  });

  it('createMasterkey defaults to Cryptomator parameters', async () => {
    const { file } = await createMasterkey('x');
    expect(file.scryptCostParam).toBe(32768);
    expect(file.scryptBlockSize).toBe(8);
  });
});

describe('vault.cryptomator', () => {
  const keys = { encKey: Buffer.alloc(32, 1), macKey: Buffer.alloc(32, 2) };
  it('round-trips without a trailing newline', () => {
    const token = writeVaultConfig(keys, { cipherCombo: 'SIV_CTRMAC', jti: 'abc' });
    expect(token.endsWith('\n')).toBe(false);
    expect(readVaultConfig(token, keys)).toEqual({
      jti: 'abc', format: 8, cipherCombo: 'SIV_CTRMAC', shorteningThreshold: 220, kid: 'masterkeyfile:masterkey.cryptomator',
    });
  });
  it('rejects a foreign key, a forged payload, and alg none', () => {
    const token = writeVaultConfig(keys);
    expect(() => readVaultConfig(token, { encKey: Buffer.alloc(32, 1), macKey: Buffer.alloc(32, 3) })).toThrow(/signature/);
    const [h, , s] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ format: 8, cipherCombo: 'SIV_CTRMAC' })).toString('base64url');
    expect(() => readVaultConfig(`${h}.${forged}.${s}`, keys)).toThrow(/signature/);
    const none = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    expect(() => readVaultConfig(`${none}.${forged}.`, keys)).toThrow(/HS256/);
  });
});
