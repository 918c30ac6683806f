import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { secretFromEnv } from '../config/index.js';
import { CerberusError, usageError } from '../errors.js';
import { VERSION } from '../version.js';

/**
 * The one place that speaks to Jenkins, through the `jenkins` package. That package is no
 * longer maintained, so nothing else imports it: if it has to go, only this file changes.
 *
 * Authentication is a user and an API token (Basic auth). Jenkins exempts API-token requests
 * from CSRF crumbs (since 2.96), so no crumb is fetched.
 */

export interface JenkinsCredentials {
  url: string;
  user: string;
  token: string;
}

/** JENKINS_USER and JENKINS_TOKEN (or JENKINS_TOKEN_FILE): never flags, so never in argv. */
export async function jenkinsCredentials(url: string, env: NodeJS.ProcessEnv): Promise<JenkinsCredentials> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`--url ${url} is not a URL`, 'give the Jenkins address, e.g. https://jenkins.example.com/');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw usageError(`--url ${url} is not an http(s) address`, 'give the Jenkins address, e.g. https://jenkins.example.com/');
  if (parsed.username || parsed.password) {
    throw usageError('--url must not carry a user or password (they would show in the process list)', 'set JENKINS_USER and JENKINS_TOKEN instead');
  }
  const user = env.JENKINS_USER;
  const token = await secretFromEnv(env, 'JENKINS_TOKEN');
  if (!user || !token) {
    throw usageError('JENKINS_USER and JENKINS_TOKEN are not both set', 'set them to a Jenkins user and one of its API tokens (user menu → Security → API Token); JENKINS_TOKEN_FILE may name a file holding the token');
  }
  return { url: parsed.toString().replace(/\/+$/, ''), user, token };
}

const QueueItem = z.object({
  id: z.number().optional(),
  cancelled: z.boolean().optional(),
  why: z.string().nullable().optional(),
  executable: z.object({ number: z.number().int().positive(), url: z.string().optional() }).nullable().optional(),
});

const Build = z.object({
  number: z.number().int().optional(),
  building: z.boolean(),
  result: z.string().nullable(),
  url: z.string().optional(),
});

const Items = z.array(
  z.object({
    _class: z.string().optional(),
    name: z.string(),
    description: z.string().nullable().optional(),
    color: z.string().nullable().optional(),
  }),
);

/** An item of a folder (or of the root): its class tells a folder from a job; `color` is "disabled" for a disabled job. */
export type JenkinsItem = z.infer<typeof Items>[number];

export type QueueState = { state: 'waiting'; why: string } | { state: 'cancelled' } | { state: 'started'; number: number; url: string | undefined };
export type BuildState = z.infer<typeof Build>;

export class JenkinsClient {
  private constructor(
    private readonly api: import('jenkins').default,
    readonly url: string,
  ) {}

  static async connect(creds: JenkinsCredentials, timeoutMs = 60_000): Promise<JenkinsClient> {
    const { default: Jenkins } = await import('jenkins');
    const api = new Jenkins({
      baseUrl: creds.url,
      crumbIssuer: false,
      timeout: timeoutMs,
      headers: {
        authorization: `Basic ${Buffer.from(`${creds.user}:${creds.token}`).toString('base64')}`,
        'user-agent': `cerberus/${VERSION}`,
      },
    });
    return new JenkinsClient(api, creds.url);
  }

  /** Creates the job, or replaces the config of the one that exists. */
  async putJob(name: string, xml: string): Promise<'created' | 'updated'> {
    return this.call(`job ${name}`, async () => {
      if (await this.api.job.exists(name)) {
        await this.api.job.config(name, xml);
        return 'updated';
      }
      await this.api.job.create(name, xml);
      return 'created';
    });
  }

  /** Creates a job or folder; fails when the name is taken. */
  async createItem(name: string, xml: string): Promise<void> {
    await this.call(`job ${name}`, () => this.api.job.create(name, xml));
  }

  async updateConfig(name: string, xml: string): Promise<void> {
    await this.call(`job ${name}`, () => this.api.job.config(name, xml));
  }

