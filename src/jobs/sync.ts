import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CryptomatorEncryption, JobConfig, TargetConfig } from '../config/index.js';
import { CerberusError, ioError } from '../errors.js';
import { hashTap, makeDirs, sha256OfFile } from '../fsutil.js';
import { generationId } from '../engine/levels.js';
import { matchesStat, StateCache } from '../engine/state-cache.js';
import { Excluder, walkSource, type SourceEntry } from '../engine/walk.js';
import { writeVaultConfig, type CryptomatorKeys, type OpenedVault, type VaultEntry } from '../formats/cryptomator/index.js';
import { requireDescriptor } from '../repository/descriptor.js';
import { putBuffer } from '../repository/io.js';
import { acquireLock, type HeldLock } from '../repository/lock.js';
import { joinPath, type Backend } from '../storage/index.js';
import type { OpenTarget } from '../storage/open.js';
import type { Reporter } from '../report/log.js';
import { formatBytes } from '../report/format.js';
import { pickTarget } from './restore.js';
import { applyToVault, type VaultChanges } from '../vault/apply.js';
import { VAULT_CONFIG } from '../vault/generation.js';
import { MASTERKEY_FILE, repositoryKeys } from '../vault/keys.js';
import { loadMirrorCache, MIRROR_DIR, mirrorExists, openMirror, readMirror, saveMirrorCache } from '../vault/mirror.js';
import { parentOf, vaultKey, type VaultRecord, type VaultState } from '../vault/state.js';

/**
 * Mirror mode: one Cryptomator vault per target, at `<repo>/mirror/`, that always equals the
 * source (poof!-style, like `rclone sync`). `sync up` changes the vault, `sync down` a local
 * folder; both are destructive on their far side, so mass deletions need --yes.
 */

export interface SyncOptions {
  dryRun: boolean;
  /** allow deleting more than guards.maxShrink of the files */
  yes: boolean;
  now: Date;
  stateDir: string;
  reporter: Reporter;
  open: OpenTarget;
  /** one target by name; default every target (up) or the first (down) */
  target?: string;
}

export interface SyncTargetResult {
  target: string;
  status: 'synced' | 'dry-run';
  changes: VaultChanges;
  /** bytes encrypted and uploaded, or downloaded and decrypted */
  bytes: number;
  problems: string[];
}

export interface SyncResult {
  job: string;
  direction: 'up' | 'down';
  targets: SyncTargetResult[];
}

const PARALLEL = 8;

export function cryptomatorOf(job: JobConfig, command: string): CryptomatorEncryption {
  if (job.encryption.kind !== 'cryptomator') {
    throw new CerberusError('CONFIG', `${command} works on Cryptomator vaults, but job ${job.name} uses ${job.encryption.kind}`, {
      hint: 'set encryption: { kind: cryptomator, password: ${VAULT_PASSWORD} } for a mirror job',
    });
  }
  // a mirror is of folders: an empty `paths` would mirror nothing, and could empty the vault
  if (job.source.databases.length > 0) {
    throw new CerberusError('CONFIG', `${command} mirrors folders, but job ${job.name} has source.databases, which only backup dumps`, {
      hint: 'back the databases up with `cerberus backup`, in a job of their own if the mirror job needs none',
    });
  }
  return job.encryption;
}

function pickTargets(job: JobConfig, name: string | undefined, all: boolean): TargetConfig[] {
  return name === undefined && all ? job.targets : [pickTarget(job, name)];
}

/** The share of files a step would delete, refused above guards.maxShrink unless --yes. */
function deleteGuard(job: JobConfig, opts: SyncOptions, files: number, of: number, where: string): void {
  if (opts.yes || files === 0) return;
  const share = of === 0 ? 1 : files / of;
  if (share <= job.guards.maxShrink) return;
  const msg = `${where}: sync would delete ${files} of ${of} files (${Math.round(share * 100)} %), more than guards.maxShrink (${Math.round(job.guards.maxShrink * 100)} %)`;
  if (opts.dryRun) {
    opts.reporter.warn(`${msg}; the real run needs --yes`);
    return;
  }
  throw new CerberusError('GUARD', msg, { hint: 'check the source is complete; add --yes to delete them anyway' });
}

