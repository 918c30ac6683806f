import fsp from 'node:fs/promises';
import path from 'node:path';
import { makeDirs } from '../../fsutil.js';
import type { Command } from 'commander';
import { CerberusError, ExitCode, ioError, usageError } from '../../errors.js';
import { generateKeyPair } from '../../formats/openpgp/keys.js';
import { keyPassphrase } from '../../jobs/keys.js';
import type { CommandContext } from '../context.js';

interface KeygenOptions {
  out: string;
  name: string;
  email?: string;
  rsa?: boolean;
  passphrase: boolean;
  force?: boolean;
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  program
    .command('keygen')
    .summary('make an OpenPGP keypair for a repository')
    .description(
      'Make an OpenPGP v4 keypair that GnuPG 2.2 reads: cerberus.pub.asc (give it to the backup machine)\n' +
        'and cerberus.key.asc (keep it OFF the backup machine; you need it to restore).\n' +
        'The private key is protected by the passphrase in $CERBERUS_KEY_PASSPHRASE\n' +
        '(or the file named by $CERBERUS_KEY_PASSPHRASE_FILE).',
    )
    .requiredOption('--out <dir>', 'folder to write cerberus.pub.asc and cerberus.key.asc into')
    .option('--name <name>', 'name in the key\'s user id', 'cerberus backup')
    .option('--email <email>', 'email in the key\'s user id')
    .option('--rsa', 'RSA 4096 instead of Curve25519 (slower, for old OpenPGP software)')
    .option('--no-passphrase', 'write the private key unprotected (not recommended)')
    .option('--force', 'overwrite existing key files')
    .addHelpText('after', '\nExample:\n  CERBERUS_KEY_PASSPHRASE=... cerberus keygen --out keys --email me@example.org')
    .action(async (opts: KeygenOptions) => {
      const passphrase = opts.passphrase ? await keyPassphrase(ctx.env) : undefined;
      if (opts.passphrase && !passphrase) {
        throw usageError('set CERBERUS_KEY_PASSPHRASE to protect the private key', 'or pass --no-passphrase to write it unprotected');
      }
      const out = path.resolve(ctx.cwd, opts.out);
      const pub = path.join(out, 'cerberus.pub.asc');
      const priv = path.join(out, 'cerberus.key.asc');
      if (!opts.force) {
        for (const f of [pub, priv]) {
          if (await fsp.stat(f).then(() => true, () => false)) {
            throw new CerberusError('USAGE', `${f} already exists`, { hint: 'choose another --out, or pass --force to replace it' });
          }
        }
      }
      const pair = await generateKeyPair({ name: opts.name, email: opts.email, rsa: Boolean(opts.rsa), passphrase });
      try {
        await makeDirs(out);
        await fsp.writeFile(pub, pair.publicArmored, { mode: 0o644 });
        await fsp.writeFile(priv, pair.privateArmored, { mode: 0o600 });
      } catch (err) {
        throw ioError(err, `cannot write keys into ${out}`);
      }
      ctx.stdout.write(
        `fingerprint ${pair.fingerprint}\n` +
          `public key  ${pub}   (put this on the backup machine: encryption.recipients)\n` +
          `private key ${priv}   (keep it off the backup machine, with its passphrase)\n`,
      );
      done(ExitCode.ok);
    });
}
