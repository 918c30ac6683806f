import { z } from 'zod';

/**
 * What cerberus knows about a vault it wrote: for each cleartext path (NFC, as the vault
 * names it) where its node lives, the dirId of each folder, and what the file held. The
 * state cache keeps one per generation, so the next generation re-encrypts only changes.
 */

const record = z.object({
  type: z.enum(['file', 'dir', 'symlink']),
  /** vault-relative path of the node: `d/XX/YYY…/<name>.c9r` or `….c9s` */
  node: z.string(),
  shortened: z.boolean(),
  dirId: z.string().optional(),
  target: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  /** ciphertext bytes on the target */
  ctSize: z.number().int().nonnegative().optional(),
  /** cleartext sha256 */
  sha256: z.string().optional(),
});
export type VaultRecord = z.infer<typeof record>;

export const vaultStateSchema = z.object({
  format: z.literal(1),
  /** cleartext path → record */
  entries: z.record(z.string(), record),
  /** vault-relative path → sha256 of every object under `d/`; absent for mirrors */
  objects: z.record(z.string(), z.string()).optional(),
});
export type VaultState = z.infer<typeof vaultStateSchema>;

export function parseVaultState(text: string): VaultState | undefined {
  try {
    const parsed = vaultStateSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined; // a damaged cache is a missing cache
  }
}

/** The key a cleartext path has in a vault: Cryptomator names are NFC. */
export const vaultKey = (p: string): string => p.normalize('NFC');

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}
