import path from 'node:path';
import { Cron } from 'croner';
import { z } from 'zod';
import { readDocument } from './load.js';
import { makeSchema, NAME_PATTERN, type SchemaContext } from './schema.js';
import type { JobConfig, TargetConfig } from './types.js';
import { readFile } from 'node:fs/promises';
import { configError } from '../errors.js';
import { parseYaml, references, type PathKey } from './yaml-doc.js';

/**
 * The tenants file: one operator, several customers (tenants), each with resources (an FTPS
 * server, an SFTP server, a bucket, a folder) backed up on their own schedules to shared
 * targets, each in its own folder `<target>/<storageFolder>/<resource>/`. Every tenant ×
 * resource becomes a job named `tenant/resource`, the same JobConfig a config file gives.
 */

/** One tenant × resource. */
export interface TenantJob extends JobConfig {
  tenant: string;
  resource: string;
  /** a cron expression as croner reads it, in `timezone` */
  schedule: string;
  /** the Jenkins agent label its builds run on */
  agent: string;
  /** the repositories' folder below each target */
  folder: string;
}

export interface TenantsConfig {
  /** absolute */
  file: string;
  dir: string;
  /** runs at once, over all tenants */
  maxParallel: number;
  timezone: string;
  /** by `tenant/resource`, in file order */
  jobs: Map<string, TenantJob>;
  tenants: Array<{ name: string; storageFolder: string; agent: string; resources: string[] }>;
}

export const DEFAULT_AGENT = 'cerberus';
const DEFAULT_MAX_PARALLEL = 2;

/** `tenant/resource`, the name of the job everywhere (reports, state, `--job`). */
export const tenantJobName = (tenant: string, resource: string) => `${tenant}/${resource}`;

function validCron(expr: string, timezone: string): string | undefined {
  try {
    new Cron(expr, { paused: true, timezone }).stop();
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern: /, '');
  }
}

function folderOf(target: TargetConfig, folder: string): TargetConfig {
  switch (target.type) {
    case 'local':
      return { ...target, path: path.join(target.path, ...folder.split('/')) };
    case 'webdav':
      return { ...target, path: [target.path, folder].filter((s) => s !== '').join('/') };
    case 's3':
      return { ...target, prefix: [target.prefix, folder].filter((s) => s !== '').join('/') };
  }
}

const folderSchema = z
  .string()
  .min(1)
  .transform((f, zctx) => {
    const parts = f.split('/').filter((s) => s !== '' && s !== '.');
    if (parts.length === 0 || parts.some((s) => s === '..' || !NAME_PATTERN.test(s))) {
      zctx.addIssue({ code: 'custom', message: 'must be a folder name (letters, digits, ".", "_", "-"), or several joined by "/", without ".."' });
      return z.NEVER;
    }
    return parts.join('/');
  });

