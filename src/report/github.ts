import type { GithubAlertConfig } from '../config/index.js';
import { VERSION } from '../version.js';

/**
 * Failures and recoveries as GitHub issues, one per job and target: a failure opens the
 * issue, or comments on it when it is already open; a later success comments and closes it.
 * The one place that speaks to GitHub (through @octokit/rest).
 */

export interface Alert {
  job: string;
  target: string;
  failing: boolean;
  /** what noticed it: `backup`, `health` */
  command: string;
  /** one line without file names or messages, e.g. "failed (exit 1) in step plan" */
  summary: string;
  /** messages and warnings: in the issue only where the config allows details */
  details: string[];
  at: Date;
}

export interface AlertOutcome {
  job: string;
  target: string;
  action: 'opened' | 'commented' | 'closed' | 'none';
  issue?: number;
}

export const issueTitle = (job: string, target: string) => `cerberus: ${job} → ${target}`;

export async function sendAlerts(cfg: GithubAlertConfig, alerts: Alert[]): Promise<AlertOutcome[]> {
  const { Octokit } = await import('@octokit/rest');
  const octokit = new Octokit({
    auth: cfg.token,
    baseUrl: cfg.apiUrl.replace(/\/+$/, ''),
    userAgent: `cerberus/${VERSION}`,
    // its request log would write to the console, through the build log; failures reach the caller
    log: { debug() {}, info() {}, warn() {}, error() {} },
  });
  const [owner, repo] = cfg.repo.split('/') as [string, string];
  const open = await octokit.paginate(octokit.rest.issues.listForRepo, { owner, repo, state: 'open', labels: cfg.labels.join(','), per_page: 100 });
  const out: AlertOutcome[] = [];
  for (const a of alerts) {
    const title = issueTitle(a.job, a.target);
    const existing = open.find((i) => i.title === title && i.pull_request === undefined);
    const body = describe(cfg, a);
    if (a.failing && !existing) {
      const { data } = await octokit.rest.issues.create({ owner, repo, title, body, labels: cfg.labels });
      out.push({ job: a.job, target: a.target, action: 'opened', issue: data.number });
    } else if (a.failing && existing) {
      await octokit.rest.issues.createComment({ owner, repo, issue_number: existing.number, body });
      out.push({ job: a.job, target: a.target, action: 'commented', issue: existing.number });
    } else if (existing) {
      await octokit.rest.issues.createComment({ owner, repo, issue_number: existing.number, body });
      await octokit.rest.issues.update({ owner, repo, issue_number: existing.number, state: 'closed', state_reason: 'completed' });
      out.push({ job: a.job, target: a.target, action: 'closed', issue: existing.number });
    } else {
      out.push({ job: a.job, target: a.target, action: 'none' });
    }
  }
  return out;
}

function describe(cfg: GithubAlertConfig, a: Alert): string {
  const head = `\`cerberus ${a.command}\` of job \`${a.job}\` on target \`${a.target}\`: ${a.summary} (${a.at.toISOString()}).`;
  if (!a.failing) return `${head}\n\nRecovered; closing.`;
  const lines = [head];
  if (cfg.details && a.details.length > 0) lines.push('', '```', ...a.details.slice(0, 20).map((d) => d.replace(/```/g, "'''")), '```');
  else lines.push('', 'The build log and its reports have the details.');
  return lines.join('\n');
}
