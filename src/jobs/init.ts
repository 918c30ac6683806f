import type { JobConfig } from '../config/index.js';
import { newDescriptor, readDescriptor, writeDescriptor } from '../repository/descriptor.js';
import { putBuffer } from '../repository/io.js';
import { restoreDoc } from '../repository/restore-doc.js';
import { LEVELS } from '../engine/levels.js';
import type { OpenTarget } from '../storage/open.js';
import type { Reporter } from '../report/log.js';
import { VERSION } from '../version.js';
import { checkRecipients, sealingFor } from './keys.js';

export interface InitResult {
  target: string;
  id: string;
  created: boolean;
}

/** Creates the repository on every target; a target already set up for these keys is left as is. */
export async function runInit(job: JobConfig, opts: { now: Date; reporter: Reporter; open: OpenTarget }): Promise<InitResult[]> {
  const { recipients } = await sealingFor(job);
  const symmetric = job.encryption.passphrase !== undefined;
  const out: InitResult[] = [];
  for (const target of job.targets) {
    const backend = opts.open(target);
    const existing = await readDescriptor(backend);
    if (existing) {
      checkRecipients(existing, recipients, symmetric, target.name);
      opts.reporter.info(`${target.name}: already a cerberus repository (${existing.id})`);
      out.push({ target: target.name, id: existing.id, created: false });
      continue;
    }
    const d = newDescriptor(
      { job: job.name, encryption: { recipients, symmetric, compression: job.encryption.compression }, createdBy: `cerberus ${VERSION}` },
      opts.now,
    );
    await backend.mkdir('');
    for (const dir of [...LEVELS, 'locks']) await backend.mkdir(dir);
    await putBuffer(backend, 'RESTORE.md', Buffer.from(restoreDoc(d)));
    await writeDescriptor(backend, d); // last: its presence means the repository is ready
    opts.reporter.info(`${target.name}: created repository ${d.id} at ${backend.description}`);
    out.push({ target: target.name, id: d.id, created: true });
  }
  return out;
}
