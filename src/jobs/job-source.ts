import type { Readable } from 'node:stream';
import type { JobConfig } from '../config/index.js';
import { Excluder, walkSource, type SourceEntry, type WalkEvent } from '../engine/walk.js';
import type { Reporter } from '../report/log.js';
import { openRemoteSource, walkRemote } from '../sources/index.js';

/**
 * Where a job's files come from, walked and read the same way by the engine: folders on this
 * machine, or a tree on a server (FTPS, SFTP, S3) read in place over one connection.
 */
export interface JobSource {
  /** what the manifest records as the roots */
  roots: string[];
  walk(): AsyncIterable<WalkEvent>;
  /** a second walk beside the first, for progress totals; none for a remote source (one connection) */
  count?: () => AsyncIterable<WalkEvent>;
  /** a remote file's bytes; undefined for local folders, which the engine reads itself */
  read?: (e: SourceEntry) => Promise<Readable>;
  close(): Promise<void>;
}

/** The roots a job's manifests record, known without connecting. */
export function sourceRoots(job: JobConfig): string[] {
  const r = job.source.remote;
  if (!r) return job.source.paths;
  if (r.type === 's3') return [`s3://${r.bucket}/${r.prefix}`];
  return [`${r.type}://${r.username}@${r.host}:${r.port}${r.path}`];
}

/** Opens (for a remote source: logs in to) the job's source. */
export async function openJobSource(job: JobConfig, opts: { reporter: Reporter; env?: NodeJS.ProcessEnv | undefined }): Promise<JobSource> {
  const excluder = () => new Excluder(job.source.exclude);
  const roots = sourceRoots(job);
  const config = job.source.remote;
  if (!config) {
    const walk = () => walkSource(job.source.paths, excluder());
    return { roots, walk, count: walk, close: async () => undefined };
  }
  // the same knob as the targets' retries (tests make it short)
  const base = Number(opts.env?.CERBERUS_RETRY_BASE_MS);
  const source = openRemoteSource(config, {
    onRetry: (what, attempt, err) => opts.reporter.notice(`${roots[0]}: ${what} failed (${err.message}); retry ${attempt}`),
    ...(opts.env?.CERBERUS_RETRY_BASE_MS && Number.isFinite(base) && base >= 0 ? { baseDelayMs: base } : {}),
  });
  await source.connect();
  if (config.type === 'sftp' && config.hostKey === undefined && source.hostKeySeen) {
    opts.reporter.warn(`${roots[0]}: the server's host key is not pinned; add hostKey: ${source.hostKeySeen} to the source after checking it with the server's admin`);
  }
  return {
    roots,
    walk: () => walkRemote(source, excluder()),
    read: (e) => source.read(e.abs, 0),
    close: () => source.close(),
  };
}
