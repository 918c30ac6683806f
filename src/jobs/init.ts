import type { JobConfig } from '../config/index.js';
import { kindFor, newDescriptor, readDescriptor, requireKind, writeDescriptor, type Descriptor } from '../repository/descriptor.js';
import { putBuffer } from '../repository/io.js';
import { restoreDoc } from '../repository/restore-doc.js';
import { LEVELS } from '../engine/levels.js';
import type { Backend } from '../storage/backend.js';
import type { OpenTarget } from '../storage/open.js';
import type { Reporter } from '../report/log.js';
import { createRepositoryKeys, MASTERKEY_FILE, repositoryKeys } from '../vault/keys.js';
import { VERSION } from '../version.js';
import { checkRecipients, openpgpOf, sealingFor } from './keys.js';

export interface InitResult {
  target: string;
  id: string;
  created: boolean;
}

/**
 * Creates the repository on every target; a target already set up for this job's keys (or
 * vault password) is left as is. A Cryptomator repository gets its masterkey here, once.
 */
export async function runInit(job: JobConfig, opts: { now: Date; reporter: Reporter; open: OpenTarget }): Promise<InitResult[]> {
  const out: InitResult[] = [];
  const base = { job: job.name, createdBy: `cerberus ${VERSION}` };
  type Kind = { make: (backend: Backend) => Promise<Descriptor>; check: (d: Descriptor, target: string, backend: Backend) => Promise<void> };
  const plain: Kind = {
    make: async () => newDescriptor({ ...base, kind: 'plain' }, opts.now),
    check: async (d, target) => void requireKind(d, 'plain', target),
  };
  let encrypted: Kind;
  if (job.encryption.kind === 'cryptomator') {
    const { password } = job.encryption;
    encrypted = {
      make: async (backend) => {
        await createRepositoryKeys(backend, password);
        return newDescriptor({ ...base, kind: 'cryptomator', encryption: { masterkey: MASTERKEY_FILE, cipherCombo: 'SIV_GCM', format: 8 } }, opts.now);
      },
      check: async (d, target, backend) => {
        requireKind(d, 'cryptomator', target);
        await repositoryKeys(backend, password, target); // the password must open what is there
      },
    };
  } else {
    // read the keys only when a target needs them: a job may have plain stages alone
    const keys = job.targets.some((t) => kindFor(job, t) === 'openpgp') ? await sealingFor(job) : undefined;
    const recipients = keys?.recipients ?? [];
    const enc = openpgpOf(job);
    const symmetric = enc.passphrase !== undefined;
    encrypted = {
      make: async () => newDescriptor({ ...base, kind: 'openpgp', encryption: { recipients, symmetric, compression: enc.compression } }, opts.now),
      check: async (d, target) => checkRecipients(requireKind(d, 'openpgp', target), recipients, symmetric, target),
    };
  }
  for (const target of job.targets) {
    const backend = opts.open(target);
    const { make, check } = kindFor(job, target) === 'plain' ? plain : encrypted;
    const existing = await readDescriptor(backend);
    if (existing) {
      await check(existing, target.name, backend);
      opts.reporter.info(`${target.name}: already a cerberus repository (${existing.id})`);
      out.push({ target: target.name, id: existing.id, created: false });
      continue;
    }
    await backend.mkdir('');
    for (const dir of [...LEVELS, 'locks']) await backend.mkdir(dir);
    const d = await make(backend);
    await putBuffer(backend, 'RESTORE.md', Buffer.from(restoreDoc(d)));
    await writeDescriptor(backend, d); // last: its presence means the repository is ready
    opts.reporter.info(`${target.name}: created ${d.kind} repository ${d.id} at ${backend.description}`);
    out.push({ target: target.name, id: d.id, created: true });
  }
  return out;
}
