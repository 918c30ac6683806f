import { formatDuration } from '../report/format.js';
import { openAppDatabase } from './app-db.js';
import type { WorkerConfig } from './config.js';
import { WorkerState } from './state.js';

export interface WorkerHealth {
  target: string;
  healthy: boolean;
  /** rows not stored yet: read and pending (failures waiting for a retry included), and not read yet */
  behindRows: number;
  /** CreatedAt of the oldest of those, ISO */
  oldestPending?: string;
  /** how long the oldest has waited, ms */
  behindMs: number;
  /** rows whose last attempt failed */
  failing: number;
  /** when the last pass ran (its clock), ISO; absent when the worker never ran here */
  lastPass?: string;
  problems: string[];
}

/**
 * How far behind the worker is, from its state and the application's tables as they are now
 * (so a worker that stopped running falls behind as uploads go on): unhealthy past
 * `maxBehindRows` rows or `maxBehindMs` since the oldest upload not yet stored.
 */
export async function workerHealth(cfg: WorkerConfig, now: number, limits: { maxBehindRows: number; maxBehindMs: number }): Promise<WorkerHealth> {
  const state = WorkerState.openExisting(cfg.stateDir);
  let open: ReturnType<WorkerState['open']> = { rows: 0, oldest: undefined, failing: 0 };
  let cursor = 0;
  let lastPass: string | undefined;
  let failingRows: string[] = [];
  if (state) {
    try {
      open = state.open();
      cursor = state.cursor('files');
      lastPass = state.meta('lastPassAt');
      failingRows = state.failing(3).map((r) => `row ${r.id} (${r.path} v${r.version}) failed ${r.attempts} time(s): ${r.error ?? '?'}`);
    } finally {
      state.close();
    }
  }
  const app = await openAppDatabase(cfg.database);
  let backlog: Awaited<ReturnType<typeof app.backlog>>;
  try {
    backlog = await app.backlog(cursor);
  } finally {
    await app.close();
  }
  const behindRows = open.rows + backlog.rows;
  const times = [open.oldest, backlog.oldest].filter((t): t is number => t !== undefined && Number.isFinite(t));
  const oldest = times.length > 0 ? Math.min(...times) : undefined;
  const behindMs = oldest === undefined ? 0 : Math.max(0, now - oldest);
  const problems: string[] = [];
  if (behindRows > limits.maxBehindRows) problems.push(`${behindRows} rows are not stored yet (more than ${limits.maxBehindRows})`);
  if (behindRows > 0 && behindMs > limits.maxBehindMs) problems.push(`the oldest upload not stored yet is ${formatDuration(behindMs)} old (more than ${formatDuration(limits.maxBehindMs)})`);
  if (problems.length > 0) {
    if (!state) problems.push(`the worker has never run with the state dir ${cfg.stateDir}`);
    problems.push(...failingRows);
  }
  return {
    target: cfg.target.name,
    healthy: problems.length === 0,
    behindRows,
    ...(oldest !== undefined ? { oldestPending: new Date(oldest).toISOString() } : {}),
    behindMs,
    failing: open.failing,
    ...(lastPass !== undefined ? { lastPass } : {}),
    problems,
  };
}
