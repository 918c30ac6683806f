import { formatBytes, formatDuration } from './format.js';

/**
 * What jobs tell the person watching. On a terminal: a live progress line. Elsewhere
 * (Jenkins, cron): one line per phase, no control characters. Everything goes to stderr, so
 * stdout stays clean for tables and --json.
 */
export interface ProgressState {
  files: number;
  bytes: number;
  totalFiles?: number;
  totalBytes?: number;
}

export interface Reporter {
  /** a person is watching a terminal: worth a live progress line and the work to estimate totals */
  readonly interactive: boolean;
  phase(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  /** something went wrong and was handled (a retry): shown even in --json runs, not a warning */
  notice(message: string): void;
  progress(state: ProgressState): void;
  /** ends a progress line, if any */
  endProgress(): void;
  readonly warnings: string[];
}

export class ConsoleReporter implements Reporter {
  readonly warnings: string[] = [];
  private lastDraw = 0;
  private drawn = false;
  private readonly started = Date.now();

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number } = process.stderr,
    private readonly quiet = false,
  ) {}

  private get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  get interactive(): boolean {
    return this.tty && !this.quiet;
  }

  private write(line: string): void {
    this.endProgress();
    this.out.write(line + '\n');
  }

  phase(message: string): void {
    if (!this.quiet) this.write(`==> ${message}`);
  }

  info(message: string): void {
    if (!this.quiet) this.write(`    ${message}`);
  }

  warn(message: string): void {
    this.warnings.push(message);
    this.write(`WARNING: ${message}`);
  }

  notice(message: string): void {
    this.write(`    ${message}`);
  }

  progress(s: ProgressState): void {
    if (!this.tty || this.quiet) return;
    const now = Date.now();
    if (now - this.lastDraw < 200) return;
    this.lastDraw = now;
    const secs = Math.max((now - this.started) / 1000, 0.001);
    const rate = s.bytes / secs;
    let text = `${s.files} files, ${formatBytes(s.bytes)}, ${formatBytes(rate)}/s`;
    if (s.totalBytes && s.totalBytes > 0) {
      const pct = Math.min(100, (s.bytes / s.totalBytes) * 100);
      const eta = rate > 0 ? ((s.totalBytes - s.bytes) / rate) * 1000 : 0;
      text = `${pct.toFixed(1)}% ${text} of ${formatBytes(s.totalBytes)}, ETA ${formatDuration(eta)}`;
    }
    const width = (this.out.columns ?? 100) - 1;
    this.out.write(`\r${text.slice(0, width).padEnd(width)}`);
    this.drawn = true;
  }

  endProgress(): void {
    if (this.drawn) {
      this.out.write('\r' + ' '.repeat((this.out.columns ?? 100) - 1) + '\r');
      this.drawn = false;
    }
  }
}

/** For tests and library use: remembers, prints nothing. */
export class MemoryReporter implements Reporter {
  readonly interactive = false;
  readonly warnings: string[] = [];
  readonly lines: string[] = [];
  phase(m: string) {
    this.lines.push(m);
  }
  info(m: string) {
    this.lines.push(m);
  }
  warn(m: string) {
    this.warnings.push(m);
    this.lines.push(`WARNING: ${m}`);
  }
  notice(m: string) {
    this.lines.push(m);
  }
  progress() {}
  endProgress() {}
}
