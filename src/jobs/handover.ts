import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { Config, JobConfig } from '../config/index.js';
import { CerberusError, describeError, ioError } from '../errors.js';
import { sha256OfFile, sha256OfStream } from '../fsutil.js';
import { StateCache } from '../engine/state-cache.js';
import { Excluder, walkSource, type SourceEntry } from '../engine/walk.js';
import { requireDescriptor } from '../repository/descriptor.js';
import { mirrorExists, openMirror, readMirror } from '../vault/mirror.js';
import { vaultKey } from '../vault/state.js';
import { cryptomatorOf, runSyncDown, runSyncUp, type SyncOptions, type SyncResult } from './sync.js';

/**
 * `upload` and `download`: handing a machine over. `upload` mirrors the source, proves the
 * mirror equals it by decrypting every file, and only then removes the local copy and
 * cerberus's own config and state for the job. `download` brings the mirror back.
 */

export interface UploadResult {
  sync: SyncResult;
  verified: { files: number; targets: string[] };
  removed: string[];
}

/** Compares the mirror with the source, decrypting every file: a list of differences. */
export async function verifyMirrorAgainstSource(job: JobConfig, opts: SyncOptions, targetName: string): Promise<{ problems: string[]; files: number }> {
  const enc = cryptomatorOf(job, 'upload');
  const target = job.targets.find((t) => t.name === targetName)!;
  const backend = opts.open(target);
  await requireDescriptor(backend, target.name, 'cryptomator');
  if (!(await mirrorExists(backend))) return { problems: [`target ${target.name} holds no mirror vault`], files: 0 };
  opts.reporter.phase(`verify the mirror on ${target.name} against ${job.source.paths.join(', ')}, decrypting every file`);
  const source = new Map<string, SourceEntry>();
  for await (const ev of walkSource(job.source.paths, new Excluder(job.source.exclude))) {
    if (ev.kind === 'entry' || ev.kind === 'enter') source.set(vaultKey(ev.entry.path), ev.entry);
    else if (ev.kind === 'error') return { problems: [`cannot read ${ev.abs}: ${ev.error.code ?? ev.error.message}`], files: 0 };
    else if (ev.kind === 'missing-root') return { problems: [`source ${ev.abs} is missing`], files: 0 };
  }
  const remote = await readMirror(await openMirror(backend, enc.password, target.name), undefined, { keepEntries: true });
  const problems = remote.damage.map((d) => `damaged vault entry ${d.object} in /${d.dir}: ${d.problem}`);
  const seen = new Set<string>();
  let files = 0;
  for (const e of remote.entries) {
    seen.add(e.path);
    const s = source.get(e.path);
    if (!s) {
      problems.push(`${e.path} is in the mirror but not in the source`);
      continue;
    }
    if (s.type !== e.type) {
      problems.push(`${e.path} is a ${e.type} in the mirror but a ${s.type} in the source`);
    } else if (e.type === 'symlink' && e.target !== s.target) {
      problems.push(`symlink ${e.path} points elsewhere in the mirror`);
    } else if (e.type === 'file') {
      try {
        if ((await sha256OfStream(await e.open())) !== (await sha256OfFile(s.abs))) problems.push(`${e.path} differs between the mirror and the source`);
        else files++;
      } catch (err) {
        problems.push(describeError(err));
      }
    }
  }
  for (const k of source.keys()) if (!seen.has(k)) problems.push(`${k} is in the source but not in the mirror`);
  return { problems, files };
}

export async function runUpload(config: Config, job: JobConfig, opts: SyncOptions): Promise<UploadResult> {
  cryptomatorOf(job, 'upload');
  if (opts.dryRun) throw new CerberusError('USAGE', 'upload has no --dry-run', { hint: 'run `cerberus sync up --dry-run` to see what it would send' });
  const sync = await runSyncUp(job, opts);
  const failed = sync.targets.filter((t) => t.problems.length > 0);
  if (failed.length > 0) {
    throw new CerberusError('INTEGRITY', `sync up reported problems on ${failed.map((t) => t.target).join(', ')} (${failed[0]!.problems[0]}); nothing was removed`, {
      hint: 'fix them and run upload again',
    });
  }
  const targets = sync.targets.map((t) => t.target);
  let files = 0;
  for (const t of targets) {
    const v = await verifyMirrorAgainstSource(job, opts, t);
    if (v.problems.length > 0) {
      for (const p of v.problems.slice(0, 20)) opts.reporter.warn(`${t}: ${p}`);
      throw new CerberusError('INTEGRITY', `the mirror on ${t} does not match the source (${v.problems.length} problems, e.g. ${v.problems[0]}); nothing was removed`, {
        hint: 'run `cerberus sync up` again, then upload',
      });
    }
    files = v.files;
  }
  opts.reporter.phase(`the mirror equals the source on ${targets.join(', ')}; removing the local copy`);
  const removed: string[] = [];
  for (const p of job.source.paths) {
    await fsp.rm(p, { recursive: true, force: true }).catch((err: unknown) => {
      throw ioError(err, `cannot remove ${p}`);
    });
    removed.push(p);
  }
  const jobState = new StateCache(opts.stateDir, job.name, 'none').jobDir;
  await fsp.rm(jobState, { recursive: true, force: true });
  removed.push(jobState);
  removed.push(await removeJobFromConfig(config, job.name));
  for (const r of removed) opts.reporter.info(`removed ${r}`);
  return { sync, verified: { files, targets }, removed };
}

/** Removes the job from its config file, or the file itself when it holds only this job. */
async function removeJobFromConfig(config: Config, name: string): Promise<string> {
  if (config.jobs.size <= 1) {
    await fsp.rm(config.file, { force: true });
    return config.file;
  }
  const doc = parseDocument(await fsp.readFile(config.file, 'utf8'));
  doc.deleteIn(['jobs', name]);
  const tmp = `${config.file}.cerberus-tmp`;
  await fsp.writeFile(tmp, doc.toString());
  await fsp.rename(tmp, config.file);
  return `job ${name} from ${config.file}`;
}

/** `download`: `sync down` into the job's source path(s). */
export async function runDownload(job: JobConfig, opts: SyncOptions): Promise<SyncResult[]> {
  cryptomatorOf(job, 'download');
  const single = job.source.paths.length === 1;
  const out: SyncResult[] = [];
  for (const p of job.source.paths) {
    out.push(await runSyncDown(job, { ...opts, to: p, ...(single ? {} : { prefix: path.basename(p) }) }));
  }
  return out;
}
