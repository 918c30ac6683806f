import { secretFromEnv, type JobConfig, type OpenpgpEncryption } from '../config/index.js';
import { CerberusError } from '../errors.js';
import { fingerprintOf, readPrivateKey, readPublicKeys } from '../formats/openpgp/keys.js';
import type { Opening, Sealing } from '../formats/openpgp/message.js';
import type { OpenpgpDescriptor } from '../repository/descriptor.js';

type OpenpgpRecipients = OpenpgpDescriptor['encryption']['recipients'];

/** The job's OpenPGP settings; commands that only exist for OpenPGP repositories call this. */
export function openpgpOf(job: JobConfig): OpenpgpEncryption {
  if (job.encryption.kind !== 'openpgp') {
    throw new CerberusError('INTERNAL', `job ${job.name} does not use OpenPGP`);
  }
  return job.encryption;
}

/** How a job encrypts: its recipients' public keys, or its passphrase. */
export async function sealingFor(job: JobConfig): Promise<{ sealing: Sealing; recipients: OpenpgpRecipients }> {
  return sealingOf(openpgpOf(job));
}

/** How OpenPGP settings encrypt (a job's, or the object-storage worker's). */
export async function sealingOf(enc: OpenpgpEncryption): Promise<{ sealing: Sealing; recipients: OpenpgpRecipients }> {
  if (enc.passphrase !== undefined) {
    return { sealing: { passphrase: enc.passphrase }, recipients: [] };
  }
  const keys = await readPublicKeys(enc.recipients);
  return {
    sealing: { keys },
    recipients: keys.map((k) => ({ fingerprint: fingerprintOf(k), userIds: k.getUserIDs() })),
  };
}

/** The config must still encrypt to the keys the repository was made for. */
export function checkRecipients(d: OpenpgpDescriptor, recipients: OpenpgpRecipients, symmetric: boolean, target: string): void {
  const want = new Set(d.encryption.recipients.map((r) => r.fingerprint));
  const have = new Set(recipients.map((r) => r.fingerprint));
  const same = want.size === have.size && [...want].every((f) => have.has(f));
  if (!same || d.encryption.symmetric !== symmetric) {
    throw new CerberusError('CONFIG', `target ${target}: the job's encryption does not match the repository's (cerberus.json lists ${d.encryption.symmetric ? 'a passphrase' : [...want].join(', ')})`, {
      hint: 'use the keys the repository was made with, or init a new repository for new keys',
    });
  }
}

export async function keyPassphrase(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return secretFromEnv(env, 'CERBERUS_KEY_PASSPHRASE');
}

/** How a restore opens the repository: the private key, or the job's passphrase. */
export async function openingFor(job: JobConfig, keyFile: string | undefined, env: NodeJS.ProcessEnv): Promise<Opening> {
  return openingOf(openpgpOf(job), keyFile, env);
}

/** How OpenPGP settings decrypt: the private key (--key or CERBERUS_PRIVATE_KEY_FILE), or the passphrase. */
export async function openingOf(enc: OpenpgpEncryption, keyFile: string | undefined, env: NodeJS.ProcessEnv): Promise<Opening> {
  if (enc.passphrase !== undefined) return { passphrase: enc.passphrase };
  const file = keyFile ?? env.CERBERUS_PRIVATE_KEY_FILE;
  if (!file) {
    throw new CerberusError('KEY', 'restoring needs the private key', {
      hint: 'pass --key FILE or set CERBERUS_PRIVATE_KEY_FILE, with its passphrase in CERBERUS_KEY_PASSPHRASE',
    });
  }
  return { key: await readPrivateKey(file, await keyPassphrase(env)) };
}
