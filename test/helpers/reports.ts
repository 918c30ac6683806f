import fsp from 'node:fs/promises';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { expect } from 'vitest';
import type { RunReport } from '../../src/report/run-report.js';

/** The three files of `--report DIR`, read back: junit.xml (checked well-formed), summary.md, report.json. */

interface Case {
  '@_classname': string;
  '@_name': string;
  failure?: { '@_message': string };
  skipped?: { '@_message': string };
}

export async function reports(dir: string): Promise<{ suite: Record<string, string>; cases: string[]; failures: Record<string, string>; summary: string; json: RunReport }> {
  const xml = await fsp.readFile(path.join(dir, 'junit.xml'), 'utf8');
  expect(XMLValidator.validate(xml)).toBe(true);
  const doc = new XMLParser({ ignoreAttributes: false, isArray: (n) => n === 'testcase' }).parse(xml) as {
    testsuites: { testsuite: Record<string, string> & { testcase: Case[] } };
  };
  const { testcase, ...suite } = doc.testsuites.testsuite;
  const label = (c: Case) => `${[c['@_classname'].split('.').slice(3).join('.'), c['@_name']].filter(Boolean).join(' ')}${c.failure ? ' FAILED' : c.skipped ? ' SKIPPED' : ''}`;
  return {
    suite,
    cases: testcase.map(label),
    failures: Object.fromEntries(testcase.filter((c) => c.failure || c.skipped).map((c) => [label(c), (c.failure ?? c.skipped)!['@_message']])),
    summary: await fsp.readFile(path.join(dir, 'summary.md'), 'utf8'),
    json: JSON.parse(await fsp.readFile(path.join(dir, 'report.json'), 'utf8')) as RunReport,
  };
}

