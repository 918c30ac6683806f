import { describeError } from '../errors.js';
import { sha256OfStream } from '../fsutil.js';
import type { ManifestEntry } from '../engine/manifest.js';
import { walkVault } from '../formats/cryptomator/index.js';
import { SUMS, type Generation } from '../repository/generations.js';
import { hashObject } from '../repository/io.js';
import { joinPath, type Backend } from '../storage/index.js';
import { readVaultManifest, readVaultSums, requireVaultFiles, VAULT_DATA, VAULT_SUMS } from './generation.js';
import { openVaultAt } from './keys.js';
import { vaultKey } from './state.js';

/**
 * Checks one Cryptomator generation. Without a password: every file against SHA256SUMS and
 * VAULT.SHA256SUMS, and nothing under `d/` that they do not list. With it: also walks the
 * vault as the Cryptomator apps do, decrypts every file and compares all with the manifest.
 */
export async function verifyVaultGeneration(
  backend: Backend,
  g: Generation,
  password: string | undefined,
  fail: (problem: string) => void,
): Promise<void> {
  requireVaultFiles(backend, g);
  for (const [file, want] of g.sums) {
    const { sha256 } = await hashObject(backend, joinPath(g.dir, file));
    if (sha256 !== want) fail(`${file} does not match ${SUMS}`);
  }
  const sums = await readVaultSums(backend, g);
  const seen = new Set<string>();
  for await (const file of listFiles(backend, g.dir, VAULT_DATA)) {
    seen.add(file);
    const want = sums.get(file);
    if (want === undefined) {
      fail(`${file} is not listed in ${VAULT_SUMS}`);
      continue;
    }
    const { sha256 } = await hashObject(backend, joinPath(g.dir, file));
    if (sha256 !== want) fail(`${file} does not match ${VAULT_SUMS}`);
  }
  const missing = [...sums.keys()].filter((f) => !seen.has(f));
  if (missing.length > 0) fail(`${missing.length} vault files listed in ${VAULT_SUMS} are missing, e.g. ${missing[0]}`);
  if (password !== undefined) await verifyVaultContent(backend, g, password, fail);
}

/** Every file under `dir` of the generation, depth-first, as paths relative to the generation. */
async function* listFiles(backend: Backend, base: string, dir: string): AsyncGenerator<string> {
  for (const e of await backend.list(joinPath(base, dir))) {
    const p = `${dir}/${e.name}`;
    if (e.isDir) yield* listFiles(backend, base, p);
    else yield p;
  }
}

async function verifyVaultContent(backend: Backend, g: Generation, password: string, fail: (problem: string) => void): Promise<void> {
  const vault = await openVaultAt(backend, g.dir, password, backend.description);
  const manifest = await readVaultManifest(backend, g, vault.keys);
  const expected = new Map<string, ManifestEntry>(manifest.entries.map((e) => [vaultKey(e.path), e]));
  const found = new Set<string>();
  let bad = 0;
  const report = (p: string) => {
    if (bad++ < 20) fail(p);
  };
  for await (const e of walkVault(vault, { onDamage: (d) => report(`damaged vault entry ${d.object} in /${d.dir}: ${d.problem}`) })) {
    found.add(e.path);
    const want = expected.get(e.path);
    if (!want) {
      report(`${e.path} is in the vault but not in the manifest`);
      continue;
    }
    if (want.type !== e.type) {
      report(`${e.path} is a ${e.type} in the vault but a ${want.type} in the manifest`);
    } else if (e.type === 'symlink' && want.type === 'symlink' && e.target !== want.target) {
      report(`symlink ${e.path} points elsewhere than the manifest says`);
    } else if (e.type === 'file' && want.type === 'file') {
      try {
        if ((await sha256OfStream(await e.open())) !== want.sha256) report(`${e.path} does not match the manifest's sha256`);
      } catch (err) {
        report(describeError(err));
      }
    }
  }
  const missing = [...expected.keys()].filter((k) => !found.has(k));
  if (missing.length > 0) report(`${missing.length} entries of the manifest are missing from the vault, e.g. ${missing[0]}`);
  if (bad > 20) fail(`… and ${bad - 20} more problems`);
}
