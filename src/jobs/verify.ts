import { createHash } from 'node:crypto';
import type { JobConfig, TargetConfig } from '../config/index.js';
import { describeError } from '../errors.js';
import { RESERVED_DIR } from '../engine/walk.js';
import type { FileEntry } from '../engine/manifest.js';
import { decryptStream, type Opening } from '../formats/openpgp/message.js';
import { readTar } from '../formats/tar.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { verifyPlainTree } from './stage-backup.js';
import { listGenerations, SUMS, type Generation } from '../repository/generations.js';
import { generationFiles, readManifest, volumeStream } from '../repository/read.js';
import { hashObject } from '../repository/io.js';
import { joinPath, type Backend } from '../storage/backend.js';
import type { OpenTarget } from '../storage/open.js';
import type { Reporter } from '../report/log.js';
import type { PhaseLog } from '../report/phases.js';
import { verifyVaultGeneration } from '../vault/verify.js';

export interface VerifyProblem {
  target: string;
  generation: string;
  problem: string;
}

export interface VerifyResult {
  checked: number;
  problems: VerifyProblem[];
  leftovers: string[];
}

/**
 * Quick: structure, chains, and every file against SHA256SUMS (no key). Full: also decrypts
 * every generation and checks every file it holds against the manifest's sha256.
 */
export async function runVerify(
  job: JobConfig,
  opts: { full: boolean; opening?: Opening; reporter: Reporter; open: OpenTarget; phases?: PhaseLog },
): Promise<VerifyResult> {
  const password = opts.full && job.encryption.kind === 'cryptomator' ? job.encryption.password : undefined;
  const result: VerifyResult = { checked: 0, problems: [], leftovers: [] };
  for (const target of job.targets) {
    const started = Date.now();
    const before = result.problems.length;
    const step = opts.full ? 'verify --full' : 'verify';
    try {
      await verifyTarget(job, target, opts, password, result);
    } catch (err) {
      opts.phases?.record(step, target.name, Date.now() - started, describeError(err));
      throw err;
    }
    const found = result.problems.slice(before).map((p) => `${p.generation}: ${p.problem}`);
    opts.phases?.record(step, target.name, Date.now() - started, found.length > 0 ? found.join('; ') : undefined);
  }
  return result;
}

async function verifyTarget(
  job: JobConfig,
  target: TargetConfig,
  opts: { full: boolean; opening?: Opening; reporter: Reporter; open: OpenTarget },
  password: string | undefined,
  result: VerifyResult,
): Promise<void> {
  const backend = opts.open(target);
  await requireDescriptor(backend, target.name, kindFor(job, target));
  // a file linked into many plain generations is hashed once
  const inodes = new Map<string, string>();
  const listing = await listGenerations(backend);
  const plain = kindFor(job, target) === 'plain';
  opts.reporter.phase(`verify ${target.name}: ${listing.committed.length} restore points${opts.full ? (plain ? ', hashing every file' : ', decrypting everything') : ''}`);
  result.leftovers.push(...listing.leftovers.map((l) => `${target.name}: ${l.dir} (${l.why})`));
  for (const d of listing.damaged) {
    result.problems.push({ target: target.name, generation: d.dir, problem: d.why });
    opts.reporter.warn(`${target.name} ${d.dir}: ${d.why}`);
  }
  const ids = new Map(listing.committed.map((g) => [g.id, g]));
  for (const g of listing.committed) {
    const name = `${g.level}/${g.id}`;
    const fail = (problem: string) => {
      result.problems.push({ target: target.name, generation: name, problem });
      opts.reporter.warn(`${target.name} ${name}: ${problem}`);
    };
    result.checked++;
    try {
      for (const c of g.info.chain) if (!ids.has(c)) fail(`its chain needs ${c}, which is missing`);
      if (g.parent && !ids.has(g.parent)) fail(`its parent ${g.parent} is missing`);
      const before = result.problems.length;
      if (g.info.kind === 'cryptomator') {
        await verifyVaultGeneration(backend, g, password, fail);
      } else if (g.info.kind === 'plain') {
        for (const [file, want] of g.sums) {
          const { sha256: got } = await hashObject(backend, joinPath(g.dir, file));
          if (got !== want) fail(`${file} does not match SHA256SUMS`);
        }
        if (opts.full && target.type === 'local') await verifyPlainTree(backend, target.path, g, target.name, inodes, fail);
      } else {
        const files = await generationFiles(backend, g);
        for (const [file, want] of files.sums) {
          const { sha256: got } = await hashObject(backend, joinPath(g.dir, file));
          if (got !== want) fail(`${file} does not match SHA256SUMS`);
        }
        if (opts.full && opts.opening) await verifyContent(backend, g, ids, opts.opening, fail);
      }
      if (result.problems.length === before) opts.reporter.info(`${name}: ok`);
    } catch (err) {
      // verify takes no lock: a prune may remove a generation under it, which is no damage
      if (!(await backend.stat(joinPath(g.dir, SUMS)))) opts.reporter.info(`${name}: removed while being verified`);
      else fail(describeError(err));
    }
  }
}

async function verifyContent(
  backend: Backend,
  g: Generation,
  ids: Map<string, Generation>,
  opening: Opening,
  fail: (p: string) => void,
): Promise<void> {
  const files = await generationFiles(backend, g);
  const manifest = await readManifest(backend, g, files, opening);
  for (const e of manifest.entries) {
    if (e.type === 'file' && !ids.has(e.holder)) fail(`${e.path} is held by ${e.holder}, which is missing`);
  }
  const held = new Map<string, FileEntry>();
  for (const e of manifest.entries) if (e.type === 'file' && e.holder === g.id) held.set(e.path, e);
  const ok = new Set<string>();
  const plain = await decryptStream(volumeStream(backend, g, files), opening, `${g.level}/${g.id}`);
  await readTar(plain, async (entry) => {
    if (entry.path.startsWith(RESERVED_DIR + '/')) return;
    const want = held.get(entry.path);
    if (!want || entry.type !== 'file') return;
    const h = createHash('sha256');
    for await (const c of entry.body) h.update(c as Buffer);
    if (h.digest('hex') === want.sha256) ok.add(entry.path);
    else ok.delete(entry.path);
  });
  const bad = [...held.keys()].filter((p) => !ok.has(p));
  if (bad.length > 0) fail(`${bad.length} files do not match the manifest, e.g. ${bad[0]}`);
}

