import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './cli.js';

/** The Jenkinsfiles as the tests read them: their `sh` steps, and how a step's exit becomes a build result. */

export const PIPELINES = ['Jenkinsfile', ...fs.readdirSync(path.join(ROOT, 'pipelines')).filter((f) => f.endsWith('.Jenkinsfile')).map((f) => `pipelines/${f}`)];

/** The script of every `sh` step: `sh '…'`, `sh '''…'''`, `sh('…')`, `sh(returnStatus: true, script: '…')`. */
export function shSteps(groovy: string): { scripts: string[]; unquoted: string[] } {
  const scripts: string[] = [];
  const unquoted: string[] = [];
  // '''…''' is single-quoted too: Groovy interpolates neither
  // named arguments before the script (returnStatus: true, …) are allowed
  for (const m of groovy.matchAll(/\bsh\b\s*\(?\s*(?:\w+:\s*\w+,\s*)*(?:script:\s*)?'''([\s\S]*?)'''/g)) scripts.push(m[1]!);
  groovy = groovy.replace(/\bsh\b\s*\(?\s*(?:\w+:\s*\w+,\s*)*(?:script:\s*)?'''[\s\S]*?'''/g, '');
  for (const m of groovy.matchAll(/\bsh\b\s*(\(([^)]*)\)|(['"].*))/g)) {
    const args = m[2] ?? m[3] ?? '';
    const single = /(?:script:\s*|^\s*)'((?:[^'\\]|\\.)*)'/.exec(args);
    if (single) scripts.push(single[1]!.replace(/\\'/g, "'"));
    else unquoted.push(m[0]);
  }
  return { scripts, unquoted };
}

/** Joins shell line continuations: in a Groovy ''' string the source `\\\\` ends a line with one backslash. */
export const joinContinuations = (script: string) => script.replace(/\\{1,2}\n\s*/g, ' ');


/**
 * The build result a pipeline gives a step's exit status, read from the pipeline itself: the
 * `int code = sh(returnStatus: true, …)` step, then `if (code == N) { unstable(…) }` and
 * `if (code != 0) { error(…) }` branches. A pipeline without that shape is refused.
 */
export function resultMapping(groovy: string): (code: number) => 'SUCCESS' | 'UNSTABLE' | 'FAILURE' {
  if (!/int code = sh\(returnStatus: true, script: '/.test(groovy)) throw new Error('no `int code = sh(returnStatus: true, script: …)` step');
  const unstable = /if \(code == (\d+)\) \{\s*unstable\(/.exec(groovy);
  if (!/if \(code != 0\) \{\s*error\(/.test(groovy)) throw new Error('no `if (code != 0) { error(…) }` branch');
  const unstableCode = unstable ? Number(unstable[1]) : undefined;
  return (code) => (code === 0 ? 'SUCCESS' : code === unstableCode ? 'UNSTABLE' : 'FAILURE');
}
