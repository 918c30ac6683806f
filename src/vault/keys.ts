import { CerberusError } from '../errors.js';
import { createMasterkey, openVault, unlockMasterkey, type CryptomatorKeys, type OpenedVault } from '../formats/cryptomator/index.js';
import { putBuffer, readSmall } from '../repository/io.js';
import type { Backend } from '../storage/index.js';

/** The repository's key file at its root; every generation carries a copy. */
export const MASTERKEY_FILE = 'masterkey.cryptomator';

export interface RepositoryKeys {
  keys: CryptomatorKeys;
  /** masterkey.cryptomator as stored, copied into each vault unchanged */
  masterkeyText: string;
}

export async function createRepositoryKeys(backend: Backend, password: string): Promise<void> {
  const { text } = await createMasterkey(password);
  await putBuffer(backend, MASTERKEY_FILE, Buffer.from(text));
}

/** Unlocks the repository's masterkey; a wrong password is a KEY error (exit 1). */
export async function repositoryKeys(backend: Backend, password: string, target: string): Promise<RepositoryKeys> {
  if (!(await backend.stat(MASTERKEY_FILE))) {
    throw new CerberusError('INTEGRITY', `target ${target}: the repository has no ${MASTERKEY_FILE}`, {
      hint: `copy it from any restore point's folder (each holds one) back to the repository root`,
    });
  }
  const masterkeyText = (await readSmall(backend, MASTERKEY_FILE, 64 * 1024)).toString('utf8');
  return { keys: await namingTarget(target, unlockMasterkey(masterkeyText, password)), masterkeyText };
}

/** Opens one vault (a generation or the mirror) by its own key files, as the apps do. */
export async function openVaultAt(backend: Backend, dir: string, password: string, target: string): Promise<OpenedVault> {
  return namingTarget(target, openVault(backend, password, dir));
}

async function namingTarget<T>(target: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof CerberusError && err.code === 'KEY') {
      throw new CerberusError('KEY', `target ${target}: ${err.message}`, { hint: err.hint ?? 'check encryption.password (the vault password)' });
    }
    throw err;
  }
}
