import { CerberusError } from '../errors.js';
import { manifestBytes, parseManifest, type Manifest } from '../engine/manifest.js';
import type { StateCache } from '../engine/state-cache.js';
import { decryptBuffer, encryptBuffer, type CryptomatorKeys } from '../formats/cryptomator/index.js';
import { formatSums, parseSums, SUMS, type Generation } from '../repository/generations.js';
import { readSmall, sha256Hex } from '../repository/io.js';
import { joinPath, type Backend } from '../storage/index.js';
import { parseVaultState, type VaultState } from './state.js';

/**
 * A Cryptomator generation: a whole vault (`masterkey.cryptomator`, `vault.cryptomator`,
 * `d/`), plus cerberus's files beside it, which the Cryptomator apps ignore.
 */

export const VAULT_CONFIG = 'vault.cryptomator';
/** the manifest, encrypted like a vault file */
export const VAULT_MANIFEST = 'manifest.json.c9r';
/** sha256 of every object under `d/`, in `sha256sum -c` form; SHA256SUMS covers the rest */
export const VAULT_SUMS = 'VAULT.SHA256SUMS';
export const VAULT_DATA = 'd';

const STATE_KIND = 'vault';

export async function loadVaultState(cache: StateCache, id: string): Promise<VaultState | undefined> {
  const text = await cache.loadRecord(id, STATE_KIND);
  return text === undefined ? undefined : parseVaultState(text);
}

export async function saveVaultState(cache: StateCache, id: string, state: VaultState): Promise<void> {
  await cache.saveRecord(id, STATE_KIND, JSON.stringify(state));
}

export function encryptManifest(keys: CryptomatorKeys, m: Manifest): Buffer {
  return encryptBuffer('SIV_GCM', keys, manifestBytes(m));
}

export function vaultSumsText(objects: Record<string, string>): Buffer {
  return Buffer.from(formatSums(new Map(Object.entries(objects))));
}

function where(backend: Backend, g: Generation): string {
  return `${backend.description} ${g.level}/${g.id}`;
}

/** Checks a committed vault generation's own files against SHA256SUMS (no key needed). */
export function requireVaultFiles(backend: Backend, g: Generation): void {
  const present = new Set(g.files.map((f) => f.name));
  for (const name of [VAULT_CONFIG, 'masterkey.cryptomator', VAULT_MANIFEST, VAULT_SUMS]) {
    if (!g.sums.has(name) || !present.has(name)) {
      throw new CerberusError('INTEGRITY', `${where(backend, g)}: ${name} is missing or not listed in ${SUMS}`, {
        hint: 'this restore point is damaged; use another restore point or target',
      });
    }
  }
}

async function readChecked(backend: Backend, g: Generation, name: string, limit: number): Promise<Buffer> {
  const bytes = await readSmall(backend, joinPath(g.dir, name), limit);
  if (sha256Hex(bytes) !== g.sums.get(name)) {
    throw new CerberusError('INTEGRITY', `${where(backend, g)}: ${name} does not match its ${SUMS}`, {
      hint: 'the repository was damaged or tampered with; use another restore point or target',
    });
  }
  return bytes;
}

export async function readVaultSums(backend: Backend, g: Generation): Promise<Map<string, string>> {
  return parseSums((await readChecked(backend, g, VAULT_SUMS, 1 << 30)).toString('utf8'));
}

export async function readVaultManifest(backend: Backend, g: Generation, keys: CryptomatorKeys): Promise<Manifest> {
  const label = `${g.level}/${g.id}/${VAULT_MANIFEST}`;
  const bytes = await readChecked(backend, g, VAULT_MANIFEST, 1 << 30);
  const m = parseManifest(decryptBuffer('SIV_GCM', keys, bytes, label), label);
  if (m.id !== g.id || m.level !== g.level) {
    throw new CerberusError('INTEGRITY', `${label} describes ${m.level}/${m.id}, not this generation`);
  }
  return m;
}
