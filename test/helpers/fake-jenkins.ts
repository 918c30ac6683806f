import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A FAKE of the Jenkins REST endpoints cerberus calls, on 127.0.0.1: a Jenkins controller
 * cannot run here. It answers as Jenkins documents them and as a real 2.x controller does:
 *
 * - `HEAD|GET /job/NAME/api/json` (folders as /job/A/job/B), 404 when missing; for a folder, and
 *   for `GET /api/json` (the root), its `jobs`: `_class`, `name`, `url`, `color` (a job's:
 *   "disabled" or "notbuilt"), or the fields `?tree=jobs[a,b]` asks for (`_class` always);
 * - `POST /createItem?name=NAME` (or /job/FOLDER/createItem) with the config.xml as body (400 and
 *   `X-Error` when it exists; with `strictFolders`, 404 when FOLDER is not a folder);
 * - `GET|POST /job/NAME/config.xml`;
 * - `POST /job/NAME/disable` and `/enable`: `<disabled>` of its config, then 302 to the job;
 * - `POST /job/NAME/buildWithParameters` (form) → 201 with `Location: …/queue/item/N/`;
 * - `GET /queue/item/N/api/json`: waiting (with `why`) for `queuePolls` polls, then
 *   `executable: { number, url }`, or `cancelled: true`;
 * - `GET /job/NAME/N/api/json`: `building`, then `result`;
 * - `POST|GET /job/NAME/N/logText/progressiveText?start=K`: the log from byte K, with
 *   `X-Text-Size` (where the next call starts) and `X-More-Data: true` while it runs.
 *
 * An item whose config.xml is a `<com.cloudbees.hudson.plugins.folder.Folder>` is a folder.
 * Basic auth with one user and API token, 401 otherwise. Each log poll reveals one more of the
 * scripted log pieces; the build ends with its scripted result once all are out.
 */

export interface ScriptedBuild {
  log: string[];
  result: 'SUCCESS' | 'UNSTABLE' | 'FAILURE' | 'ABORTED';
  /** the queue item is cancelled instead of starting */
  cancel?: boolean;
}

export interface FakeBuild {
  job: string;
  number: number;
  parameters: Record<string, string>;
  script: ScriptedBuild;
  shown: number;
}

export interface FakeJenkins {
  url: string;
  /** job name (folder/job) → config.xml */
  jobs: Map<string, string>;
  builds: FakeBuild[];
  requests: Array<{ method: string; path: string; body: string; authorization: string | undefined }>;
  /** what the next build of any job does */
  next: ScriptedBuild;
  /** polls a queue item stays waiting */
  queuePolls: number;
  close(): Promise<void>;
}

export interface FakeJenkinsOptions {
  /**
   * Jobs only inside folders that exist, as Jenkins has it. Off by default for the tests that
   * put a job in a folder they never made.
   */
  strictFolders?: boolean;
}

const FOLDER = 'com.cloudbees.hudson.plugins.folder.Folder';
const classOf = (xml: string) => (new RegExp(`^\\s*(<\\?[^>]*\\?>\\s*)?(<!--[\\s\\S]*?-->\\s*)*<${FOLDER.replace(/\./g, '\\.')}[\\s>]`).test(xml) ? FOLDER : 'org.jenkinsci.plugins.workflow.job.WorkflowJob');
const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
const descriptionOf = (xml: string) => unescape(/<description>([\s\S]*?)<\/description>/.exec(xml)?.[1] ?? '');
const disabledIn = (xml: string) => /<disabled>true<\/disabled>/.test(xml);

