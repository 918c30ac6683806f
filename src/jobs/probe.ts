import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { TargetConfig, WebdavTargetConfig } from '../config/index.js';
import { describeError } from '../errors.js';
import { joinPath, type Backend } from '../storage/backend.js';
import type { Reporter } from '../report/log.js';

/** One line of the probe's table. `essential` checks are the ones cerberus relies on. */
export interface ProbeCheck {
  check: string;
  ok: boolean;
  essential: boolean;
  detail: string;
}

export interface ProbeResult {
  target: string;
  type: TargetConfig['type'];
  checks: ProbeCheck[];
  /** every essential check passed */
  usable: boolean;
}

const PROBE_PREFIX = '.cerberus-probe-';

/**
 * Tries what cerberus needs from a target, in a scratch folder it removes afterwards.
 * For WebDAV it speaks HTTP itself, so it can see what the server really does with
 * chunked bodies, MOVE, COPY and ranges; other targets are probed through their backend.
 */
export async function runProbe(target: TargetConfig, backend: Backend, reporter: Reporter): Promise<ProbeResult> {
  const checks = target.type === 'webdav' ? await probeWebdav(target, reporter) : await probeBackend(backend, reporter);
  return { target: target.name, type: target.type, checks, usable: checks.every((c) => c.ok || !c.essential) };
}

type Step = (record: (check: string, ok: boolean, detail: string, essential?: boolean) => void) => Promise<void>;

/** Checks cerberus can do without: a failure there is reported, not fatal. */
const OPTIONAL = new Set(['OPTIONS', 'range GET', 'range get', 'chunked PUT', 'COPY file', 'COPY folder', 'copy', 'move']);

async function runSteps(reporter: Reporter, steps: Array<[string, Step]>, cleanup: () => Promise<string>): Promise<ProbeCheck[]> {
  const checks: ProbeCheck[] = [];
  const record = (check: string, ok: boolean, detail: string, essential = true) => {
    checks.push({ check, ok, essential, detail });
    reporter.info(`${ok ? 'ok  ' : essential ? 'FAIL' : 'no  '} ${check}: ${detail}`);
  };
  for (const [name, step] of steps) {
    try {
      await step(record);
    } catch (err) {
      record(name, false, describeError(err), !OPTIONAL.has(name));
    }
  }
  try {
    record('clean up', true, await cleanup(), false);
  } catch (err) {
    record('clean up', false, `${describeError(err)}; remove the ${PROBE_PREFIX}* folder by hand`, false);
  }
  return checks;
}

const rate = (bytes: number, ms: number) => `${((bytes / Math.max(ms, 1)) * 1000 / 2 ** 20).toFixed(1)} MiB/s`;