function makeTenantsSchema(ctx: SchemaContext, raw: unknown) {
  const { parts, partKeys, jobShape } = makeSchema(ctx);
  const name = z.string().regex(NAME_PATTERN, { error: 'must use only letters, digits, ".", "_" and "-"' });
  // a resource's retention and guards change only what they name of the file's own
  const over = <T extends z.ZodType>(key: string, schema: T) => {
    const top = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[key] : undefined;
    const asObject = (v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? v : {});
    return z.preprocess((v) => (Array.isArray(v) || (v !== null && v !== undefined && typeof v !== 'object') ? v : { ...asObject(top), ...asObject(v) }), schema);
  };
  const resourceShape = {
    name,
    schedule: z.string({ error: 'needs a cron expression, e.g. schedule: "0 2 * * *" or "@daily"' }).min(1),
    source: parts.source,
    retention: over('retention', parts.retention),
    guards: over('guards', parts.guards),
    hooks: jobShape.hooks,
  };
  const tenantShape = {
    name,
    storageFolder: folderSchema.optional(),
    /** the Jenkins agent label (`cerberus jenkins apply --tenants`) */
    agent: z.string().min(1).optional(),
    resources: z.array(z.strictObject(resourceShape)).min(1, { error: 'list at least one resource' }),
  };
  const topShape = {
    targets: parts.targets,
    encryption: parts.encryption,
    maxParallel: z.preprocess((v) => (v === null || v === undefined ? DEFAULT_MAX_PARALLEL : v), z.number().int().min(1)),
    timezone: jobShape.timezone,
    volumeSize: jobShape.volumeSize,
    retention: jobShape.retention,
    guards: jobShape.guards,
    report: jobShape.report,
    tenants: z.array(z.strictObject(tenantShape)).min(1, { error: 'list at least one tenant' }),
  };
  const schema = z.strictObject(topShape).superRefine((t, zctx) => {
    const issue = (p: PathKey[], message: string) => zctx.addIssue({ code: 'custom', path: p, message });
    const tenantAt = new Map<string, number>();
    const folderAt = new Map<string, number>();
    t.tenants.forEach((tenant, i) => {
      const first = tenantAt.get(tenant.name);
      if (first !== undefined) issue(['tenants', i, 'name'], `duplicate tenant name ${JSON.stringify(tenant.name)} (also tenants[${first}])`);
      else tenantAt.set(tenant.name, i);
      // two tenants in one folder would share (and prune) each other's repositories
      const folder = tenant.storageFolder ?? tenant.name;
      const other = [...folderAt].find(([f]) => f === folder || f.startsWith(folder + '/') || folder.startsWith(f + '/'));
      if (other) issue(['tenants', i, 'storageFolder'], `${JSON.stringify(folder)} overlaps the storage folder ${JSON.stringify(other[0])} of tenants[${other[1]}]; each tenant needs a folder of its own`);
      else folderAt.set(folder, i);
      const resourceAt = new Map<string, number>();
      tenant.resources.forEach((r, k) => {
        const at = ['tenants', i, 'resources', k];
        const before = resourceAt.get(r.name);
        if (before !== undefined) issue([...at, 'name'], `duplicate resource name ${JSON.stringify(r.name)} (also resources[${before}])`);
        else resourceAt.set(r.name, k);
        const bad = validCron(r.schedule, t.timezone);
        if (bad) issue([...at, 'schedule'], `${JSON.stringify(r.schedule)} is not a cron expression: ${bad} (e.g. "0 2 * * *", "@hourly")`);
        const remote = r.source.remote?.type;
        if (remote && t.encryption.kind !== 'openpgp') issue([...at, 'source', 'type'], `a ${remote} source is backed up with encryption kind openpgp; the ${t.encryption.kind} kind reads local folders only`);
      });
    });
    t.targets.forEach((target, i) => {
      if (target.type === 'local' && target.snapshots === 'hardlink') issue(['targets', i, 'snapshots'], 'a tenants file backs up encrypted; plain stages (snapshots: hardlink) belong in a job config');
    });
  });
  const knownKeys = new Map<string, string[]>([
    ['', Object.keys(topShape)],
    ['targets.#', partKeys.target],
    ['encryption', partKeys.encryption],
    ['retention', partKeys.retention],
    ['guards', partKeys.guards],
    ['report', partKeys.report],
    ['report.github', partKeys.github],
    ['tenants.#', Object.keys(tenantShape)],
    ['tenants.#.resources.#', Object.keys(resourceShape)],
    ['tenants.#.resources.#.source', partKeys.source],
    ['tenants.#.resources.#.retention', partKeys.retention],
    ['tenants.#.resources.#.guards', partKeys.guards],
    ['tenants.#.resources.#.hooks', partKeys.hooks],
    ...partKeys.hooks.map((n): [string, string[]] => [`tenants.#.resources.#.hooks.${n}.#`, partKeys.hook]),
  ]);
  return { schema, knownKeys };
}

