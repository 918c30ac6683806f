import path from 'node:path';
import { z } from 'zod';
import { CerberusError } from '../errors.js';
import { DUMP_DIR, dumpCommand } from '../engine/database-dump.js';
import type { EncryptionConfig, HookConfig, JobConfig, LocalTargetConfig, RemoteSourceConfig, S3TargetConfig, TargetTransport, WebdavTargetConfig } from './types.js';
import { parseDuration, parsePercent, parseSize } from './units.js';

export interface SchemaContext {
  /** the config file's folder */
  dir: string;
  home: string;
  defaultTimezone: string;
}

export const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;
export const MIN_VOLUME_SIZE = 4096;
const DEFAULT_VOLUME_SIZE = '512MiB';
/** long enough for a maintenance switch or a dump, short enough that a hung hook ends the night's run */
const DEFAULT_HOOK_TIMEOUT = '10m';
export const HOOK_NAMES = ['before', 'afterSnapshot', 'after', 'onError'] as const;

/** pCloud's WebDAV endpoints, by the region the account lives in */
export const WEBDAV_PRESETS: Record<string, string> = {
  'pcloud-us': 'https://webdav.pcloud.com',
  'pcloud-eu': 'https://ewebdav.pcloud.com',
};

const nameSchema = z.string().regex(NAME_PATTERN, { error: 'must use only letters, digits, ".", "_" and "-"' });

/** null (a key written with nothing after it) means "use the default", like a missing key */
export function orDefault(fallback: unknown) {
  return (v: unknown) => (v === null || v === undefined ? fallback : v);
}

/** Integer counts; digit strings pass too, since values interpolated from ${VAR} are strings. */
export function count(min: number, fallback: number) {
  return z.preprocess(
    (v) => {
      const w = orDefault(fallback)(v);
      return typeof w === 'string' && /^\s*\d+\s*$/.test(w) ? Number(w) : w;
    },
    z.number().int().min(min),
  );
}

/** A value in a unit (size, duration, percentage) parsed by one of the public parsers. */
export function unit(parse: (s: string | number) => number, fallback: string, what: string) {
  return z.preprocess(
    orDefault(fallback),
    z.union([z.string(), z.number()], { error: `expected ${what}` }).transform((v, ctx) => {
      try {
        return parse(v);
      } catch (err) {
        if (!(err instanceof CerberusError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.hint ? `${err.message} (${err.hint})` : err.message });
        return z.NEVER;
      }
    }),
  );
}

export function pathSchema(ctx: SchemaContext) {
  return z
    .string()
    .min(1)
    .transform((p, zctx) => {
      if (p === '~' || p.startsWith('~/')) return path.resolve(ctx.home, p.slice(2));
      if (p.startsWith('~')) {
        zctx.addIssue({ code: 'custom', message: `${JSON.stringify(p)}: only ~/ (your own home folder) is supported` });
        return z.NEVER;
      }
      return path.resolve(ctx.dir, p);
    });
}

function isValidTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export function machineTimezone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** What a source can be: folders on this machine, or a tree on a server (src/sources). */
export const SOURCE_TYPES = ['local', 'ftps', 'sftp', 's3'] as const;
const SOURCE_KEYS: Record<(typeof SOURCE_TYPES)[number], string[]> = {
  local: [],
  ftps: ['host', 'port', 'username', 'password', 'path', 'ca', 'insecure'],
  sftp: ['host', 'port', 'username', 'password', 'path', 'privateKey', 'passphrase', 'hostKey'],
  s3: ['bucket', 'prefix', 'endpoint', 'region', 'accessKeyId', 'secretAccessKey', 'forcePathStyle'],
};

const httpUrlSchema = z.string().refine(
  (u) => {
    try {
      const p = new URL(u).protocol;
      return p === 'http:' || p === 'https:';
    } catch {
      return false;
    }
  },
  { error: 'expected an http:// or https:// URL' },
);

