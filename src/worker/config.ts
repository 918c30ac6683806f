import path from 'node:path';
import { z } from 'zod';
import type { OpenpgpEncryption, S3TargetConfig, TargetConfig } from '../config/index.js';
import { readDocument } from '../config/load.js';
import { count, makeSchema, orDefault, pathSchema, unit, type SchemaContext } from '../config/schema.js';
import { parseDuration } from '../config/units.js';
import type { PathKey } from '../config/yaml-doc.js';
import { defaultStateDir } from '../engine/state-cache.js';

/** Where the application's tables are: PostgreSQL by URL, or a SQLite file. */
export type DatabaseConfig = { kind: 'postgres'; url: string } | { kind: 'sqlite'; file: string };

/** The `worker:` section of a worker config file, validated, every default filled in. */
export interface WorkerConfig {
  /** absolute */
  file: string;
  database: DatabaseConfig;
  /** by the value of the Storage column */
  storages: Map<string, S3TargetConfig>;
  target: TargetConfig;
  encryption: OpenpgpEncryption | undefined;
  pollIntervalMs: number;
  deleteAfterMs: number;
  /** files in flight at once */
  concurrency: number;
  /** the newest N stored versions of a live file are kept however old */
  keepVersions: number;
  /** absolute; the worker's own SQLite state and its spool */
  stateDir: string;
  health: { maxBehindRows: number; maxBehindMs: number };
}

const DEFAULT_CONCURRENCY = 4;

function makeWorkerSchema(ctx: SchemaContext, raw: unknown, env: NodeJS.ProcessEnv) {
  const { parts, partKeys } = makeSchema(ctx);
  const section = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>).worker : undefined;
  const given = section !== null && typeof section === 'object' ? Number((section as Record<string, unknown>).concurrency) : Number.NaN;
  // a bad value is reported once, at worker.concurrency
  const rawConcurrency = Number.isSafeInteger(given) && given >= 1 ? given : undefined;
  const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

  const database = z.string({ error: 'needs the application database: postgres://… or sqlite:path, e.g. database: ${DB_URL}' }).transform((u, zctx): DatabaseConfig => {
    if (/^postgres(ql)?:\/\//i.test(u)) {
      try {
        new URL(u);
      } catch {
        // the URL is never quoted: it holds the password
        zctx.addIssue({ code: 'custom', message: 'is not a valid postgres:// URL (percent-encode special characters of the user and password)' });
        return z.NEVER;
      }
      return { kind: 'postgres', url: u };
    }
    const sqlite = /^sqlite:(?:\/\/(?=\/))?(.+)$/i.exec(u);
    if (sqlite) return { kind: 'sqlite', file: path.resolve(ctx.dir, sqlite[1]!) };
    zctx.addIssue({ code: 'custom', message: 'must start with postgres:// (or postgresql://) or sqlite: (e.g. sqlite:data/app.db)' });
    return z.NEVER;
  });

  // a storage is an S3 target without a name: its key names it
  const storage = z.preprocess((v) => (isObject(v) && v.name === undefined ? { name: 'storage', ...v } : v), parts.s3Target);
  const storages = z
    .record(z.string().min(1), storage)
    .refine((s) => Object.keys(s).length > 0, { error: 'list at least one storage, keyed by the value of the Storage column, e.g. s3: { type: s3, bucket: … }' });

  // the target's transfers follow the worker's concurrency unless it sets its own
  const target = z.preprocess((v) => (isObject(v) && v.concurrency === undefined && rawConcurrency !== undefined ? { ...v, concurrency: rawConcurrency } : v), parts.target);

  const encryption = parts.encryption.transform((e, zctx) => {
    if (e.kind !== 'openpgp') {
      zctx.addIssue({ code: 'custom', path: ['kind'], message: 'the worker encrypts with kind openpgp only (each copy a .gzip.gpg that gpg opens)' });
      return z.NEVER;
    }
    return e;
  });

  const healthShape = {
    maxBehindRows: count(0, 1000),
    maxBehind: unit(parseDuration, '1h', 'a duration like 30m or 2h'),
  };

  const workerShape = {
    database,
    storages,
    target,
    encryption: encryption.optional(),
    pollInterval: unit(parseDuration, '60s', 'a duration like 60s or 5m').refine((ms) => ms >= 1000, { error: 'must be at least 1s' }),
    deleteAfter: unit(parseDuration, '7d', 'a duration like 7d or 12h'),
    concurrency: count(1, DEFAULT_CONCURRENCY).refine((n) => n <= 64, { error: 'must be at most 64' }),
    keepVersions: count(1, 1),
    stateDir: pathSchema(ctx).optional(),
    health: z.preprocess(orDefault({}), z.strictObject(healthShape)),
  };
  const topShape = { worker: z.strictObject(workerShape) };
  const schema = z.strictObject(topShape).transform((t): Omit<WorkerConfig, 'file'> => {
    const w = t.worker;
    return {
      database: w.database,
      storages: new Map(Object.entries(w.storages)),
      target: w.target,
      encryption: w.encryption as OpenpgpEncryption | undefined,
      pollIntervalMs: w.pollInterval,
      deleteAfterMs: w.deleteAfter,
      concurrency: w.concurrency,
      keepVersions: w.keepVersions,
      stateDir: w.stateDir ?? path.join(defaultStateDir(env), 'worker', w.target.name),
      health: { maxBehindRows: w.health.maxBehindRows, maxBehindMs: w.health.maxBehind },
    };
  });
  const knownKeys = new Map<string, string[]>([
    ['', Object.keys(topShape)],
    ['worker', Object.keys(workerShape)],
    ['worker.storages.*', partKeys.s3Target],
    ['worker.target', partKeys.target],
    ['worker.encryption', partKeys.encryption],
    ['worker.health', Object.keys(healthShape)],
  ]);
  return { schema, knownKeys };
}

/**
 * Reads a worker config file (`worker:` at the top), with `${VAR}` from the environment and
 * `.env`, and errors as `file:line: key: problem`, as a job config has them. `keyless`: the
 * encryption's variables may be unset (health needs no key).
 */
export async function loadWorkerConfig(file: string, env: NodeJS.ProcessEnv, opts: { keyless?: boolean } = {}): Promise<WorkerConfig> {
  const mayBeUnset = (p: readonly PathKey[]) => opts.keyless === true && p[0] === 'worker' && p[1] === 'encryption';
  const { abs, data } = await readDocument(file, env, mayBeUnset, 'worker:', (ctx, raw) => makeWorkerSchema(ctx, raw, env));
  return { file: abs, ...data };
}
