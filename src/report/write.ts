import fsp from 'node:fs/promises';
import path from 'node:path';
import { ioError } from '../errors.js';
import { makeDirs } from '../fsutil.js';
import { junitXml } from './junit.js';
import type { RunReport } from './run-report.js';
import { summaryMarkdown } from './summary.js';

export const REPORT_FILES = ['junit.xml', 'summary.md', 'report.json'] as const;

/**
 * Writes junit.xml, summary.md and report.json into `dir` (made if missing), each whole or
 * not at all: a build that archives `reports/**` never picks up half a file.
 */
export async function writeReports(dir: string, report: RunReport): Promise<void> {
  try {
    await makeDirs(dir);
    const files: Record<(typeof REPORT_FILES)[number], string> = {
      'junit.xml': junitXml(report),
      'summary.md': summaryMarkdown(report),
      'report.json': JSON.stringify(report, null, 2) + '\n',
    };
    for (const [name, text] of Object.entries(files)) {
      const dest = path.join(dir, name);
      const tmp = `${dest}.tmp-${process.pid}`;
      await fsp.writeFile(tmp, text);
      await fsp.rename(tmp, dest);
    }
  } catch (err) {
    throw ioError(err, `cannot write the reports to ${dir}`);
  }
}
