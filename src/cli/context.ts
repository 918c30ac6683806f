import type { Command } from 'commander';
import path from 'node:path';
import v8 from 'node:v8';
import { loadConfig, loadTenants, parseDuration, selectJob, type Config, type JobConfig } from '../config/index.js';
import { usageError } from '../errors.js';
import { defaultStateDir } from '../engine/state-cache.js';
import { ConsoleReporter, type Reporter } from '../report/log.js';
import { openBackend, type OpenTarget } from '../storage/open.js';

/** What every command gets: its environment and where to speak. */
export interface CommandContext {
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  /**
   * cerberus runs as its own process (the bin): it may tune V8 for the job. V8's flags are
   * the whole process's, so a caller of main() in its own process (a test) keeps its own.
   */
  ownsProcess?: boolean;
}

export interface JobOptions {
  config?: string;
  tenants?: string;
  job?: string;
}

/** The config file of the command line: --config, or --tenants where the command takes one. */
export function configFile(opts: JobOptions, tenants: 'allowed' | 'refused' = 'allowed'): { kind: 'config' | 'tenants'; file: string } {
  if (opts.config !== undefined && opts.tenants !== undefined) throw usageError('give --config or --tenants, not both', 'a job lives in one of the two files');
  if (opts.tenants !== undefined) {
    if (tenants === 'refused') throw usageError('this command does not take --tenants', 'use a job config file with --config');
    return { kind: 'tenants', file: opts.tenants };
  }
  if (opts.config !== undefined) return { kind: 'config', file: opts.config };
  throw usageError('say which file holds the job: --config FILE (or --tenants FILE)', 'e.g. --config cerberus.yaml, or --tenants tenants.yaml --job acme/website');
}

/** Every job of the file the command line names (a tenants file's are `tenant/resource`). */
export async function loadJobs(ctx: CommandContext, opts: JobOptions, load: { keyless?: boolean } = {}): Promise<Config> {
  const { kind, file } = configFile(opts);
  const abs = path.resolve(ctx.cwd, file);
  if (kind === 'config') return loadConfig(abs, ctx.env, load);
  const t = await loadTenants(abs, ctx.env, load);
  return { file: t.file, dir: t.dir, jobs: t.jobs };
}

/** The job of the command line; `named` (a reported run) learns its name. */
export async function loadJob(ctx: CommandContext, opts: JobOptions, named?: { job: string }): Promise<JobConfig> {
  const job = selectJob(await loadJobs(ctx, opts), opts.job);
  if (named) named.job = job.name;
  if (ctx.ownsProcess) tuneHeap(job);
  return job;
}

/**
 * V8's heap heuristics, per kind of job, once the job is known (V8 reads these flags as it
 * goes; they were set after start-up before, in the bin, and worked the same).
 *
 * OpenPGP: --optimize-for-size (smaller young generation, slower heap growth). openpgp.js
 * streams gigabytes through web streams that make much short-lived garbage: with V8's
 * defaults a 2 GiB backup peaked near 195 MB RSS and its restore near 250 MB, with this flag
 * near 150 and 130 MB (bench/memory.sh), for a third to a half more CPU time.
 *
 * Cryptomator: that flag doubled the CPU time of a vault backup (it also tunes V8's
 * compilers for size: bench/vault.sh), so only the young generation is kept from growing
 * past its first 1 MB semi-spaces. With V8's default growth it reached 32 MB and a vault
 * backup of small files peaked near 190 MB RSS, with this near 125 MB, at the same CPU time.
 * (--max-semi-space-size would say it directly but is read only at start-up.)
 */
function tuneHeap(job: JobConfig): void {
  v8.setFlagsFromString(job.encryption.kind === 'openpgp' ? '--optimize-for-size' : '--semi-space-growth-factor=1');
}

export function reporterFor(ctx: CommandContext, quiet = false): Reporter {
  return new ConsoleReporter(ctx.stderr, quiet);
}

/** A duration flag's value in ms, or a usage error naming the flag; `examples` like '30m, 2h or 1d'. */
export function durationOption(value: string, flag: string, examples: string): number {
  try {
    return parseDuration(value);
  } catch {
    throw usageError(`${flag} ${value} is not a duration`, `use e.g. ${examples}`);
  }
}

export function parseNow(now: string | undefined): Date {
  if (now === undefined) return new Date();
  const d = new Date(now);
  if (Number.isNaN(d.getTime())) {
    throw usageError(`--now ${now} is not a date and time`, 'use ISO 8601, e.g. 2026-11-22T03:00:00Z');
  }
  return d;
}

/**
 * Backends as every command opens them: retries reported as info lines, and with
 * CERBERUS_DEBUG set, one line per storage call.
 */
export function storageFor(ctx: CommandContext, reporter: Reporter): OpenTarget {
  const base = Number(ctx.env.CERBERUS_RETRY_BASE_MS);
  const debug = ctx.env.CERBERUS_DEBUG ? (m: string) => ctx.stderr.write(`debug: ${m}\n`) : undefined;
  return (target) =>
    openBackend(target, {
      log: (m) => reporter.notice(m),
      ...(debug ? { debug } : {}),
      ...(Number.isFinite(base) && base >= 0 && ctx.env.CERBERUS_RETRY_BASE_MS ? { retryBaseDelayMs: base } : {}),
    });
}

export function stateDir(ctx: CommandContext): string {
  return defaultStateDir(ctx.env);
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** --report DIR, the same on every command that does work (see reported() in report.ts). */
export function withReport(cmd: Command): Command {
  return cmd.option('--report <dir>', 'write junit.xml, summary.md and report.json there, also when the run fails (for Jenkins: reports)');
}

/** The options every job command shares. Use as `command.apply(withJob)`. */
export function withJob(cmd: Command, tenants = true): Command {
  cmd.option('-c, --config <file>', 'the YAML config file');
  if (tenants) cmd.option('--tenants <file>', 'a tenants file instead: the job is tenant/resource');
  return cmd.option('-j, --job <name>', tenants ? 'the job (may be left out when the file has one); tenant/resource in a tenants file' : 'the job (may be left out when the config has one)');
}

/** The parser of a repeatable option: `--path a --path b` → ['a', 'b'] (undefined when never given). */
export const repeatable = (v: string, acc: string[] | undefined): string[] => [...(acc ?? []), v];
