/**
 * The scheduling core of `cerberus schedule --tenants FILE` (a daemon, or `--once`) and of
 * `cerberus health --tenants FILE`: when jobs fire, how many run at once, what was run,
 * failed or skipped, and whether a resource's backups keep up with its schedule.
 */
export { runChild, type ChildExit, type ChildRunOptions } from './child-run.js';
export { compileCron, type CronSchedule } from './cron.js';
export {
  acquireRunLock,
  isSuccess,
  jobFileStem,
  RunHistory,
  summarize,
  type HistoryRecord,
  type HistoryStore,
  type JobSummary,
  type ReleaseLock,
  type RunHistoryOptions,
  type RunRecord,
  type RunStatus,
  type SkippedRecord,
} from './history.js';
export {
  dueFire,
  MAX_TIMER_MS,
  Scheduler,
  systemClock,
  type Clock,
  type RunOutcome,
  type Runner,
  type ScheduledJob,
  type SchedulerOptions,
} from './scheduler.js';
export { assess, DEFAULT_MAX_GRACE_MS, DEFAULT_STALE_AFTER, formatTime, type AssessOptions, type Assessment, type HealthState } from './staleness.js';
