import { formatBytes, formatDuration } from './format.js';
import type { RunReport, TargetSummary } from './run-report.js';

/**
 * The report as a short Markdown page: a heading with the verdict, one table row per target,
 * then warnings. Written for a Jenkins build description and for a person; no file names
 * beyond what the warnings themselves say.
 */
export function summaryMarkdown(report: RunReport): string {
  const verdict = report.exitCode === 0 ? 'ok' : report.exitCode === 3 ? 'completed with warnings' : 'FAILED';
  const out = [`### cerberus ${report.command} \`${report.job}\`: ${verdict} (exit ${report.exitCode}, ${formatDuration(report.durationMs)})`, ''];
  if (report.error !== undefined) out.push(`**${oneLine(report.error)}**`, '');
  if (report.targets.length > 0) {
    out.push('| target | status | level | files | changed | read | uploaded | time | rate | kept | pruned |');
    out.push('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const t of report.targets) out.push(row(t));
    out.push('');
  }
  if (report.targets.length === 0 && report.phases.length > 0) {
    out.push('| step | target | result | time |', '| --- | --- | --- | ---: |');
    for (const p of report.phases) {
      const result = p.status === 'failed' ? `FAILED: ${cell(p.message ?? '')}` : p.status;
      out.push(`| ${p.name} | ${cell(p.target ?? '-')} | ${result} | ${formatDuration(p.durationMs)} |`);
    }
    out.push('');
  }
  const failed = report.targets.filter((t) => t.error !== undefined);
  for (const t of failed) out.push(`- **${cell(t.target)}** failed: ${oneLine(t.error!)}`);
  const warnings = [...new Set(report.warnings)];
  if (warnings.length > 0) {
    out.push('', `Warnings (${warnings.length}):`, '');
    for (const w of warnings.slice(0, MAX_WARNINGS)) out.push(`- ${oneLine(w)}`);
    if (warnings.length > MAX_WARNINGS) out.push(`- … and ${warnings.length - MAX_WARNINGS} more in report.json`);
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}

/** A build description is shown whole on the job page; report.json has every warning. */
const MAX_WARNINGS = 10;

function row(t: TargetSummary): string {
  const n = (v: number | undefined) => (v === undefined ? '-' : String(v));
  const b = (v: number | undefined) => (v === undefined ? '-' : formatBytes(v));
  return [
    cell(t.target),
    t.status,
    t.level ?? '-',
    n(t.files),
    n(t.changedFiles),
    b(t.bytesRead),
    b(t.bytesUploaded),
    formatDuration(t.durationMs),
    t.rate === undefined ? '-' : `${formatBytes(t.rate)}/s`,
    n(t.kept),
    String(t.pruned.length),
  ]
    .join(' | ')
    .replace(/^/, '| ')
    .concat(' |');
}

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
const cell = (s: string) => oneLine(s).replace(/\|/g, '\\|');
