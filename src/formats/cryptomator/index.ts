/**
 * Cryptomator vault format 8 (cipher combos SIV_GCM and SIV_CTRMAC): keys, vault config,
 * names, file content, and reading a vault. The public face of this folder.
 */
export { CLEARTEXT_CHUNK_SIZE, DecryptStream, EncryptStream, ciphertextSize, cleartextSize, decryptBuffer, encryptBuffer } from './content.js';
export { MASTERKEY_VERSION, createMasterkey, parseMasterkeyFile, unlockMasterkey, type CryptomatorKeys, type MasterkeyFile } from './masterkey.js';
export { DEFAULT_SHORTENING_THRESHOLD, ROOT_DIR_ID, decryptName, dirPath, encryptName, shortenedName, vaultNodeName, type VaultNode } from './names.js';
export { MASTERKEY_KID, readVaultConfig, writeVaultConfig, type CipherCombo, type VaultConfig } from './vault-config.js';
export { openVault, walkVault, type OpenedVault, type VaultEntry } from './vault-reader.js';