async function probeBackend(backend: Backend, reporter: Reporter): Promise<ProbeCheck[]> {
  const dir = `${PROBE_PREFIX}${randomBytes(4).toString('hex')}`;
  const data = randomBytes(64 * 1024);
  const big = randomBytes(8 * 2 ** 20);
  const file = joinPath(dir, 'a b#%?é.bin');
  const read = async (p: string, range?: { start: number; end: number }) => {
    const chunks: Buffer[] = [];
    for await (const c of await backend.get(p, range)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  return runSteps(
    reporter,
    [
      ['mkdir', async (r) => {
        await backend.mkdir(dir);
        r('mkdir', true, `${dir} created`);
      }],
      ['put', async (r) => {
        await backend.put(file, () => Readable.from([data]), data.length);
        r('put', true, `${data.length} bytes, name with space, #, %, ? and é`);
      }],
      ['get', async (r) => {
        const back = await read(file);
        r('get', back.equals(data), back.equals(data) ? 'bytes equal' : `got ${back.length} bytes, different content`);
      }],
      ['range get', async (r) => {
        const part = await read(file, { start: 100, end: 199 });
        r('range get', part.equals(data.subarray(100, 200)), `${part.length} bytes`, false);
      }],
      ['stat', async (r) => {
        const st = await backend.stat(file);
        r('stat', st?.size === data.length, st ? `size ${st.size}` : 'not found');
      }],
      ['list', async (r) => {
        const names = (await backend.list(dir)).map((e) => e.name);
        r('list', names.includes('a b#%?é.bin'), names.join(', ') || '(empty)');
      }],
      ['put 8 MiB', async (r) => {
        const t0 = Date.now();
        await backend.put(joinPath(dir, 'big.bin'), () => Readable.from([big]), big.length);
        const ms = Date.now() - t0;
        const t1 = Date.now();
        const back = await read(joinPath(dir, 'big.bin'));
        r('put 8 MiB', back.equals(big), `up ${rate(big.length, ms)}, down ${rate(big.length, Date.now() - t1)}`);
      }],
      ['copy', async (r) => {
        if (!backend.copy) return r('copy', false, 'not supported by this backend', false);
        await backend.copy(joinPath(dir, 'big.bin'), joinPath(dir, 'copy.bin'));
        r('copy', (await read(joinPath(dir, 'copy.bin'))).equals(big), 'server-side copy', false);
      }],
      ['move', async (r) => {
        if (!backend.move) return r('move', false, 'not supported; SHA256SUMS written last is the commit marker', false);
        await backend.move(file, joinPath(dir, 'moved.bin'));
        const gone = (await backend.stat(file)) === undefined;
        r('move', gone && (await read(joinPath(dir, 'moved.bin'))).equals(data), gone ? 'renamed' : 'source still there');
      }],
    ],
    async () => {
      for (const e of await backend.list(dir)) await backend.remove(joinPath(dir, e.name));
      await backend.remove(dir);
      return `${dir} removed`;
    },
  );
}

/** Plain HTTP against the server, with the target's credentials and timeout. */
async function probeWebdav(t: WebdavTargetConfig, reporter: Reporter): Promise<ProbeCheck[]> {
  const auth = t.username !== undefined ? `Basic ${Buffer.from(`${t.username}:${t.password ?? ''}`).toString('base64')}` : undefined;
  const base = `${t.url}/${t.path.split('/').filter(Boolean).map(encodeURIComponent).join('/')}`.replace(/\/+$/, '');
  const dir = `${base}/${PROBE_PREFIX}${randomBytes(4).toString('hex')}`;
  const url = (...names: string[]) => [dir, ...names.map(encodeURIComponent)].join('/');
  const request = async (method: string, where: string, init: { headers?: Record<string, string>; body?: Buffer | ReadableStream<Uint8Array> } = {}) => {
    const t0 = Date.now();
    const res = await fetch(where, {
      method,
      headers: { ...(auth ? { authorization: auth } : {}), ...init.headers },
      ...(init.body !== undefined ? { body: init.body, duplex: 'half' } : {}),
      signal: AbortSignal.timeout(t.timeoutMs),
    } as RequestInit);
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body, ms: Date.now() - t0 };
  };
  const data = randomBytes(64 * 1024);
  const big = randomBytes(8 * 2 ** 20);
  const propfindSize = async (where: string) => {
    const res = await request('PROPFIND', where, { headers: { depth: '0' } });
    const m = /getcontentlength[^>]*>\s*(\d+)\s*</i.exec(res.body.toString('utf8'));
    return { status: res.status, size: m ? Number(m[1]) : undefined };
  };
  const chunked = (buf: Buffer) =>
    new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < buf.length; i += 16384) controller.enqueue(buf.subarray(i, i + 16384));
        controller.close();
      },
    });

  return runSteps(
    reporter,
    [
      ['OPTIONS', async (r) => {
        const res = await request('OPTIONS', `${base}/`);
        if (res.status === 401 || res.status === 403) return r('OPTIONS', false, `${res.status}: check username and password`);
        const dav = res.headers.get('dav');
        r('OPTIONS', res.status < 400, `${res.status}; DAV: ${dav ?? '(none)'}; Allow: ${res.headers.get('allow') ?? '(none)'}`, false);
      }],
      ['MKCOL', async (r) => {
        // the repository folder may not exist before `cerberus init`; make it as init would
        const made: string[] = [];
        const segs = t.path.split('/').filter(Boolean);
        for (let i = 1; i <= segs.length; i++) {
          const at = `${t.url}/${segs.slice(0, i).map(encodeURIComponent).join('/')}/`;
          if ((await request('MKCOL', at)).status === 201) made.push(segs.slice(0, i).join('/'));
        }
        const res = await request('MKCOL', dir);
        r('MKCOL', res.status === 201, `${res.status}${made.length > 0 ? `; created /${made.at(-1)} (left in place)` : ''}`);
      }],
      ['PUT with Content-Length', async (r) => {
        const res = await request('PUT', url('a b#%?é.bin'), { headers: { 'content-length': String(data.length) }, body: data });
        const st = await propfindSize(url('a b#%?é.bin'));
        r('PUT with Content-Length', res.status < 300 && st.size === data.length, `${res.status}; PROPFIND size ${st.size ?? '?'}`);
      }],
      ['GET', async (r) => {
        const res = await request('GET', url('a b#%?é.bin'));
        r('GET', res.status === 200 && res.body.equals(data), `${res.status}; ${res.body.equals(data) ? 'bytes equal' : 'content differs'}`);
      }],
      ['range GET', async (r) => {
        const res = await request('GET', url('a b#%?é.bin'), { headers: { range: 'bytes=100-199' } });
        const ok = res.status === 206 && res.body.equals(data.subarray(100, 200));
        r('range GET', ok, `${res.status}${res.status === 200 ? ' (range ignored; whole file sent)' : ''}`, false);
      }],
      ['chunked PUT', async (r) => {
        const res = await request('PUT', url('chunked.bin'), { body: chunked(data) });
        const back = res.status < 300 ? await request('GET', url('chunked.bin')) : undefined;
        const ok = back !== undefined && back.body.equals(data);
        r('chunked PUT', ok, `${res.status}${back ? (ok ? '; stored intact' : `; stored ${back.body.length} bytes, not what was sent`) : ''} (cerberus always sends Content-Length)`, false);
      }],
      ['PUT 8 MiB', async (r) => {
        const res = await request('PUT', url('big.bin'), { headers: { 'content-length': String(big.length) }, body: big });
        const back = await request('GET', url('big.bin'));
        r('PUT 8 MiB', res.status < 300 && back.body.equals(big), `${res.status}; up ${rate(big.length, res.ms)}, down ${rate(big.length, back.ms)}`);
      }],
      ['MOVE file', async (r) => {
        const res = await request('MOVE', url('a b#%?é.bin'), { headers: { destination: url('moved.bin'), overwrite: 'F' } });
        const st = await propfindSize(url('moved.bin'));
        r('MOVE file', res.status < 300 && st.size === data.length, `${res.status}`);
      }],
      ['COPY file', async (r) => {
        const res = await request('COPY', url('moved.bin'), { headers: { destination: url('copy.bin'), overwrite: 'F' } });
        const st = await propfindSize(url('copy.bin'));
        r('COPY file', res.status < 300 && st.size === data.length, `${res.status}`, false);
      }],
      ['COPY folder', async (r) => {
        await request('MKCOL', url('sub'));
        await request('PUT', `${url('sub')}/x.bin`, { headers: { 'content-length': String(data.length) }, body: data });
        const res = await request('COPY', url('sub'), { headers: { destination: url('sub2'), overwrite: 'F', depth: 'infinity' } });
        const st = await propfindSize(`${url('sub2')}/x.bin`);
        r('COPY folder', res.status < 300 && st.size === data.length, `${res.status}`, false);
      }],
      ['MOVE folder', async (r) => {
        const res = await request('MOVE', url('sub'), { headers: { destination: url('sub3'), overwrite: 'F' } });
        const st = await propfindSize(`${url('sub3')}/x.bin`);
        r('MOVE folder', res.status < 300 && st.size === data.length, `${res.status} (commits a generation)`);
      }],
      ['PROPFIND Depth: 1', async (r) => {
        const res = await request('PROPFIND', `${dir}/`, { headers: { depth: '1' } });
        const n = (res.body.toString('utf8').match(/<[a-z0-9]*:?response[\s>]/gi) ?? []).length;
        r('PROPFIND Depth: 1', res.status === 207, `${res.status}; ${n} entries`);
      }],
    ],
    async () => {
      const res = await request('DELETE', `${dir}/`);
      if (res.status >= 300 && res.status !== 404) throw new Error(`DELETE answered ${res.status}`);
      return `${res.status}`;
    },
  );
}
