import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { createProgram } from '../../src/cli/main.js';
import { ROOT } from '../helpers/cli.js';
import { joinContinuations, PIPELINES, shSteps } from '../helpers/jenkinsfile.js';

/**
 * Every `sh` step of every pipeline calls only `cerberus` commands and flags that exist, with
 * their required options, and is single-quoted so Groovy never interpolates a secret into it.
 */


const sink = new Writable({ write: (_c, _e, cb) => cb() });
const program = createProgram({ env: {}, stdout: sink, stderr: sink, cwd: ROOT }, () => undefined);

/** Splits a shell command line into words, honouring quotes (enough for our steps). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3] ?? '');
  return out;
}

/** What is wrong with one `cerberus …` call, judged against the real command tree. */
function checkCall(line: string): string[] {
  const w = words(line);
  if (w[0] !== 'cerberus') return [];
  let cmd: Command = program;
  let i = 1;
  for (; i < w.length; i++) {
    const sub = cmd.commands.find((c) => c.name() === w[i]);
    if (!sub) break;
    cmd = sub;
  }
  if (cmd === program) return [`${line}: no such command ${JSON.stringify(w[1])}`];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (; i < w.length; i++) {
    const word = w[i]!;
    if (!word.startsWith('-')) continue;
    const flag = word.split('=')[0]!;
    const opt = cmd.options.find((o) => o.long === flag || o.short === flag);
    if (!opt) {
      problems.push(`${line}: cerberus ${cmd.name()} has no option ${flag}`);
      continue;
    }
    seen.add(opt.long ?? flag);
    if ((opt.required || opt.optional) && !word.includes('=')) i++; // its value
  }
  for (const o of cmd.options) if (o.mandatory && !seen.has(o.long ?? '')) problems.push(`${line}: cerberus ${cmd.name()} needs ${o.long}`);
  return problems;
}

describe('pipeline sh steps', () => {
  it('finds the pipelines and their steps', () => {
    expect(PIPELINES).toEqual(expect.arrayContaining(['Jenkinsfile', 'pipelines/export.Jenkinsfile', 'pipelines/health.Jenkinsfile', 'pipelines/restore.Jenkinsfile', 'pipelines/worker.Jenkinsfile']));
    for (const p of PIPELINES) expect(shSteps(fs.readFileSync(path.join(ROOT, p), 'utf8')).scripts.length, p).toBeGreaterThan(0);
  });

  it.each(PIPELINES)('%s: single-quoted steps that call existing commands and flags', (p) => {
    const { scripts, unquoted } = shSteps(fs.readFileSync(path.join(ROOT, p), 'utf8'));
    expect(unquoted, 'sh steps must be single-quoted Groovy strings').toEqual([]);
    const calls = scripts.flatMap((s) => joinContinuations(s).split(/\n|&&|\|\||;/)).map((l) => l.trim()).filter((l) => l.startsWith('cerberus '));
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.flatMap(checkCall)).toEqual([]);
  });

  it('would catch a flag or command that does not exist, a missing required option, and a double-quoted step', () => {
    expect(checkCall('cerberus backup --config c.yaml --no-such-flag')).toEqual(['cerberus backup --config c.yaml --no-such-flag: cerberus backup has no option --no-such-flag']);
    expect(checkCall('cerberus backupp --config c.yaml')[0]).toMatch(/no such command "backupp"/);
    expect(checkCall('cerberus restore --config c.yaml --to /x')).toEqual(['cerberus restore --config c.yaml --to /x: cerberus restore needs --at']);
    expect(checkCall('cerberus sync up --config c.yaml --yes')).toEqual([]);
    expect(checkCall('cerberus sync up --config c.yaml --bogus')[0]).toMatch(/cerberus up has no option --bogus/);
    expect(shSteps('sh "cerberus backup --config $X"').unquoted).toHaveLength(1);
    expect(shSteps("int c = sh(returnStatus: true, script: 'cerberus list -c \"$C\"')").scripts).toEqual(['cerberus list -c "$C"']);
    expect(shSteps("sh '''\n  cerberus list -c c.yaml\n'''").scripts).toEqual(['\n  cerberus list -c c.yaml\n']);
    expect(shSteps("int c = sh(returnStatus: true, script: '''\n  cerberus list -c c.yaml\n''')").scripts).toEqual(['\n  cerberus list -c c.yaml\n']);
    // a flag on a continued line is checked too
    expect(checkCall(joinContinuations('cerberus list -c c.yaml \\\\\n    --bogus'))[0]).toMatch(/cerberus list has no option --bogus/);
  });
});