export function makeSchema(ctx: SchemaContext) {
  const absPath = pathSchema(ctx);

  const databaseShape = {
    type: z.enum(['postgres', 'mysql'], { error: 'type must be postgres or mysql (mysql for MariaDB too)' }),
    url: z.string({ error: 'needs the connection URL, e.g. url: ${PG_URL} (keep the password in the environment)' }).min(1, { error: 'the url is empty' }),
    name: nameSchema,
  };
  const database = z.strictObject(databaseShape).superRefine((db, zctx) => {
    // a URL the dump cannot use fails at load time; the message never shows the URL. dumpCommand
    // writes nothing: the folder only names MySQL's password file
    try {
      dumpCommand(db, { secretDir: '/', env: {} });
    } catch (err) {
      if (!(err instanceof CerberusError)) throw err;
      zctx.addIssue({ code: 'custom', path: ['url'], message: err.hint ? `${err.message} (${err.hint})` : err.message });
    }
  });

  const sourceShape = {
    paths: z.preprocess(
      orDefault([]),
      z.array(absPath).superRefine((paths, zctx) => {
        const seen = new Map<string, number>();
        paths.forEach((p, i) => {
          const base = path.basename(p);
          if (base === '') {
            zctx.addIssue({ code: 'custom', path: [i], message: `${JSON.stringify(p)} has no name to restore it under; list the folders inside it instead` });
            return;
          }
          // compared case-insensitively: they would collide when restored on macOS or Windows
          const key = base.toLowerCase();
          const first = seen.get(key);
          if (first === undefined) {
            seen.set(key, i);
          } else {
            zctx.addIssue({
              code: 'custom',
              path: [i],
              message: `${JSON.stringify(p)} and ${JSON.stringify(paths[first])} (paths[${first}]) have the same name ${JSON.stringify(base)}; each source is restored under its own name, so names must differ`,
            });
          }
        });
      }),
    ),
    exclude: z.preprocess(orDefault([]), z.array(z.string().min(1))),
    databases: z.preprocess(
      orDefault([]),
      z.array(database).superRefine((dbs, zctx) => {
        const seen = new Map<string, number>();
        dbs.forEach((db, i) => {
          // case-insensitively: the dumps are files side by side in databases/
          const key = db.name.toLowerCase();
          const first = seen.get(key);
          if (first === undefined) seen.set(key, i);
          else zctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate database name ${JSON.stringify(db.name)} (also databases[${first}]); each is dumped to databases/<name>` });
        });
      }),
    ),
  };
  const optionalString = z.preprocess((v) => (v === null || v === '' ? undefined : v), z.string().optional());
  // the keys of a source on another machine; which belong to which type is checked below
  const remoteShape = {
    type: z.preprocess(orDefault('local'), z.enum(SOURCE_TYPES, { error: `type must be one of: ${SOURCE_TYPES.join(', ')}` })),
    host: optionalString,
    port: z.preprocess((v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v), z.number().int().min(1).max(65535).optional()),
    username: optionalString,
    password: optionalString,
    /** the folder on the server that is backed up */
    path: optionalString,
    ca: absPath.optional(),
    insecure: z.boolean().optional(),
    privateKey: optionalString,
    passphrase: optionalString,
    hostKey: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, { error: 'expected a fingerprint as ssh-keygen -lf prints it, e.g. SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8' }).optional(),
    bucket: optionalString,
    prefix: optionalString,
    endpoint: httpUrlSchema.optional(),
    region: optionalString,
    accessKeyId: optionalString,
    secretAccessKey: optionalString,
    forcePathStyle: z.boolean().optional(),
    /** read and hash every file on every run instead of trusting size and mtime */
    rehash: z.boolean().optional(),
  };
  const source = z.strictObject({ ...sourceShape, ...remoteShape }).transform((s, zctx): JobConfig['source'] => {
    const issue = (key: string, message: string) => zctx.addIssue({ code: 'custom', path: [key], message });
    const given = (k: keyof typeof remoteShape) => s[k] !== undefined;
    const allowed = SOURCE_KEYS[s.type];
    for (const k of Object.keys(remoteShape) as Array<keyof typeof remoteShape>) {
      if (k === 'type' || k === 'rehash' || !given(k) || allowed.includes(k)) continue;
      const owners = SOURCE_TYPES.filter((t) => SOURCE_KEYS[t].includes(k));
      issue(k, `${k} is for ${owners.join(' and ')} sources, not type ${s.type}`);
    }
    if (s.type === 'local') {
      if (s.paths.length === 0 && s.databases.length === 0) issue('paths', 'needs at least one folder (or a database in source.databases)');
      // several paths restore each under its basename, beside the dumps' own top folder
      if (s.paths.length > 1 && s.databases.length > 0) {
        s.paths.forEach((p, i) => {
          if (path.basename(p).toLowerCase() !== DUMP_DIR) return;
          zctx.addIssue({
            code: 'custom',
            path: ['paths', i],
            message: `${JSON.stringify(p)} would be restored as ${DUMP_DIR}/, which holds the dumps of source.databases; rename the folder, or list the folders inside it instead`,
          });
        });
      }
      return { paths: s.paths, exclude: s.exclude, databases: s.databases, ...(s.rehash ? { rehash: true } : {}) };
    }
    if (s.paths.length > 0) issue('paths', `a ${s.type} source backs up one folder on the server: give it as path, not paths`);
    const need = (k: keyof typeof remoteShape, example: string) => {
      if (!given(k)) issue(k, `a ${s.type} source needs ${k}, e.g. ${k}: ${example}`);
    };
    let remote: RemoteSourceConfig | undefined;
    const folder = (p: string | undefined) => '/' + (p ?? '').split('/').filter((x) => x !== '' && x !== '.').join('/');
    if (s.type === 'ftps' || s.type === 'sftp') {
      need('host', 'files.example.com');
      need('username', 'backup');
      if (s.type === 'ftps') need('password', '${FTP_PASSWORD}');
      if (s.type === 'sftp' && !given('password') && !given('privateKey')) issue('privateKey', 'an sftp source needs privateKey (e.g. privateKey: "${file:/run/secrets/id_ed25519}") or password');
      if (s.passphrase !== undefined && s.privateKey === undefined) issue('passphrase', 'passphrase unlocks privateKey, which is not given');
      if (s.host !== undefined && s.username !== undefined) {
        remote =
          s.type === 'ftps'
            ? { type: 'ftps', host: s.host, port: s.port ?? 21, username: s.username, password: s.password ?? '', path: folder(s.path), ...(s.ca ? { caFile: s.ca } : {}), insecure: s.insecure ?? false }
            : {
                type: 'sftp', host: s.host, port: s.port ?? 22, username: s.username, path: folder(s.path),
                ...(s.password !== undefined ? { password: s.password } : {}),
                ...(s.privateKey !== undefined ? { privateKey: s.privateKey } : {}),
                ...(s.passphrase !== undefined ? { passphrase: s.passphrase } : {}),
                ...(s.hostKey !== undefined ? { hostKey: s.hostKey } : {}),
              };
      }
    } else {
      need('bucket', 'documents');
      if ((s.accessKeyId === undefined) !== (s.secretAccessKey === undefined)) {
        issue(s.accessKeyId === undefined ? 'accessKeyId' : 'secretAccessKey', 'give both accessKeyId and secretAccessKey, or neither (to use AWS_ACCESS_KEY_ID and the usual AWS sources)');
      }
      if (s.bucket !== undefined) {
        remote = {
          type: 's3', bucket: s.bucket, prefix: folder(s.prefix).slice(1), region: s.region ?? 'us-east-1',
          ...(s.endpoint !== undefined ? { endpoint: s.endpoint.replace(/\/+$/, '') } : {}),
          forcePathStyle: s.forcePathStyle ?? s.endpoint !== undefined,
          ...(s.accessKeyId !== undefined && s.secretAccessKey !== undefined ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } : {}),
        };
      }
    }
    if (!remote) return z.NEVER;
    return { paths: [], exclude: s.exclude, databases: s.databases, remote, ...(s.rehash ? { rehash: true } : {}) };
  });

  const openpgpShape = {
    kind: z.literal('openpgp'),
    recipients: z.array(absPath).min(1).optional(),
    passphrase: z.string().min(1).optional(),
    compression: z.preprocess(orDefault('none'), z.enum(['none', 'zlib'])),
  };
  const openpgp = z.strictObject(openpgpShape).transform((e, zctx): EncryptionConfig => {
    if (e.recipients && e.passphrase !== undefined) {
      zctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'give either recipients or a passphrase, not both' });
      return z.NEVER;
    }
    if (e.recipients) return { kind: e.kind, recipients: e.recipients, compression: e.compression };
    if (e.passphrase !== undefined) return { kind: e.kind, recipients: [], passphrase: e.passphrase, compression: e.compression };
    zctx.addIssue({ code: 'custom', message: 'needs recipients (public key files) or a passphrase' });
    return z.NEVER;
  });
  const cryptomatorShape = {
    kind: z.literal('cryptomator'),
    password: z.string({ error: 'needs the vault password, e.g. password: ${VAULT_PASSWORD}' }).min(1, { error: 'the vault password is empty' }),
  };
  const cryptomator = z.strictObject(cryptomatorShape).transform((e): EncryptionConfig => ({ kind: e.kind, password: e.password }));
  const encryption = z.discriminatedUnion('kind', [openpgp, cryptomator], {
    error: (iss) => (iss.code === 'invalid_union' ? 'kind must be openpgp or cryptomator' : undefined),
  });
  const transportShape = {
    retries: count(0, 5),
    timeout: unit(parseDuration, '60s', 'a duration like 60s or 5m'),
    concurrency: count(1, 4),
    bwlimit: z.preprocess(
      (v) => (v === null || v === undefined ? undefined : v),
      unit((v) => parseSize(typeof v === 'string' ? v.replace(/\/s$/i, '') : v), '0', 'a rate like 2MiB/s').optional(),
    ),
  };
  const transport = (t: { retries: number; timeout: number; concurrency: number; bwlimit?: number | undefined }): TargetTransport => ({
    retries: t.retries,
    timeoutMs: t.timeout,
    concurrency: t.concurrency,
    bwlimit: t.bwlimit ? t.bwlimit : undefined,
  });
  const optionalText = z.preprocess((v) => (v === null || v === '' ? undefined : v), z.string().optional());
  const httpUrl = httpUrlSchema;

  const localTargetShape = {
    name: nameSchema,
    type: z.literal('local'),
    path: absPath,
    /** every generation a plain folder tree, unchanged files hard links to the previous one */
    snapshots: z.enum(['hardlink'], { error: 'the only kind of snapshots is hardlink (plain folder trees)' }).optional(),
    ...transportShape,
  };
  const localTarget = z.strictObject(localTargetShape).transform(
    (t): LocalTargetConfig => ({ name: t.name, type: t.type, path: t.path, ...(t.snapshots ? { snapshots: t.snapshots } : {}), ...transport(t) }),
  );

  const webdavTargetShape = {
    name: nameSchema,
    type: z.literal('webdav'),
    preset: z.enum(Object.keys(WEBDAV_PRESETS) as [string, ...string[]]).optional(),
    url: httpUrl.optional(),
    username: optionalText,
    password: optionalText,
    path: z.preprocess(orDefault('/'), z.string()),
    verify: z.preprocess(orDefault('size'), z.enum(['size', 'readback'])),
    ...transportShape,
  };
  const webdavTarget = z.strictObject(webdavTargetShape).transform((t, zctx): WebdavTargetConfig => {
    const url = t.url ?? (t.preset ? WEBDAV_PRESETS[t.preset] : undefined);
    if (!url) {
      zctx.addIssue({ code: 'custom', path: ['url'], message: `needs a url, or a preset (${Object.keys(WEBDAV_PRESETS).join(', ')})` });
      return z.NEVER;
    }
    if ((t.username === undefined) !== (t.password === undefined)) {
      zctx.addIssue({ code: 'custom', path: [t.username === undefined ? 'username' : 'password'], message: 'give both username and password, or neither' });
      return z.NEVER;
    }
    return {
      name: t.name,
      type: t.type,
      url: url.replace(/\/+$/, ''),
      username: t.username,
      password: t.password,
      path: t.path.split('/').filter((s) => s !== '' && s !== '.').join('/'),
      verify: t.verify,
      ...transport(t),
    };
  });

  const s3TargetShape = {
    name: nameSchema,
    type: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be a valid S3 bucket name (3-63 lowercase letters, digits, "." and "-")' }),
    prefix: z.preprocess(orDefault(''), z.string()),
    region: z.preprocess(orDefault('us-east-1'), z.string().min(1)),
    endpoint: httpUrl.optional(),
    forcePathStyle: z.boolean().optional(),
    accessKeyId: optionalText,
    secretAccessKey: optionalText,
    sessionToken: optionalText,
    checksums: z.enum(['when_supported', 'when_required']).optional(),
    partSize: unit(parseSize, '16MiB', 'a size like 16MiB').refine((n) => n >= 5 * 2 ** 20, { error: 'must be at least 5MiB (an S3 rule)' }),
    storageClass: optionalText,
    ...transportShape,
  };
  const s3Target = z.strictObject(s3TargetShape).transform((t, zctx): S3TargetConfig => {
    if ((t.accessKeyId === undefined) !== (t.secretAccessKey === undefined)) {
      zctx.addIssue({
        code: 'custom',
        path: [t.accessKeyId === undefined ? 'accessKeyId' : 'secretAccessKey'],
        message: 'give both accessKeyId and secretAccessKey, or neither (to use AWS_ACCESS_KEY_ID and the usual AWS sources)',
      });
      return z.NEVER;
    }
    const custom = t.endpoint !== undefined;
    return {
      name: t.name,
      type: t.type,
      bucket: t.bucket,
      prefix: t.prefix.split('/').filter((s) => s !== '').join('/'),
      region: t.region,
      endpoint: t.endpoint?.replace(/\/+$/, ''),
      // S3-compatible servers (MinIO, s3rver) want path style; AWS itself prefers virtual hosts
      forcePathStyle: t.forcePathStyle ?? custom,
      accessKeyId: t.accessKeyId,
      secretAccessKey: t.secretAccessKey,
      sessionToken: t.sessionToken,
      checksums: t.checksums ?? (custom ? 'when_required' : 'when_supported'),
      partSize: t.partSize,
      storageClass: t.storageClass,
      ...transport(t),
    };
  });

  const target = z.discriminatedUnion('type', [localTarget, webdavTarget, s3Target]);
  const targets = z
    .array(target)
    .min(1)
    .superRefine((list, zctx) => {
      const seen = new Map<string, number>();
      list.forEach((t, i) => {
        const first = seen.get(t.name);
        if (first === undefined) seen.set(t.name, i);
        else zctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate target name ${JSON.stringify(t.name)} (also targets[${first}])` });
      });
    });

  const retentionShape = {
    daily: count(0, 7),
    weekly: count(0, 5),
    monthly: count(0, 12),
    quarterly: count(1, 8),
    keepWithin: unit(parseDuration, '2d', 'a duration like 2d or 12h'),
    /** yearly exports on the targets; absent: kept forever */
    yearly: z.number().int().min(1).optional(),
  };
  const retention = z.strictObject(retentionShape).transform((r) => ({
    daily: r.daily,
    weekly: r.weekly,
    monthly: r.monthly,
    quarterly: r.quarterly,
    keepWithinMs: r.keepWithin,
    ...(r.yearly !== undefined ? { yearly: r.yearly } : {}),
  }));

  const guardsShape = {
    maxShrink: unit(parsePercent, '30%', 'a percentage like 30%'),
    maxChanged: unit(parsePercent, '50%', 'a percentage like 50%'),
    minFiles: count(0, 1),
  };

  const githubShape = {
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, { error: 'expected owner/name, e.g. me/backups' }),
    token: z.string({ error: 'needs a token with access to the repository\'s issues, e.g. token: ${GITHUB_TOKEN}' }).min(1, { error: 'the token is empty' }),
    labels: z.preprocess(orDefault(['cerberus']), z.array(z.string().min(1))),
    /** GitHub Enterprise: https://github.example.com/api/v3 */
    apiUrl: z.preprocess(orDefault('https://api.github.com'), httpUrl),
    details: z.preprocess(orDefault(false), z.boolean()),
  };
  const reportShape = { github: z.strictObject(githubShape).optional() };

  const exportShape = {
    password: z.string({ error: 'needs the password of the yearly 7-Zip export, e.g. password: ${EXPORT_PASSWORD}' }).min(1, { error: 'the password is empty' }),
    /** 7-Zip's -mx: 0 stores, 9 squeezes hardest; 1 is fast and still shrinks documents */
    level: z.preprocess(orDefault(1), z.number().int().min(0).max(9)),
  };

  const hookShape = {
    run: z.union([z.string().min(1), z.array(z.string()).min(1)], { error: 'run: expected an argv list like [occ, maintenance:mode, --on], or a command line with shell: true' }),
    shell: z.preprocess(orDefault(false), z.boolean()),
    timeout: unit(parseDuration, DEFAULT_HOOK_TIMEOUT, 'a duration like 30s or 10m').refine((ms) => ms > 0, { error: 'must be more than 0' }),
    cwd: z.preprocess(orDefault(ctx.dir), absPath),
  };
  const hookObject = z.strictObject(hookShape).transform((h, zctx): HookConfig => {
    if (h.shell && typeof h.run !== 'string') {
      zctx.addIssue({ code: 'custom', path: ['run'], message: 'with shell: true, run is one command line (a string), e.g. run: "occ maintenance:mode --on && sleep 1"' });
      return z.NEVER;
    }
    if (!h.shell && typeof h.run === 'string') {
      zctx.addIssue({ code: 'custom', path: ['run'], message: `a hook is an argv list, e.g. run: [${h.run.trim().split(/\s+/).join(', ')}]; for a shell command line add shell: true` });
      return z.NEVER;
    }
    return { argv: typeof h.run === 'string' ? [h.run] : h.run, shell: h.shell, timeoutMs: h.timeout, cwd: h.cwd };
  });
  // one hook as an argv list or an object, or a list of hook objects run in order
  const hookList = z.preprocess((v, zctx) => {
    if (typeof v === 'string') {
      zctx.addIssue({ code: 'custom', message: `a hook is an argv list, e.g. [${v.trim().split(/\s+/).join(', ')}], not a shell string; for a shell command line write { run: ${JSON.stringify(v)}, shell: true }` });
      return z.NEVER;
    }
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.length > 0 ? [{ run: v }] : [];
    return Array.isArray(v) ? v : v === null || v === undefined ? [] : [v];
  }, z.array(hookObject));
  const hooksShape = Object.fromEntries(HOOK_NAMES.map((n) => [n, hookList])) as Record<(typeof HOOK_NAMES)[number], typeof hookList>;

  const jobShape = {
    source,
    encryption,
    targets,
    retention: z.preprocess(orDefault({}), retention),
    guards: z.preprocess(orDefault({}), z.strictObject(guardsShape)),
    timezone: z.preprocess(
      orDefault(ctx.defaultTimezone),
      z.string().refine(isValidTimezone, { error: 'unknown time zone (use an IANA name like Europe/Paris or UTC)' }),
    ),
    volumeSize: unit(parseSize, DEFAULT_VOLUME_SIZE, 'a size like 512MiB').refine((n) => n >= MIN_VOLUME_SIZE, {
      error: `must be at least ${MIN_VOLUME_SIZE} bytes (4KiB)`,
    }),
    report: z.preprocess(orDefault({}), z.strictObject(reportShape)),
    export: z.strictObject(exportShape).optional(),
    hooks: z.preprocess(orDefault({}), z.strictObject(hooksShape)),
    stages: z.array(nameSchema).min(2, { error: 'list at least two targets: the local stage first, then where it is copied' }).optional(),
  };
  const job = z.strictObject(jobShape).transform((j, zctx): Omit<JobConfig, 'name'> => {
    const names = j.targets.map((t) => t.name);
    const remote = j.source.remote?.type;
    if (remote && j.encryption.kind !== 'openpgp') {
      zctx.addIssue({ code: 'custom', path: ['source', 'type'], message: `a ${remote} source is backed up with encryption kind openpgp; the ${j.encryption.kind} kind reads local folders only` });
    }
    j.targets.forEach((t, i) => {
      if (remote && t.type === 'local' && t.snapshots === 'hardlink') {
        zctx.addIssue({ code: 'custom', path: ['targets', i, 'snapshots'], message: `a ${remote} source is backed up encrypted; a plain stage (snapshots: hardlink) reads local folders only` });
      }
    });
    (j.stages ?? []).forEach((name, i) => {
      const t = j.targets.find((x) => x.name === name);
      const fail = (message: string) => zctx.addIssue({ code: 'custom', path: ['stages', i], message });
      if (!t) fail(`no target is named ${JSON.stringify(name)} (targets: ${names.join(', ')})`);
      else if (j.stages!.indexOf(name) !== i) fail(`${JSON.stringify(name)} is listed twice`);
      else if (i === 0 && !(t.type === 'local' && t.snapshots === 'hardlink')) fail(`the first stage must be a local target with snapshots: hardlink, which the others are copied from`);
      else if (i > 0 && t.type === 'local' && t.snapshots === 'hardlink') fail(`only the first stage is a plain one; ${JSON.stringify(name)} is copied to, encrypted`);
    });
    return j;
  });

  const topShape = {
    jobs: z
      .record(z.string().regex(NAME_PATTERN, { error: 'job names must use only letters, digits, ".", "_" and "-"' }), job)
      .refine((jobs) => Object.keys(jobs).length > 0, { error: 'define at least one job' }),
  };
  const schema = z.strictObject(topShape);

  // for "did you mean" on unknown keys; '*' is a job name, '#' a list index
  const knownKeys = new Map<string, string[]>([
    ['', Object.keys(topShape)],
    ['jobs.*', Object.keys(jobShape)],
    ['jobs.*.source', [...Object.keys(sourceShape), ...Object.keys(remoteShape)]],
    ['jobs.*.source.databases.#', Object.keys(databaseShape)],
    ['jobs.*.encryption', [...new Set([...Object.keys(openpgpShape), ...Object.keys(cryptomatorShape)])]],
    ['jobs.*.targets.#', [...new Set([...Object.keys(localTargetShape), ...Object.keys(webdavTargetShape), ...Object.keys(s3TargetShape)])]],
    ['jobs.*.retention', Object.keys(retentionShape)],
    ['jobs.*.guards', Object.keys(guardsShape)],
    ['jobs.*.report', Object.keys(reportShape)],
    ['jobs.*.report.github', Object.keys(githubShape)],
    ['jobs.*.export', Object.keys(exportShape)],
    ['jobs.*.hooks', [...HOOK_NAMES]],
    ...HOOK_NAMES.map((n): [string, string[]] => [`jobs.*.hooks.${n}.#`, Object.keys(hookShape)]),
  ]);

  // the pieces of a job, for files that assemble jobs their own way (config/tenants.ts)
  const parts = { source, encryption, target, s3Target, targets, retention, guards: z.strictObject(guardsShape), report: z.strictObject(reportShape), hooks: z.strictObject(hooksShape) };
  const partKeys = {
    source: [...Object.keys(sourceShape), ...Object.keys(remoteShape)],
    encryption: [...new Set([...Object.keys(openpgpShape), ...Object.keys(cryptomatorShape)])],
    target: [...new Set([...Object.keys(localTargetShape), ...Object.keys(webdavTargetShape), ...Object.keys(s3TargetShape)])],
    s3Target: Object.keys(s3TargetShape),
    retention: Object.keys(retentionShape),
    guards: Object.keys(guardsShape),
    report: Object.keys(reportShape),
    github: Object.keys(githubShape),
    hooks: [...HOOK_NAMES],
    hook: Object.keys(hookShape),
  };
  return { schema, knownKeys, parts, partKeys, jobShape };
}

export function keyPattern(p: readonly PropertyKey[]): string {
  // '*' stands for a name the user chose: a job, or a storage of the worker (src/worker/config.ts)
  const named = (i: number) => (p[0] === 'jobs' && i === 1) || (p[0] === 'worker' && p[1] === 'storages' && i === 2);
  return p.map((seg, i) => (named(i) ? '*' : typeof seg === 'number' ? '#' : String(seg))).join('.');
}
