import { describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/report/run-report.js';
import { summaryMarkdown } from '../../src/report/summary.js';

const base: RunReport = {
  format: 1,
  command: 'backup',
  job: 'docs',
  startedAt: '2026-11-22T03:00:00.000Z',
  durationMs: 83_000,
  exitCode: 0,
  targets: [
    {
      target: 'pcloud',
      status: 'committed',
      level: 'daily',
      id: '2026-11-22T030000Z',
      files: 1200,
      changedFiles: 12,
      bytes: 5 * 2 ** 30,
      bytesRead: 3 * 2 ** 20,
      bytesUploaded: 3 * 2 ** 20 + 4096,
      durationMs: 61_000,
      rate: 2 ** 20,
      kept: 14,
      pruned: ['daily/2026-11-08T030000Z'],
      warnings: [],
    },
  ],
  phases: [],
  warnings: [],
};

describe('summaryMarkdown', () => {
  it('gives the verdict, then one row per target with level, counts, bytes, time, rate, kept and pruned', () => {
    const md = summaryMarkdown(base);
    expect(md.split('\n')[0]).toBe('### cerberus backup `docs`: ok (exit 0, 1m23s)');
    expect(md).toContain('| target | status | level | files | changed | read | uploaded | time | rate | kept | pruned |');
    expect(md).toContain('| pcloud | committed | daily | 1200 | 12 | 3.00 MiB | 3.00 MiB | 1m01s | 1.00 MiB/s | 14 | 1 |');
    expect(md).not.toContain('Warnings');
  });

  it('names failed targets and lists warnings, at most ten, escaping table pipes', () => {
    const warnings = Array.from({ length: 12 }, (_, i) => `cannot read /srv/docs/f${i}: EACCES`);
    const md = summaryMarkdown({
      ...base,
      exitCode: 1,
      targets: [...base.targets, { target: 'usb|2', status: 'failed', durationMs: 900, pruned: [], warnings: [], error: 'no repository here\n(run init)' }],
      warnings,
    });
    expect(md.split('\n')[0]).toMatch(/: FAILED \(exit 1, /);
    expect(md).toContain('| usb\\|2 | failed | - | - | - | - | - | 1s | - | - | 0 |');
    expect(md).toContain('- **usb\\|2** failed: no repository here (run init)');
    expect(md).toContain('Warnings (12):');
    expect(md).toContain('- cannot read /srv/docs/f9: EACCES');
    expect(md).not.toContain('f10: EACCES');
    expect(md).toContain('- … and 2 more in report.json');
  });

  it('says so when the run ended in an error before any target', () => {
    const md = summaryMarkdown({ ...base, exitCode: 4, targets: [], error: 'the repository is locked' });
    expect(md).toBe('### cerberus backup `docs`: FAILED (exit 4, 1m23s)\n\n**the repository is locked**\n');
    expect(summaryMarkdown({ ...base, exitCode: 3 })).toMatch(/completed with warnings \(exit 3/);
  });
});
