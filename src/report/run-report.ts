import type { PhaseRecord } from './phases.js';

/** One target's line of a report. Sizes in bytes; absent where the run never got that far. */
export interface TargetSummary {
  target: string;
  status: 'committed' | 'suspicious' | 'failed' | 'dry-run';
  level?: string;
  id?: string;
  /** files in the source */
  files?: number;
  /** files new or changed since the parent, so read and stored */
  changedFiles?: number;
  /** bytes of the source */
  bytes?: number;
  /** bytes read and encrypted */
  bytesRead?: number;
  /** bytes sent to the target */
  bytesUploaded?: number;
  /** time spent on this target (its share of a shared encryption included) */
  durationMs: number;
  /** bytesUploaded per second of that time */
  rate?: number;
  /** restore points on the target after pruning; absent when prune did not run */
  kept?: number;
  pruned: string[];
  warnings: string[];
  error?: string;
}

/** What report.json holds; junit.xml and summary.md are views of it. */
export interface RunReport {
  format: 1;
  command: string;
  job: string;
  startedAt: string;
  durationMs: number;
  exitCode: number;
  targets: TargetSummary[];
  phases: PhaseRecord[];
  warnings: string[];
  /** the error a run ended with, when it ended in one rather than in per-target results */
  error?: string;
}

export interface RunMeta {
  command: string;
  job: string;
  startedAt: Date;
  durationMs: number;
  exitCode: number;
  phases: PhaseRecord[];
  warnings: string[];
  error?: string;
}

export function runReport(meta: RunMeta, targets: TargetSummary[]): RunReport {
  return {
    format: 1,
    command: meta.command,
    job: meta.job,
    startedAt: meta.startedAt.toISOString(),
    durationMs: meta.durationMs,
    exitCode: meta.exitCode,
    targets,
    phases: meta.phases,
    warnings: meta.warnings,
    ...(meta.error !== undefined ? { error: meta.error } : {}),
  };
}

/** The phase whose time the upload rate is measured over. */
export const UPLOAD_PHASE = 'scan+encrypt+upload';
