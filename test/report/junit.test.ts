import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { junitXml } from '../../src/report/junit.js';
import type { RunReport } from '../../src/report/run-report.js';

const base: RunReport = {
  format: 1,
  command: 'backup',
  job: 'docs',
  startedAt: '2026-11-22T03:00:00.000Z',
  durationMs: 12_345,
  exitCode: 0,
  targets: [],
  phases: [],
  warnings: [],
};

interface Case {
  '@_classname': string;
  '@_name': string;
  '@_time': string;
  failure?: { '@_message': string; '#text': string };
  skipped?: { '@_message': string };
}

function parse(xml: string): { suite: Record<string, string>; cases: Case[] } {
  expect(XMLValidator.validate(xml)).toBe(true);
  const doc = new XMLParser({ ignoreAttributes: false, isArray: (name) => name === 'testcase' }).parse(xml) as {
    testsuites: { testsuite: Record<string, string> & { testcase?: Case[] } };
  };
  const { testcase, ...suite } = doc.testsuites.testsuite;
  return { suite, cases: testcase ?? [] };
}

describe('junitXml', () => {
  it('has a case per step and a guards case per committed target, with counts that add up', () => {
    const { suite, cases } = parse(
      junitXml({
        ...base,
        exitCode: 1,
        phases: [
          { name: 'plan', target: 'usb', status: 'passed', durationMs: 20 },
          { name: 'plan', target: 'cloud', status: 'failed', durationMs: 1500, message: 'target cloud: connection refused (check the url)' },
          { name: 'scan+encrypt+upload', target: 'usb', status: 'passed', durationMs: 4000 },
          { name: 'verify', target: 'usb', status: 'passed', durationMs: 3 },
          { name: 'prune', target: 'usb', status: 'skipped', durationMs: 0, message: 'marked suspicious; nothing was pruned' },
        ],
        targets: [
          { target: 'usb', status: 'suspicious', durationMs: 4023, pruned: [], warnings: ['guard: 80 % of the files are gone'] },
          { target: 'cloud', status: 'failed', durationMs: 1500, pruned: [], warnings: [], error: 'connection refused' },
        ],
      }),
    );
    expect(suite).toMatchObject({ '@_name': 'cerberus backup docs', '@_tests': '6', '@_failures': '2', '@_skipped': '1', '@_time': '12.345' });
    expect(cases.map((c) => `${c['@_classname']} ${c['@_name']}`)).toEqual([
      'cerberus.backup.docs.usb plan',
      'cerberus.backup.docs.cloud plan',
      'cerberus.backup.docs.usb scan+encrypt+upload',
      'cerberus.backup.docs.usb verify',
      'cerberus.backup.docs.usb prune',
      'cerberus.backup.docs.usb guards',
    ]);
    expect(cases[1]!.failure!['@_message']).toBe('target cloud: connection refused (check the url)');
    expect(cases[2]!['@_time']).toBe('4.000');
    expect(cases[4]!.skipped!['@_message']).toMatch(/nothing was pruned/);
    expect(cases[5]!.failure!['@_message']).toBe('guard: 80 % of the files are gone');
  });

  it('escapes what XML cannot hold as is, and keeps the whole message in the failure body', () => {
    const nasty = 'a & b < c > d "quoted" \'single\'\nsecond line\u0001\u001b[31m';
    const { suite, cases } = parse(junitXml({ ...base, job: 'j&<>"', phases: [{ name: 'prune', target: 't "1"', status: 'failed', durationMs: 1, message: nasty }] }));
    expect(suite['@_name']).toBe('cerberus backup j&<>"');
    expect(cases[0]!['@_classname']).toBe('cerberus.backup.j&<>".t "1"');
    expect(cases[0]!.failure!['@_message']).toBe('a & b < c > d "quoted" \'single\'');
    expect(cases[0]!.failure!['#text']).toContain('second line\ufffd\ufffd[31m');
  });

  it('reports a run that failed before any step as one failed case', () => {
    const { suite, cases } = parse(junitXml({ ...base, exitCode: 4, error: 'the repository is locked by cerberus backup on pi (pid 12)' }));
    expect(suite).toMatchObject({ '@_tests': '1', '@_failures': '1' });
    expect(cases[0]).toMatchObject({ '@_name': 'run', failure: { '@_message': 'the repository is locked by cerberus backup on pi (pid 12)' } });
  });
});
