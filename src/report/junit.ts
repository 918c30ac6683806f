import { xmlAttr, xmlText } from '../xml.js';
import type { PhaseRecord } from './phases.js';
import type { RunReport } from './run-report.js';

/**
 * The report as JUnit XML, the format Jenkins' `junit` step reads: one test case per step of
 * the run (per target where it has one), plus a `guards` case per committed target, so a
 * suspicious run shows as a failed test and not only as an exit code.
 */
export function junitXml(report: RunReport): string {
  const cases: PhaseRecord[] = [...report.phases];
  for (const t of report.targets) {
    if (t.status !== 'committed' && t.status !== 'suspicious') continue;
    const guards = t.warnings.filter((w) => w.startsWith('guard: '));
    cases.push({ name: 'guards', target: t.target, status: guards.length > 0 ? 'failed' : 'passed', durationMs: 0, ...(guards.length > 0 ? { message: guards.join('; ') } : {}) });
  }
  // a run that failed before any step (bad config, a held lock) still shows its reason
  if (report.error !== undefined && !cases.some((c) => c.status === 'failed')) {
    cases.push({ name: 'run', status: 'failed', durationMs: report.durationMs, message: report.error });
  }
  const failures = cases.filter((c) => c.status === 'failed').length;
  const skipped = cases.filter((c) => c.status === 'skipped').length;
  const suite = `cerberus ${report.command} ${report.job}`;
  const time = seconds(report.durationMs);
  const counts = `tests="${cases.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time}"`;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="cerberus" ${counts}>`,
    `  <testsuite name="${xmlAttr(suite)}" ${counts} timestamp="${xmlAttr(report.startedAt)}">`,
  ];
  for (const c of cases) {
    const classname = ['cerberus', report.command, report.job, ...(c.target !== undefined ? [c.target] : [])].join('.');
    const open = `    <testcase classname="${xmlAttr(classname)}" name="${xmlAttr(c.name)}" time="${seconds(c.durationMs)}"`;
    if (c.status === 'passed') {
      lines.push(`${open}/>`);
      continue;
    }
    const message = c.message ?? c.status;
    lines.push(`${open}>`);
    lines.push(c.status === 'failed' ? `      <failure message="${xmlAttr(firstLine(message))}">${xmlText(message)}</failure>` : `      <skipped message="${xmlAttr(firstLine(message))}"/>`);
    lines.push('    </testcase>');
  }
  lines.push('  </testsuite>', '</testsuites>', '');
  return lines.join('\n');
}

const seconds = (ms: number) => (ms / 1000).toFixed(3);
const firstLine = (s: string) => s.split('\n')[0] ?? '';
