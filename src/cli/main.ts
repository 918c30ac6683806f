import { Command, CommanderError } from 'commander';
import { describeError, ExitCode, exitCodeFor } from '../errors.js';
import { VERSION } from '../version.js';
import type { CommandContext } from './context.js';
import * as backup from './commands/backup.js';
import * as exportCmd from './commands/export.js';
import * as health from './commands/health.js';
import * as init from './commands/init.js';
import * as jenkins from './commands/jenkins.js';
import * as k8s from './commands/k8s.js';
import * as keygen from './commands/keygen.js';
import * as list from './commands/list.js';
import * as probe from './commands/probe.js';
import * as prune from './commands/prune.js';
import * as replicate from './commands/replicate.js';
import * as restore from './commands/restore.js';
import * as schedule from './commands/schedule.js';
import * as sync from './commands/sync.js';
import * as verify from './commands/verify.js';
import * as worker from './commands/worker.js';

const COMMANDS = [keygen, init, backup, replicate, list, restore, verify, prune, health, schedule, sync, worker, probe, exportCmd, jenkins, k8s];

/**
 * The command tree: every command with its options. Also what tests read to check that the
 * pipelines' `sh` steps call only commands and flags that exist.
 */
export function createProgram(context: CommandContext, done: (code: number) => void): Command {
  const program = new Command('cerberus')
    .description(
      'Encrypted, generational backups of documents to storage nobody has to trust.\n' +
        'Every backup can be restored with standard tools alone (gpg and tar, or the Cryptomator\n' +
        'app for vault repositories); see RESTORE.md in each repository.',
    )
    .version(VERSION)
    .exitOverride()
    // descriptions are laid out by hand at under 100 columns; commander's 80-column wrap
    // would break each of those lines in two
    .configureHelp({ helpWidth: 120 })
    .configureOutput({
      writeOut: (s) => context.stdout.write(s),
      writeErr: (s) => context.stderr.write(s),
      // one line, like every other error: "cerberus: error: unknown option '--x' (run with --help for usage)"
      outputError: (s, write) => write(`cerberus: ${s.trim()} (run with --help for usage)\n`),
    })
    .addHelpText(
      'after',
      '\nQuick start:\n' +
        '  cerberus keygen --out keys\n' +
        '  cerberus init    -c cerberus.yaml\n' +
        '  cerberus backup  -c cerberus.yaml\n' +
        '  cerberus list    -c cerberus.yaml\n' +
        '  cerberus restore -c cerberus.yaml --at latest --to /tmp/restore --key keys/cerberus.key.asc\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 warnings or a guard tripped, 4 locked.',
    );
  // options after a subcommand belong to it (`worker restore --config …`), not to its parent
  program.enablePositionalOptions();
  for (const c of COMMANDS) {
    c.register(program, context, done);
  }
  for (const sub of program.commands) sub.exitOverride();
  return program;
}

/** Runs the CLI and returns the exit code. Only bin/cerberus.ts calls process.exit. */
export async function main(argv: string[], ctx: Partial<CommandContext> = {}): Promise<number> {
  const context: CommandContext = {
    env: ctx.env ?? process.env,
    stdout: ctx.stdout ?? process.stdout,
    stderr: ctx.stderr ?? process.stderr,
    cwd: ctx.cwd ?? process.cwd(),
    ownsProcess: ctx.ownsProcess ?? false,
  };
  let code: number = ExitCode.ok;
  const program = createProgram(context, (c) => {
    code = c;
  });

  if (argv.length === 0) {
    // no command is a usage error: help on stderr, exit 2
    context.stderr.write(program.helpInformation());
    return ExitCode.usage;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      return ExitCode.usage; // commander already printed the message
    }
    context.stderr.write(`cerberus: error: ${describeError(err)}\n`);
    if (context.env.CERBERUS_DEBUG && err instanceof Error && err.stack) context.stderr.write(err.stack + '\n');
    return exitCodeFor(err);
  }
}
