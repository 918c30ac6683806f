import { describeError } from '../errors.js';

/** One step of a run as a report shows it: a JUnit test case, a row of the summary. */
export interface PhaseRecord {
  /** scan+encrypt+upload, verify, prune, ... */
  name: string;
  /** the target it concerns; none for steps of the whole run */
  target?: string;
  status: 'passed' | 'failed' | 'skipped';
  durationMs: number;
  /** why it failed or was skipped */
  message?: string;
}

/**
 * The steps of a run with their time and outcome, recorded as they happen so a report can
 * say which step failed even when the run ends in an exception.
 */
export class PhaseLog {
  readonly phases: PhaseRecord[] = [];

  constructor(private readonly clock: () => number = Date.now) {}

  /** Runs `fn` as one step: recorded passed, or failed with the error's text and rethrown. */
  async time<T>(name: string, target: string | undefined, fn: () => Promise<T>): Promise<T> {
    const start = this.clock();
    try {
      const value = await fn();
      this.add(name, target, 'passed', this.clock() - start);
      return value;
    } catch (err) {
      this.add(name, target, 'failed', this.clock() - start, describeError(err));
      throw err;
    }
  }

  /** A step that ran elsewhere (one encryption shared by several targets) or ended in a result. */
  record(name: string, target: string | undefined, durationMs: number, failure?: string): void {
    this.add(name, target, failure === undefined ? 'passed' : 'failed', durationMs, failure);
  }

  skip(name: string, target: string | undefined, why: string): void {
    this.add(name, target, 'skipped', 0, why);
  }

  private add(name: string, target: string | undefined, status: PhaseRecord['status'], durationMs: number, message?: string): void {
    this.phases.push({ name, ...(target !== undefined ? { target } : {}), status, durationMs, ...(message !== undefined ? { message } : {}) });
  }
}