interface Opened {
  backend: Backend;
  cache: StateCache;
  lock: HeldLock | undefined;
}

async function openTarget(job: JobConfig, target: TargetConfig, opts: SyncOptions, command: string): Promise<Opened> {
  cryptomatorOf(job, command);
  const backend = opts.open(target);
  const descriptor = await requireDescriptor(backend, target.name, 'cryptomator');
  const lock = opts.dryRun ? undefined : await acquireLock(backend, `cerberus ${command} --job ${job.name}`, (m) => opts.reporter.notice(m));
  return { backend, cache: new StateCache(opts.stateDir, job.name, descriptor.id), lock };
}

/** `sync up`: the mirror vault on each target becomes equal to the source. */
export async function runSyncUp(job: JobConfig, opts: SyncOptions): Promise<SyncResult> {
  const enc = cryptomatorOf(job, 'sync up');
  const out: SyncTargetResult[] = [];
  for (const target of pickTargets(job, opts.target, true)) {
    const { backend, cache, lock } = await openTarget(job, target, opts, 'sync up');
    try {
      // read and parsed while scrypt unlocks the key and the vault is listed; the empty catch
      // only marks the promise handled, its failure still surfaces where it is awaited
      const hashes = cache.loadHashes();
      const mirrorCache = loadMirrorCache(cache);
      mirrorCache.catch(() => undefined);
      const exists = await mirrorExists(backend);
      // an existing mirror opens with its own key files; a new one gets the repository's
      let keys: CryptomatorKeys;
      let masterkeyText: string | undefined;
      let vault: OpenedVault | undefined;
      if (exists) {
        vault = await openMirror(backend, enc.password, target.name);
        keys = vault.keys;
      } else {
        ({ keys, masterkeyText } = await repositoryKeys(backend, enc.password, target.name));
      }
      opts.reporter.phase(`${opts.dryRun ? '[dry run] ' : ''}sync up ${job.name} → ${target.name} (${backend.description}/${MIRROR_DIR})${exists ? '' : ': new vault'}`);
      let previous: VaultState | undefined;
      const problems: string[] = [];
      if (vault) {
        const remote = await readMirror(vault, await mirrorCache);
        for (const d of remote.damage) {
          const msg = `mirror on ${target.name}: left alone a damaged entry ${d.object} in /${d.dir}: ${d.problem}`;
          problems.push(msg);
          opts.reporter.warn(msg);
        }
        previous = remote.state;
      }
      const applied = await applyToVault({
        backend,
        root: MIRROR_DIR,
        keys,
        previous,
        source: job.source,
        oldHashes: await hashes,
        dryRun: opts.dryRun,
        reporter: opts.reporter,
        parallel: PARALLEL,
        holder: generationId(opts.now),
        manifest: false,
        beforeDeletes: ({ gone, previousFiles, rootsMissing }) => {
          if (rootsMissing.length > 0 && gone.length > 0) {
            throw new CerberusError('GUARD', `source ${rootsMissing.join(', ')} is missing, so sync up deletes nothing`, {
              hint: 'mount or restore the source folder, or fix source.paths',
            });
          }
          deleteGuard(job, opts, gone.filter((g) => g.type === 'file').length, previousFiles, `mirror on ${target.name}`);
        },
      });
      problems.push(...applied.problems);
      if (!opts.dryRun) {
        // the vault's files were put with deferSync; the cache must not claim what a crash could lose
        await backend.flush?.();
        if (masterkeyText !== undefined) {
          // the vault's own files last: until they exist, the folder is no vault to anyone
          await putBuffer(backend, joinPath(MIRROR_DIR, MASTERKEY_FILE), Buffer.from(masterkeyText));
          await putBuffer(backend, joinPath(MIRROR_DIR, VAULT_CONFIG), Buffer.from(writeVaultConfig(keys)));
        }
        const c = applied.changes;
        // nothing changed: the caches already say exactly this, and rewriting them is most of a quiet run's writes
        if (!exists || c.added.length + c.changed.length + c.deleted.length > 0) {
          await saveMirrorCache(cache, applied.state);
          await cache.saveHashes(applied.hashes);
        }
      }
      const c = applied.changes;
      opts.reporter.info(
        `${target.name}: ${c.added.length} added, ${c.changed.length} changed, ${c.deleted.length} deleted; ${formatBytes(applied.stats.storedBytes)} encrypted and uploaded`,
      );
      out.push({ target: target.name, status: opts.dryRun ? 'dry-run' : 'synced', changes: c, bytes: applied.stats.storedBytes, problems });
    } finally {
      await lock?.release();
    }
  }
  return { job: job.name, direction: 'up', targets: out };
}

