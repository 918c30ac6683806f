/**
 * `vault.cryptomator`: a compact JWS (HS256) whose key is encKey ‖ macKey. It names the vault
 * format and the cipher combo; the signature ties it to the masterkey.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../../errors.js';
import type { CryptomatorKeys } from './masterkey.js';

export const MASTERKEY_KID = 'masterkeyfile:masterkey.cryptomator';

export type CipherCombo = 'SIV_GCM' | 'SIV_CTRMAC';

const HeaderSchema = z.object({ alg: z.string(), kid: z.string().optional(), typ: z.string().optional() });
const ClaimsSchema = z.object({
  jti: z.string().optional(),
  format: z.number().int(),
  cipherCombo: z.enum(['SIV_GCM', 'SIV_CTRMAC']),
  shorteningThreshold: z.number().int().positive().optional(),
});

export interface VaultConfig {
  jti: string | undefined;
  format: number;
  cipherCombo: CipherCombo;
  /** longest encrypted name (with `.c9r`) kept as is; longer ones become `.c9s` */
  shorteningThreshold: number;
  kid: string | undefined;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function decodeJson(part: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (cause) {
    throw new CerberusError('INTEGRITY', `vault.cryptomator: ${what} is not valid base64url JSON`, { cause });
  }
}

function sign(keys: CryptomatorKeys, input: string): Buffer {
  return createHmac('sha256', Buffer.concat([keys.encKey, keys.macKey])).update(input, 'ascii').digest();
}

/** Reads the unverified header, so a caller can see which masterkey the `kid` names first. */
export function peekVaultConfigKid(token: string): string | undefined {
  const [head] = token.trim().split('.');
  const parsed = HeaderSchema.safeParse(decodeJson(head ?? '', 'header'));
  return parsed.success ? parsed.data.kid : undefined;
}

export function readVaultConfig(token: string, keys: CryptomatorKeys): VaultConfig {
  const parts = token.trim().split('.');
  if (parts.length !== 3) throw new CerberusError('INTEGRITY', 'vault.cryptomator is not a JWT');
  const [head, body, sig] = parts as [string, string, string];
  const header = HeaderSchema.safeParse(decodeJson(head, 'header'));
  // pinning HS256 refuses alg=none and any algorithm confusion
  if (!header.success || header.data.alg !== 'HS256') {
    throw new CerberusError('INTEGRITY', 'vault.cryptomator: unsupported JWT algorithm (expected HS256)');
  }
  const expected = sign(keys, `${head}.${body}`);
  const actual = Buffer.from(sig, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new CerberusError('INTEGRITY', 'vault.cryptomator signature does not match the masterkey', {
      hint: 'vault.cryptomator and masterkey.cryptomator must come from the same vault',
    });
  }
  const claims = ClaimsSchema.safeParse(decodeJson(body, 'payload'));
  if (!claims.success) {
    throw new CerberusError('INTEGRITY', `vault.cryptomator claims are invalid: ${claims.error.issues[0]?.message ?? ''}`);
  }
  if (claims.data.format !== 8) {
    throw new CerberusError('CONFIG', `Cryptomator vault format ${claims.data.format} is not supported (only 8)`);
  }
  return {
    jti: claims.data.jti,
    format: claims.data.format,
    cipherCombo: claims.data.cipherCombo,
    shorteningThreshold: claims.data.shorteningThreshold ?? 220,
    kid: header.data.kid,
  };
}

/** Returns the token text; Cryptomator writes it without a trailing newline. */
export function writeVaultConfig(
  keys: CryptomatorKeys,
  options: { cipherCombo?: CipherCombo; shorteningThreshold?: number; jti?: string } = {},
): string {
  // key order as cryptofs/java-jwt writes it, so our files look like Cryptomator's
  const header = { kid: MASTERKEY_KID, alg: 'HS256', typ: 'JWT' };
  const claims = {
    jti: options.jti ?? randomUUID(),
    format: 8,
    cipherCombo: options.cipherCombo ?? 'SIV_GCM',
    shorteningThreshold: options.shorteningThreshold ?? 220,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign(keys, input))}`;
}
