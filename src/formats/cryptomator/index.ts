/**
 * Cryptomator vault format 8 (cipher combos SIV_GCM and SIV_CTRMAC): keys, vault config,
 * names, file content, reading a vault over any store, and where a writer puts things. The public face of this folder.
 */
export { CLEARTEXT_CHUNK_SIZE, ContentSealer, DecryptStream, EncryptStream, ciphertextSize, cleartextSize, decryptBuffer, decryptPieces, encryptBuffer } from './content.js';
export { MASTERKEY_VERSION, createMasterkey, parseMasterkeyFile, unlockMasterkey, type CryptomatorKeys, type MasterkeyFile } from './masterkey.js';
export { DEFAULT_SHORTENING_THRESHOLD, ROOT_DIR_ID, decryptName, dirPath, encryptName, shortenedName, vaultNodeName, type VaultNode } from './names.js';
export { MASTERKEY_KID, readVaultConfig, writeVaultConfig, type CipherCombo, type VaultConfig } from './vault-config.js';
export { SMALL_FILE_LIMIT, openVault, walkVault, type OpenedVault, type VaultDamage, type VaultEntry, type VaultStore } from './vault-reader.js';
export { childNode, dirFolder, dirNodeObjects, fileContentPath, newDirId, symlinkNodeObjects, type ChildNode, type VaultObject } from './layout.js';
export { SEAL_BUFFER, SEAL_PIECE, SealEngine, type Digests, type FileSealer } from './seal-engine.js';