export async function startFakeJenkins(user: string, token: string, opts: FakeJenkinsOptions = {}): Promise<FakeJenkins> {
  const state: Omit<FakeJenkins, 'url' | 'close'> = {
    jobs: new Map(),
    builds: [],
    requests: [],
    next: { log: ['Started by user cerberus\n', 'Finished: SUCCESS\n'], result: 'SUCCESS' },
    queuePolls: 2,
  };
  const queue = new Map<number, { build: FakeBuild; polls: number }>();
  let url = '';
  const auth = `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const u = new URL(req.url ?? '/', 'http://x');
      const method = req.method ?? 'GET';
      state.requests.push({ method, path: u.pathname + u.search, body: raw, authorization: req.headers.authorization });
      const send = (status: number, body = '', headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'text/plain;charset=utf-8', ...headers });
        res.end(method === 'HEAD' ? undefined : body);
      };
      const json = (value: unknown) => send(200, JSON.stringify(value), { 'content-type': 'application/json;charset=utf-8' });
      if (req.headers.authorization !== auth) return send(401, 'Unauthorized', { 'www-authenticate': 'Basic realm="Jenkins"' });

      // /job/a/job/b/<rest> → job "a/b" and the rest
      const m = /^((?:\/job\/[^/]+)+)(\/.*)?$/.exec(u.pathname);
      const job = m ? m[1]!.split('/job/').slice(1).map(decodeURIComponent).join('/') : undefined;
      const rest = (m?.[2] ?? '/').replace(/\/+$/, '') || '/';
      const form = new URLSearchParams(req.headers['content-type']?.includes('form') ? raw : '');

      if (method === 'POST' && /\/createItem$/.test(u.pathname)) {
        const dir = u.pathname.slice(0, -'/createItem'.length).split('/job/').slice(1).map(decodeURIComponent);
        const name = [...dir, u.searchParams.get('name') ?? ''].join('/');
        if (!req.headers['content-type']?.includes('xml')) return send(415, 'Unsupported Media Type');
        const parent = dir.join('/');
        if (opts.strictFolders && dir.length > 0 && (!state.jobs.has(parent) || classOf(state.jobs.get(parent)!) !== FOLDER)) return send(404, 'Not Found');
        if (state.jobs.has(name)) return send(400, 'exists', { 'x-error': `A job already exists with the name ?${name}?` });
        state.jobs.set(name, raw);
        return send(200);
      }
      const qm = /^\/queue\/item\/(\d+)\/api\/json$/.exec(u.pathname);
      if (qm && method === 'GET') {
        const q = queue.get(Number(qm[1]));
        if (!q) return send(404, 'Not Found');
        const base = { _class: 'hudson.model.Queue$WaitingItem', id: Number(qm[1]), task: { name: q.build.job } };
        if (q.build.script.cancel) return json({ ...base, _class: 'hudson.model.Queue$LeftItem', cancelled: true, executable: null });
        if (q.polls++ < state.queuePolls) return json({ ...base, why: q.polls === 1 ? 'In the quiet period.' : 'Waiting for next available executor on ‘arm64’', blocked: false });
        return json({ ...base, _class: 'hudson.model.Queue$LeftItem', cancelled: false, executable: { _class: 'org.jenkinsci.plugins.workflow.job.WorkflowRun', number: q.build.number, url: `${url}/job/${q.build.job}/${q.build.number}/` } });
      }
      // the items of a folder (or the root), as Jenkins lists them
      const listing = (folder: string) => {
        const fields = /^jobs\[([^\]]*)\]$/.exec(u.searchParams.get('tree') ?? '')?.[1]?.split(',');
        const items = [...state.jobs].filter(([n]) => n.startsWith(folder ? `${folder}/` : '') && !n.slice(folder ? folder.length + 1 : 0).includes('/'));
        return items.map(([n, xml]) => {
          const leaf = n.split('/').at(-1)!;
          const cls = classOf(xml);
          const all: Record<string, unknown> = { name: leaf, url: `${url}/job/${n.split('/').join('/job/')}/`, description: descriptionOf(xml), ...(cls === FOLDER ? {} : { color: disabledIn(xml) ? 'disabled' : 'notbuilt' }) };
          const picked = fields ? Object.fromEntries(fields.filter((f) => f in all).map((f) => [f, all[f]])) : { name: all.name, url: all.url, ...(cls === FOLDER ? {} : { color: all.color }) };
          return { _class: cls, ...picked };
        });
      };
      if (u.pathname === '/api/json' && method === 'GET') return json({ _class: 'hudson.model.Hudson', jobs: listing('') });
      if (job === undefined || !state.jobs.has(job)) return send(404, 'Not Found');

      if (rest === '/api/json' && (method === 'GET' || method === 'HEAD')) {
        const xml = state.jobs.get(job)!;
        if (classOf(xml) === FOLDER) return json({ _class: FOLDER, name: job.split('/').at(-1), jobs: listing(job) });
        return json({ _class: classOf(xml), name: job, buildable: !disabledIn(xml) });
      }
      if ((rest === '/disable' || rest === '/enable') && method === 'POST') {
        const xml = state.jobs.get(job)!;
        const flag = `<disabled>${rest === '/disable'}</disabled>`;
        state.jobs.set(job, /<disabled>(true|false)<\/disabled>/.test(xml) ? xml.replace(/<disabled>(true|false)<\/disabled>/, flag) : xml.replace(/(<\/[^>]+>\s*)$/, `  ${flag}\n$1`));
        return send(302, '', { location: `${url}/job/${job.split('/').join('/job/')}/` });
      }
      if (rest === '/config.xml' && method === 'GET') return send(200, state.jobs.get(job)!, { 'content-type': 'application/xml' });
      if (rest === '/config.xml' && method === 'POST') {
        state.jobs.set(job, raw);
        return send(200);
      }
      if (rest === '/buildWithParameters' && method === 'POST') {
        const build: FakeBuild = { job, number: state.builds.filter((b) => b.job === job).length + 1, parameters: Object.fromEntries(form), script: state.next, shown: 0 };
        state.builds.push(build);
        const id = 100 + queue.size + 1;
        queue.set(id, { build, polls: 0 });
        return send(201, '', { location: `${url}/queue/item/${id}/` });
      }
      const bm = /^\/(\d+)(\/api\/json|\/logText\/progressiveText)$/.exec(rest);
      const build = bm ? state.builds.find((b) => b.job === job && b.number === Number(bm[1])) : undefined;
      if (!bm || !build) return send(404, 'Not Found');
      const done = build.shown >= build.script.log.length;
      if (bm[2] === '/api/json') return json({ number: build.number, building: !done, result: done ? build.script.result : null, url: `${url}/job/${job}/${build.number}/` });
      build.shown = Math.min(build.shown + 1, build.script.log.length);
      const text = Buffer.from(build.script.log.slice(0, build.shown).join(''));
      const start = Number(form.get('start') ?? u.searchParams.get('start') ?? 0);
      const more = build.shown < build.script.log.length;
      return send(200, text.subarray(Math.min(start, text.length)).toString('utf8'), { 'x-text-size': String(text.length), ...(more ? { 'x-more-data': 'true' } : {}) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