/** Reads and validates a tenants file; every problem is reported as file:line, as for a config. */
export async function loadTenants(file: string, env: NodeJS.ProcessEnv = process.env, opts: { keyless?: boolean; unresolved?: boolean } = {}): Promise<TenantsConfig> {
  const mayBeUnset = (p: readonly PathKey[]) => opts.keyless === true && p[0] === 'encryption';
  const { abs, dir, data } = await readDocument(file, env, mayBeUnset, 'tenants:', makeTenantsSchema, { unresolved: opts.unresolved ?? false });
  const jobs = new Map<string, TenantJob>();
  const tenants: TenantsConfig['tenants'] = [];
  for (const tenant of data.tenants) {
    const storageFolder = tenant.storageFolder ?? tenant.name;
    const agent = tenant.agent ?? DEFAULT_AGENT;
    tenants.push({ name: tenant.name, storageFolder, agent, resources: tenant.resources.map((r) => r.name) });
    for (const r of tenant.resources) {
      const folder = `${storageFolder}/${r.name}`;
      const name = tenantJobName(tenant.name, r.name);
      jobs.set(name, {
        name,
        tenant: tenant.name,
        resource: r.name,
        schedule: r.schedule,
        agent,
        folder,
        source: r.source,
        encryption: data.encryption,
        targets: data.targets.map((t) => folderOf(t, folder)),
        retention: r.retention,
        guards: r.guards,
        timezone: data.timezone,
        volumeSize: data.volumeSize,
        report: data.report,
        hooks: r.hooks,
      });
    }
  }
  return { file: abs, dir, maxParallel: data.maxParallel, timezone: data.timezone, jobs, tenants };
}

/** The secrets a job's settings take from elsewhere, by kind: what a scheduler must provide. */
export interface SecretReferences {
  /** `${VAR}` names */
  vars: string[];
  /** `${file:PATH}` paths, as written */
  files: string[];
  /** `${cmd:…}` command lines */
  commands: string[];
}

/**
 * Per job (`tenant/resource`): the `${VAR}`, `${file:PATH}` and `${cmd:…}` its settings use,
 * the file's shared settings (targets, encryption, report) included. Nothing is resolved, read
 * or run: for rendering the job for Jenkins or Kubernetes, which supply the values themselves.
 */
export async function tenantReferences(file: string): Promise<Map<string, SecretReferences>> {
  const { parsed, problems } = parseYaml(await readFile(file, 'utf8'));
  if (problems.length > 0) throw configError(`${file}:${problems[0]!.line ?? 1}: ${problems[0]!.message}`);
  const raw = parsed.doc.toJS() as { tenants?: Array<{ name?: unknown; resources?: Array<{ name?: unknown }> }> } | null;
  const shared: SecretReferences = { vars: [], files: [], commands: [] };
  const own = new Map<string, SecretReferences>();
  const jobOf = (p: PathKey[]) => {
    if (p[0] !== 'tenants' || typeof p[1] !== 'number' || p[2] !== 'resources' || typeof p[3] !== 'number') return undefined;
    const tenant = raw?.tenants?.[p[1]];
    return tenantJobName(String(tenant?.name), String(tenant?.resources?.[p[3]]?.name));
  };
  const add = (to: SecretReferences, ref: string) => {
    const kind = ref.startsWith('file:') ? to.files : ref.startsWith('cmd:') ? to.commands : to.vars;
    const value = ref.startsWith('file:') ? ref.slice(5) : ref.startsWith('cmd:') ? ref.slice(4) : ref;
    if (!kind.includes(value)) kind.push(value);
  };
  for (const { path: p, ref } of references(parsed)) {
    const job = jobOf(p);
    if (job === undefined) {
      // a tenant's own keys (name, storageFolder, agent) hold no secrets; the rest is shared
      if (p[0] !== 'tenants') add(shared, ref);
      continue;
    }
    const mine = own.get(job) ?? { vars: [], files: [], commands: [] };
    own.set(job, mine);
    add(mine, ref);
  }
  const none: SecretReferences = { vars: [], files: [], commands: [] };
  const union = (a: string[], b: string[]) => [...a, ...b.filter((x) => !a.includes(x))];
  const out = new Map<string, SecretReferences>();
  for (const [i, tenant] of (raw?.tenants ?? []).entries()) {
    for (const k of (tenant.resources ?? []).keys()) {
      const job = jobOf(['tenants', i, 'resources', k])!;
      const mine = own.get(job) ?? none;
      out.set(job, { vars: union(shared.vars, mine.vars), files: union(shared.files, mine.files), commands: union(shared.commands, mine.commands) });
    }
  }
  return out;
}