  /** The config.xml as Jenkins keeps it, or undefined when there is no such item. */
  async config(name: string): Promise<string | undefined> {
    try {
      return await this.call(`job ${name}`, () => this.api.job.config(name));
    } catch (err) {
      if (err instanceof CerberusError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** The items of a folder (the root when none), with their descriptions. */
  async items(folder?: string): Promise<JenkinsItem[]> {
    const what = folder === undefined ? 'the list of jobs' : `folder ${folder}`;
    const raw = await this.call(what, () => this.api.job.list({ ...(folder === undefined ? {} : { name: folder }), tree: 'jobs[name,description,color]' }));
    return this.parse(Items, raw, what);
  }

  async disable(name: string): Promise<void> {
    await this.call(`job ${name}`, () => this.api.job.disable(name));
  }

  async jobExists(name: string): Promise<boolean> {
    return this.call(`job ${name}`, () => this.api.job.exists(name));
  }

  /**
   * Queues a build with parameters and returns its queue item. The `{ name, parameters }`
   * form: `job.build(name, params)` would read params as options and drop them silently.
   */
  async build(name: string, parameters: Record<string, string>): Promise<number> {
    const id = await this.call(`job ${name}`, () => this.api.job.build({ name, parameters }));
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new CerberusError('SERVICE', `${this.url}: Jenkins queued ${name} but sent no queue item (no Location header)`, {
        hint: 'check that the job is a parameterized pipeline; the build may still have started',
      });
    }
    return id;
  }

  async queueItem(id: number): Promise<QueueState> {
    const raw = await this.call(`queue item ${id}`, () => this.api.queue.item(id));
    const item = this.parse(QueueItem, raw, `queue item ${id}`);
    if (item.cancelled) return { state: 'cancelled' };
    if (item.executable) return { state: 'started', number: item.executable.number, url: item.executable.url };
    return { state: 'waiting', why: item.why ?? 'waiting' };
  }

  async buildState(name: string, number: number): Promise<BuildState> {
    const raw = await this.call(`build ${name} #${number}`, () => this.api.build.get(name, number));
    return this.parse(Build, raw, `build ${name} #${number}`);
  }

  /** The console log from byte `start` on: the text, where the next call starts, and whether more will come. */
  async logFrom(name: string, number: number, start: number): Promise<{ text: string; next: number; more: boolean }> {
    const r = await this.call(`the log of ${name} #${number}`, () => this.api.build.log({ name, number, start, meta: true }));
    const text = typeof r.text === 'string' ? r.text : '';
    return { text, next: typeof r.size === 'number' ? r.size : start + Buffer.byteLength(text), more: r.more };
  }

  private parse<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
    const r = schema.safeParse(raw);
    if (!r.success) throw new CerberusError('SERVICE', `${this.url}: ${what} is not what Jenkins sends: ${r.error.issues[0]?.message ?? 'unexpected JSON'}`);
    return r.data;
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.describe(err, what);
    }
  }

  private describe(err: unknown, what: string): CerberusError {
    if (err instanceof CerberusError) return err;
    const e = err as { statusCode?: number; code?: string; message?: string; notFound?: boolean; res?: { statusCode?: number } };
    // the package's own 404 errors carry only `notFound` and `res`
    const status = e.statusCode ?? e.res?.statusCode ?? (e.notFound ? 404 : undefined);
    const msg = (e.message ?? String(err)).split('\n')[0];
    if (status === 401) return new CerberusError('SERVICE', `${this.url} refused the login (HTTP 401)`, { hint: 'check JENKINS_USER and JENKINS_TOKEN (an API token of that user)', cause: err });
    if (status === 403) return new CerberusError('SERVICE', `${this.url}: the user may not touch ${what} (HTTP 403)`, { hint: 'give the Jenkins user the Job/Configure, Job/Build and Job/Read permissions', cause: err });
    if (status === 404) return new CerberusError('NOT_FOUND', `${this.url}: ${what} not found`, { hint: 'check the name (jobs in folders are folder/job), or create the jobs with `cerberus jenkins apply`', cause: err });
    if (status !== undefined) return new CerberusError('SERVICE', `${this.url}: ${what} failed: HTTP ${status}: ${msg}`, { cause: err });
    return new CerberusError('SERVICE', `cannot reach Jenkins at ${this.url} (${what}): ${msg}${e.code && !msg?.includes(e.code) ? ` [${e.code}]` : ''}`, {
      hint: 'check --url and that Jenkins is up',
      cause: err,
    });
  }

  /** Waits until the queue item becomes a build; `onWait` hears each new reason it waits. */
  async waitForStart(id: number, pollMs: number, onWait: (why: string) => void): Promise<{ number: number; url: string | undefined }> {
    let last = '';
    for (;;) {
      const q = await this.queueItem(id);
      if (q.state === 'started') return q;
      if (q.state === 'cancelled') throw new CerberusError('SERVICE', `${this.url}: queue item ${id} was cancelled before it started`);
      if (q.why !== last) onWait((last = q.why));
      await sleep(pollMs);
    }
  }

  /** Streams the console log to `write` until the build is over, then returns its result. */
  async follow(name: string, number: number, pollMs: number, write: (text: string) => void): Promise<string> {
    let start = 0;
    for (;;) {
      const chunk = await this.logFrom(name, number, start);
      if (chunk.text) write(chunk.text);
      start = chunk.next;
      if (!chunk.more) break;
      await sleep(pollMs);
    }
    // the log ends a moment before the build records its result
    for (;;) {
      const b = await this.buildState(name, number);
      if (!b.building && b.result) return b.result;
      await sleep(pollMs);
    }
  }
}
