import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A FAKE of the GitHub REST API's issues endpoints, on 127.0.0.1: GitHub itself cannot run
 * here. It implements what cerberus calls, as GitHub documents them: list a repository's
 * issues (state, labels), create an issue, comment on one, and update its state. It checks
 * the token the way GitHub does (`Authorization: token …`, 401 "Bad credentials").
 */

export interface FakeIssue {
  number: number;
  title: string;
  body: string;
  labels: string[];
  state: 'open' | 'closed';
  state_reason: string | null;
  comments: string[];
  pull_request?: { url: string };
}

export interface FakeGithub {
  url: string;
  issues: FakeIssue[];
  /** every request: method, path and raw body, to check that no secret travels in them */
  requests: Array<{ method: string; path: string; body: string; authorization: string | undefined }>;
  close(): Promise<void>;
}

export async function startFakeGithub(repo: string, token: string): Promise<FakeGithub> {
  const issues: FakeIssue[] = [];
  const requests: FakeGithub['requests'] = [];
  const base = `/repos/${repo}/issues`;
  const view = (i: FakeIssue) => ({ ...i, labels: i.labels.map((name) => ({ name })), comments: i.comments.length });
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push({ method: req.method ?? '', path: url.pathname + url.search, body: raw, authorization: req.headers.authorization });
      const send = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(value));
      };
      if (req.headers.authorization !== `token ${token}`) return send(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      const m = /^\/(\d+)(\/comments)?$/.exec(url.pathname.slice(base.length));
      if (url.pathname === base && req.method === 'GET') {
        const state = url.searchParams.get('state') ?? 'open';
        const labels = (url.searchParams.get('labels') ?? '').split(',').filter(Boolean);
        return send(200, issues.filter((i) => (state === 'all' || i.state === state) && labels.every((l) => i.labels.includes(l))).map(view));
      }
      if (url.pathname === base && req.method === 'POST') {
        const issue: FakeIssue = { number: issues.length + 1, title: String(body.title), body: String(body.body ?? ''), labels: (body.labels as string[] | undefined) ?? [], state: 'open', state_reason: null, comments: [] };
        issues.push(issue);
        return send(201, view(issue));
      }
      const issue = m ? issues.find((i) => i.number === Number(m[1])) : undefined;
      if (!issue) return send(404, { message: 'Not Found' });
      if (m?.[2] && req.method === 'POST') {
        issue.comments.push(String(body.body));
        return send(201, { id: issue.comments.length, body: body.body });
      }
      if (!m?.[2] && req.method === 'PATCH') {
        if (body.state === 'open' || body.state === 'closed') issue.state = body.state;
        if (typeof body.state_reason === 'string') issue.state_reason = body.state_reason;
        return send(200, view(issue));
      }
      return send(404, { message: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    issues,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
