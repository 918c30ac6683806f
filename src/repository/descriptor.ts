import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../errors.js';
import type { Backend } from '../storage/backend.js';
import { putBuffer, readSmall } from './io.js';

export const DESCRIPTOR = 'cerberus.json';

/** The plaintext descriptor: what kind of repository this is. Never a secret. */
export const descriptorSchema = z.object({
  format: z.literal(1),
  kind: z.literal('openpgp'),
  id: z.string().min(8),
  job: z.string(),
  createdAt: z.string(),
  encryption: z.object({
    recipients: z.array(z.object({ fingerprint: z.string(), userIds: z.array(z.string()) })),
    symmetric: z.boolean(),
    compression: z.enum(['none', 'zlib']),
  }),
  createdBy: z.string(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

export function newDescriptor(init: Omit<Descriptor, 'format' | 'kind' | 'id' | 'createdAt'>, now: Date): Descriptor {
  return { format: 1, kind: 'openpgp', id: randomUUID(), createdAt: now.toISOString(), ...init };
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
    if (kind && kind !== 'openpgp') {
      throw new CerberusError('USAGE', `${backend.description} is a ${String(kind)} repository, which this command does not handle`);
    }
    throw new CerberusError('INTEGRITY', `${backend.description}: ${DESCRIPTOR} is malformed (${parsed.error.issues[0]?.message ?? ''})`);
  }
  return parsed.data;
}

export async function writeDescriptor(backend: Backend, d: Descriptor): Promise<void> {
  await putBuffer(backend, DESCRIPTOR, Buffer.from(JSON.stringify(d, null, 2) + '\n'));
}

export async function requireDescriptor(backend: Backend, target: string): Promise<Descriptor> {
  const d = await readDescriptor(backend);
  if (!d) {
    throw new CerberusError('NOT_FOUND', `target ${target} (${backend.description}) holds no cerberus repository`, {
      hint: 'run `cerberus init --config FILE` first',
    });
  }
  return d;
}