export interface SyncDownOptions extends SyncOptions {
  /** the local folder that becomes equal to the mirror */
  to: string;
  /** only this top-level folder of the vault (a job with several source paths) */
  prefix?: string;
}

interface LocalEntry {
  entry: SourceEntry;
}

/** `sync down`: a local folder becomes equal to the mirror vault; destructive there. */
export async function runSyncDown(job: JobConfig, opts: SyncDownOptions): Promise<SyncResult> {
  const enc = cryptomatorOf(job, 'sync down');
  const [target] = pickTargets(job, opts.target, false) as [TargetConfig];
  const { backend, cache, lock } = await openTarget(job, target, opts, 'sync down');
  try {
    if (!(await mirrorExists(backend))) {
      throw new CerberusError('NOT_FOUND', `target ${target.name} holds no mirror vault yet`, { hint: 'run `cerberus sync up` first' });
    }
    const to = path.resolve(opts.to);
    opts.reporter.phase(`${opts.dryRun ? '[dry run] ' : ''}sync down ${job.name}: ${target.name} (${backend.description}/${MIRROR_DIR}) → ${to}`);
    const cached = await loadMirrorCache(cache);
    const remote = await readMirror(await openMirror(backend, enc.password, target.name), cached, { keepEntries: true });
    if (remote.damage.length > 0) {
      const d = remote.damage[0]!;
      throw new CerberusError('INTEGRITY', `the mirror on ${target.name} has ${remote.damage.length} damaged entries, e.g. ${d.object} in /${d.dir}: ${d.problem}`, {
        hint: 'nothing was changed locally; run `cerberus sync up` from the source, or repair the vault in Cryptomator',
      });
    }
    const prefix = opts.prefix === undefined ? '' : vaultKey(opts.prefix) + '/';
    const wanted = new Map<string, VaultEntry>();
    for (const e of remote.entries) {
      if (prefix === '' || e.path.startsWith(prefix)) wanted.set(e.path.slice(prefix.length), e);
    }
    if (prefix !== '' && !remote.entries.some((e) => e.path === prefix.slice(0, -1) && e.type === 'dir')) {
      throw new CerberusError('NOT_FOUND', `the mirror on ${target.name} has no folder ${opts.prefix}`);
    }

    const local = new Map<string, LocalEntry>();
    const exists = await fsp.stat(to).then((s) => s.isDirectory(), () => false);
    if (exists) {
      for await (const ev of walkSource([to], new Excluder([]))) {
        if (ev.kind === 'error') throw ioError(ev.error, `cannot read ${ev.abs}`);
        if (ev.kind === 'entry' || ev.kind === 'enter') local.set(vaultKey(ev.entry.path), { entry: ev.entry });
      }
    }
    const oldHashes = await cache.loadHashes();
    const localSha = async (e: SourceEntry): Promise<string> => {
      const r = oldHashes.get(e.abs);
      return matchesStat(r, e) ? r.sha256 : sha256OfFile(e.abs);
    };

    const changes: VaultChanges = { added: [], changed: [], deleted: [] };
    const records: Record<string, VaultRecord> = { ...(cached?.entries ?? {}) };
    let bytes = 0;
    // plan, then guard, then act: nothing is deleted before the whole picture is known
    const gone = [...local.keys()].filter((k) => !wanted.has(k)).sort();
    const localFiles = [...local.values()].filter((l) => l.entry.type === 'file').length;
    deleteGuard(job, opts, gone.filter((k) => local.get(k)!.entry.type === 'file').length, localFiles, to);

    if (!opts.dryRun) await makeDirs(to);
    /** Downloads one file (to a temporary name, then renamed); false when it equals `compareTo`. */
    const writeFile = async (rel: string, e: Extract<VaultEntry, { type: 'file' }>, compareTo?: string): Promise<boolean> => {
      const dest = path.join(to, rel);
      const tmp = path.join(path.dirname(dest), `.cerberus-sync-${randomBytes(6).toString('hex')}.tmp`);
      const h = createHash('sha256');
      const tap = hashTap(h, (n) => (bytes += n));
      try {
        // a dry run still reads: only then does it know what the real run would change
        const sink = opts.dryRun ? new Writable({ write: (_c, _e, cb) => cb() }) : fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
        await pipeline(await e.open(), tap, sink);
        const sha = h.digest('hex');
        records[e.path] = { type: 'file', node: e.node, shortened: e.node.endsWith('.c9s'), size: e.size, ctSize: e.ctSize, sha256: sha };
        if (compareTo !== undefined && sha === compareTo) {
          if (!opts.dryRun) await fsp.rm(tmp, { force: true });
          return false;
        }
        if (!opts.dryRun) {
          await fsp.rm(dest, { recursive: true, force: true });
          await fsp.rename(tmp, dest);
        }
        return true;
      } catch (err) {
        await fsp.rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
    };

    for (const [rel, e] of [...wanted.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (rel === '') continue;
      const have = local.get(rel)?.entry;
      const dest = path.join(to, rel);
      if (e.type === 'dir') {
        if (have?.type === 'dir') continue;
        (have ? changes.changed : changes.added).push(rel);
        if (!opts.dryRun) {
          if (have) await fsp.rm(dest, { force: true });
          await fsp.mkdir(dest, { recursive: true });
        }
      } else if (e.type === 'symlink') {
        if (have?.type === 'symlink' && have.target === e.target) continue;
        (have ? changes.changed : changes.added).push(rel);
        if (!opts.dryRun) {
          await fsp.rm(dest, { recursive: true, force: true });
          await fsp.symlink(e.target, dest);
        }
      } else {
        if (have?.type === 'file' && have.size === e.size) {
          const sha = await localSha(have);
          const rec = cached?.entries[e.path];
          // a file this machine last saw at this node and size, still holding what it held then
          if (rec?.type === 'file' && rec.node === e.node && rec.ctSize === e.ctSize && rec.sha256 === sha) continue;
          if (await writeFile(rel, e, sha)) changes.changed.push(rel);
          continue;
        }
        (have ? changes.changed : changes.added).push(rel);
        if (!opts.dryRun && have && have.type !== 'file') await fsp.rm(dest, { recursive: true, force: true });
        await writeFile(rel, e);
      }
    }
    // deepest first, and nothing below a folder that is itself going
    const goneSet = new Set(gone);
    for (const rel of gone.reverse()) {
      changes.deleted.push(rel);
      if (opts.dryRun || goneSet.has(parentOf(rel))) continue;
      await fsp.rm(path.join(to, local.get(rel)!.entry.path), { recursive: true, force: true });
    }
    changes.deleted.reverse();
    if (!opts.dryRun) await saveMirrorCache(cache, { entries: records });
    opts.reporter.info(`${to}: ${changes.added.length} added, ${changes.changed.length} changed, ${changes.deleted.length} deleted; ${formatBytes(bytes)} downloaded`);
    return { job: job.name, direction: 'down', targets: [{ target: target.name, status: opts.dryRun ? 'dry-run' : 'synced', changes, bytes, problems: [] }] };
  } finally {
    await lock?.release();
  }
}

