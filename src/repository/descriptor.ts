import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../errors.js';
import type { JobConfig, TargetConfig } from '../config/index.js';
import type { Backend } from '../storage/backend.js';
import { putBuffer, readSmall } from './io.js';

export const DESCRIPTOR = 'cerberus.json';

const common = {
  format: z.literal(1),
  id: z.string().min(8),
  job: z.string(),
  createdAt: z.string(),
  createdBy: z.string(),
};

const openpgpDescriptor = z.object({
  ...common,
  kind: z.literal('openpgp'),
  encryption: z.object({
    recipients: z.array(z.object({ fingerprint: z.string(), userIds: z.array(z.string()) })),
    symmetric: z.boolean(),
    compression: z.enum(['none', 'zlib']),
  }),
});

const cryptomatorDescriptor = z.object({
  ...common,
  kind: z.literal('cryptomator'),
  encryption: z.object({
    /** the repository's masterkey file; every generation holds a copy */
    masterkey: z.string(),
    cipherCombo: z.literal('SIV_GCM'),
    format: z.literal(8),
  }),
});

/** A local stage: every generation a plain folder tree, unchanged files hard-linked. */
const plainDescriptor = z.object({
  ...common,
  kind: z.literal('plain'),
});

/** The plaintext descriptor: what kind of repository this is. Never a secret. */
export const descriptorSchema = z.discriminatedUnion('kind', [openpgpDescriptor, cryptomatorDescriptor, plainDescriptor]);
export type Descriptor = z.infer<typeof descriptorSchema>;
export type OpenpgpDescriptor = z.infer<typeof openpgpDescriptor>;
export type CryptomatorDescriptor = z.infer<typeof cryptomatorDescriptor>;
export type PlainDescriptor = z.infer<typeof plainDescriptor>;
export type RepositoryKind = Descriptor['kind'];

type Init<D> = D extends unknown ? Omit<D, 'format' | 'id' | 'createdAt'> : never;

export function newDescriptor(init: Init<Descriptor>, now: Date): Descriptor {
  return { format: 1, id: randomUUID(), createdAt: now.toISOString(), ...init } as Descriptor;
}

export async function readDescriptor(backend: Backend): Promise<Descriptor | undefined> {
  const st = await backend.stat(DESCRIPTOR);
  if (!st) return undefined;
  const raw = (await readSmall(backend, DESCRIPTOR, 1 << 20)).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new CerberusError('INTEGRITY', `${backend.description}: ${DESCRIPTOR} is not valid JSON`);
  }
  const parsed = descriptorSchema.safeParse(json);
  if (!parsed.success) {
    const kind = (json as { kind?: unknown })?.kind;
    if (kind !== 'openpgp' && kind !== 'cryptomator' && kind !== 'plain') {
      throw new CerberusError('USAGE', `${backend.description} is a ${String(kind)} repository, which this version of cerberus does not handle`);
    }
    throw new CerberusError('INTEGRITY', `${backend.description}: ${DESCRIPTOR} is malformed (${parsed.error.issues[0]?.message ?? ''})`);
  }
  return parsed.data;
}

export async function writeDescriptor(backend: Backend, d: Descriptor): Promise<void> {
  await putBuffer(backend, DESCRIPTOR, Buffer.from(JSON.stringify(d, null, 2) + '\n'));
}

/** The repository's descriptor; with `kind`, it must be a repository of that kind. */
export async function requireDescriptor(backend: Backend, target: string): Promise<Descriptor>;
export async function requireDescriptor<K extends RepositoryKind>(backend: Backend, target: string, kind: K): Promise<Extract<Descriptor, { kind: K }>>;
export async function requireDescriptor(backend: Backend, target: string, kind?: RepositoryKind): Promise<Descriptor> {
  const d = await readDescriptor(backend);
  if (!d) {
    throw new CerberusError('NOT_FOUND', `target ${target} (${backend.description}) holds no cerberus repository`, {
      hint: 'run `cerberus init --config FILE` (or --tenants FILE) first',
    });
  }
  return kind === undefined ? d : requireKind(d, kind, target);
}

/** The kind of repository a target of a job holds: a hardlink stage is plain, the rest as the job's encryption says. */
export function kindFor(job: JobConfig, target: TargetConfig): RepositoryKind {
  return target.type === 'local' && target.snapshots === 'hardlink' ? 'plain' : job.encryption.kind;
}

/** The descriptor, if the repository is of the kind the config says. */
export function requireKind<K extends RepositoryKind>(d: Descriptor, kind: K, target: string): Extract<Descriptor, { kind: K }> {
  if (d.kind !== kind) {
    const configured = kind === 'plain' ? 'a plain stage (snapshots: hardlink)' : `the job's encryption is ${kind}`;
    const hint =
      d.kind === 'plain'
        ? 'add snapshots: hardlink to the target, or point it at another folder and run init'
        : kind === 'plain'
          ? 'remove snapshots: hardlink from the target, or point it at another folder and run init'
          : `set encryption.kind: ${d.kind}, or point the target at another folder and run init`;
    throw new CerberusError('CONFIG', `target ${target} holds a ${d.kind} repository, but ${configured}`, { hint });
  }
  return d as Extract<Descriptor, { kind: K }>;
}
