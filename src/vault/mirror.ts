import type { StateCache } from '../engine/state-cache.js';
import { walkVault, type OpenedVault, type VaultDamage, type VaultEntry } from '../formats/cryptomator/index.js';
import { openVaultAt } from './keys.js';
import { joinPath, type Backend } from '../storage/index.js';
import { VAULT_CONFIG } from './generation.js';
import { parseVaultState, stateParts, type VaultRecord, type VaultState } from './state.js';

/**
 * The mirror: one always-current vault at `<repo>/mirror/`, kept equal to the source by
 * `sync up` (like `rclone sync`). Unlike generations it is changed in place, and it may be
 * changed by the Cryptomator apps too, so every sync starts from what the target really
 * holds; the cache only says which of those files this machine wrote and what they held.
 */

export const MIRROR_DIR = 'mirror';
const CACHE_FILE = 'mirror.state';

export async function loadMirrorCache(cache: StateCache): Promise<VaultState | undefined> {
  const bytes = await cache.loadFile(CACHE_FILE);
  return bytes === undefined ? undefined : parseVaultState(bytes);
}

export async function saveMirrorCache(cache: StateCache, state: VaultState): Promise<void> {
  await cache.saveFile(CACHE_FILE, stateParts(state));
}

export async function mirrorExists(backend: Backend): Promise<boolean> {
  return (await backend.stat(joinPath(MIRROR_DIR, VAULT_CONFIG))) !== undefined;
}

export async function openMirror(backend: Backend, password: string, target: string): Promise<OpenedVault> {
  return openVaultAt(backend, MIRROR_DIR, password, target);
}

export interface RemoteMirror {
  vault: OpenedVault;
  state: VaultState;
  /** every entry, in walk order; empty unless asked for (sync up needs only the state) */
  entries: VaultEntry[];
  damage: VaultDamage[];
}

/**
 * Lists the mirror as the apps see it. A file keeps the cached cleartext hash only while its
 * node and ciphertext size are what this machine last wrote or read there.
 */
export async function readMirror(vault: OpenedVault, cached: VaultState | undefined, opts: { keepEntries?: boolean } = {}): Promise<RemoteMirror> {
  const damage: VaultDamage[] = [];
  const entries: VaultEntry[] = [];
  const records: Record<string, VaultRecord> = { '': { type: 'dir', node: '', shortened: false, dirId: '' } };
  // names this machine wrote need no decrypting: the node says which one it is
  const known = new Map<string, string>();
  for (const [p, r] of Object.entries(cached?.entries ?? {})) if (p !== '') known.set(r.node, p.slice(p.lastIndexOf('/') + 1));
  for await (const e of walkVault(vault, { onDamage: (d) => damage.push(d), knownName: (node) => known.get(node) })) {
    if (opts.keepEntries) entries.push(e);
    const shortened = e.node.endsWith('.c9s');
    if (e.type === 'dir') records[e.path] = { type: 'dir', node: e.node, shortened, dirId: e.dirId };
    else if (e.type === 'symlink') records[e.path] = { type: 'symlink', node: e.node, shortened, target: e.target };
    else {
      const was = cached?.entries[e.path];
      const same = was?.type === 'file' && was.node === e.node && was.ctSize === e.ctSize && was.sha256 !== undefined;
      records[e.path] = { type: 'file', node: e.node, shortened, size: e.size, ctSize: e.ctSize, ...(same ? { sha256: was.sha256 } : {}) };
    }
  }
  return { vault, state: { entries: records }, entries, damage };
}
