import fsp from 'node:fs/promises';
import { CerberusError } from '../errors.js';
import { parseManifest, type Manifest } from '../engine/manifest.js';
import type { StateCache } from '../engine/state-cache.js';
import { ciphertextSize, decryptPieces, SealEngine, type CryptomatorKeys } from '../formats/cryptomator/index.js';
import { parseSums, SUMS, type Generation, type GenerationWriter } from '../repository/generations.js';
import { readPieces } from '../repository/io.js';
import { joinPath, type Backend } from '../storage/index.js';
import { joinedParts } from '../text-bytes.js';
import { sealedFile, type SealedFile } from './sealed-file.js';
import { parseVaultState, stateParts, vaultObjects, type VaultState } from './state.js';

const COMBO = 'SIV_GCM' as const;

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

/** `keys` read a state cached by an older version (see parseVaultState). */
export async function loadVaultState(cache: StateCache, id: string, keys: CryptomatorKeys): Promise<VaultState | undefined> {
  const bytes = await cache.loadRecord(id, STATE_KIND);
  return bytes === undefined ? undefined : parseVaultState(bytes, keys);
}

export async function saveVaultState(cache: StateCache, id: string, state: VaultState): Promise<void> {
  await cache.saveRecord(id, STATE_KIND, stateParts(state));
}

/** VAULT.SHA256SUMS of the vault `state` describes, in `sha256sum -c` order. */
export function vaultSumsParts(keys: CryptomatorKeys, state: VaultState): Generator<Buffer> {
  const objects = [...vaultObjects(keys, state)].sort(([a], [b]) => (a < b ? -1 : 1));
  return joinedParts(objects, ([name, hash]) => `${hash}  ${name}\n`, '');
}

function where(backend: Backend, g: Generation): string {
  return `${backend.description} ${g.level}/${g.id}`;
}

/** Puts the local `file` into the generation as a vault file (as `VAULT_MANIFEST` is), sealed as it is read. */
export async function putSealedFile(writer: GenerationWriter, name: string, file: string, keys: CryptomatorKeys): Promise<void> {
  const { size } = await fsp.stat(file);
  let last: SealedFile['outcome'] | undefined;
  const body = () => {
    // a retry seals afresh, under new nonces: the digest is the last attempt's
    const sealed = sealedFile(file, size, new SealEngine(COMBO, keys).file(), () => undefined);
    last = sealed.outcome;
    return sealed.body;
  };
  await writer.put(name, body, ciphertextSize(COMBO, size), () => {
    if (last?.digests === undefined || last.sourceBytes !== size) throw new CerberusError('INTERNAL', `${file} changed while it was sealed into ${name}`);
    return last.digests.ctSha256;
  });
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

async function readChecked(backend: Backend, g: Generation, name: string, limit: number): Promise<Buffer[]> {
  const { pieces, sha256 } = await readPieces(backend, joinPath(g.dir, name), limit);
  if (sha256 !== g.sums.get(name)) {
    throw new CerberusError('INTEGRITY', `${where(backend, g)}: ${name} does not match its ${SUMS}`, {
      hint: 'the repository was damaged or tampered with; use another restore point or target',
    });
  }
  return pieces;
}

export async function readVaultSums(backend: Backend, g: Generation): Promise<Map<string, string>> {
  return parseSums(Buffer.concat(await readChecked(backend, g, VAULT_SUMS, 1 << 30)).toString('utf8'));
}

/** The manifest is decrypted as it is parsed, from the pieces it was read in (it is 10 MB at 40,000 files). */
export async function readVaultManifest(backend: Backend, g: Generation, keys: CryptomatorKeys): Promise<Manifest> {
  const label = `${g.level}/${g.id}/${VAULT_MANIFEST}`;
  const pieces = await readChecked(backend, g, VAULT_MANIFEST, 1 << 30);
  const m = parseManifest(decryptPieces(COMBO, keys, pieces, label), label);
  if (m.id !== g.id || m.level !== g.level) {
    throw new CerberusError('INTEGRITY', `${label} describes ${m.level}/${m.id}, not this generation`);
  }
  return m;
}
