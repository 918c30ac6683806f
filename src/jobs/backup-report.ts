import type { Alert } from '../report/github.js';
import type { PhaseRecord } from '../report/phases.js';
import { UPLOAD_PHASE, type TargetSummary } from '../report/run-report.js';
import type { BackupResult } from './backup-finish.js';

/** The per-target lines of a backup; a run that threw has none (its phases still say what ran). */
export function backupTargets(result: BackupResult | undefined, phases: PhaseRecord[]): TargetSummary[] {
  return (result?.targets ?? []).map((t) => {
    const durationMs = phases.filter((p) => p.target === t.target).reduce((s, p) => s + p.durationMs, 0);
    const s = t.stats;
    const uploadMs = phases.find((p) => p.target === t.target && p.name === UPLOAD_PHASE)?.durationMs;
    return {
      target: t.target,
      status: t.status === 'committed' && t.suspicious.length > 0 ? 'suspicious' : t.status,
      ...(t.level !== undefined ? { level: t.level } : {}),
      ...(t.id !== undefined ? { id: t.id } : {}),
      ...(s
        ? {
            files: s.files,
            changedFiles: s.storedFiles,
            bytes: s.bytes,
            bytesRead: s.storedBytes,
            bytesUploaded: s.uploadedBytes,
            ...(uploadMs ? { rate: Math.round((s.uploadedBytes * 1000) / uploadMs) } : {}),
          }
        : {}),
      durationMs,
      ...(t.kept !== undefined ? { kept: t.kept } : {}),
      pruned: t.pruned,
      warnings: [...t.suspicious.map((r) => `guard: ${r}`), ...t.problems],
      ...(t.error !== undefined ? { error: t.error } : {}),
    };
  });
}

/** Per target: a failed or suspicious backup is an alert, a clean one a recovery. */
export function backupAlerts(result: BackupResult, at: Date): Alert[] {
  return result.targets
    .filter((t) => t.status !== 'dry-run')
    .map((t) => {
      const suspicious = t.status === 'committed' && t.suspicious.length > 0;
      const summary =
        t.status === 'failed'
          ? 'the backup failed'
          : suspicious
            ? `restore point ${t.level}/${t.id} is suspicious (a guard tripped), so nothing was pruned`
            : `restore point ${t.level}/${t.id} committed`;
      return {
        job: result.job,
        target: t.target,
        command: 'backup',
        failing: t.status === 'failed' || suspicious,
        summary,
        details: [...(t.error !== undefined ? [t.error] : []), ...t.suspicious.map((r) => `guard: ${r}`)],
        at,
      };
    });
}
