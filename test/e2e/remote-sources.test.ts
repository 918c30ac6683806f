import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cerberus, tempDir } from '../helpers/cli.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startFtpd, type FtpServer } from '../helpers/ftpd.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { startSshd, type SshServer } from '../helpers/sshd.js';

/**
 * Sources on other machines, end to end through the built CLI: a real vsftpd (FTPS), OpenSSH
 * (SFTP) and s3rver (S3) each serve the same tree, a 200 MB file and 2,000 small ones among
 * it; cerberus backs each up to Apache WebDAV and restores it, byte for byte. Then the
 * scheduler meets a server that goes down.
 */

const PASS = 'remote sources passphrase';
const SMALL_FILES = 2000;
const BIG_MIB = 200;

interface Item {
  type: 'file' | 'dir';
  size?: number;
  sha?: string;
}

let tree: string;
let apache: ApacheServer;
let ftpd: FtpServer;
let sshd: SshServer;
let s3: S3Server;
let expected: Map<string, Item>;

/** type, size and sha256 of every path: what any source must restore exactly */
async function listing(root: string): Promise<Map<string, Item>> {
  const out = new Map<string, Item>();
  const walk = async (dir: string, rel: string) => {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const abs = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fsp.lstat(abs);
      if (st.isDirectory()) {
        out.set(r, { type: 'dir' });
        await walk(abs, r);
      } else {
        const h = createHash('sha256');
        for await (const c of fs.createReadStream(abs, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
        out.set(r, { type: 'file', size: st.size, sha: h.digest('hex') });
      }
    }
  };
  await walk(root, '');
  return out;
}

async function makeTree(dir: string): Promise<void> {
  await fsp.mkdir(path.join(dir, 'empty folder'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'empty.txt'), '');
  // 200 MB that no two MiB repeat
  const big = fs.createWriteStream(path.join(dir, 'Große Datei.bin'));
  for (let i = 0; i < BIG_MIB; i++) {
    const block = createHash('sha512').update(String(i)).digest();
    if (!big.write(Buffer.alloc(1 << 20, block))) await new Promise<void>((r) => big.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => big.end((err?: Error | null) => (err ? reject(err) : resolve())));
  for (let i = 0; i < SMALL_FILES; i++) {
    const sub = path.join(dir, `Ordner ${i % 20}`, i % 3 === 0 ? 'tief/tiefer' : '');
    await fsp.mkdir(sub, { recursive: true });
    await fsp.writeFile(path.join(sub, `Brief ${i} – été.txt`), `Lettre numéro ${i}\n`.repeat(1 + (i % 50)));
  }
}

/** the same tree in a folder a server serves: hard links, so 200 MB are not copied twice */
async function serve(root: string): Promise<string> {
  const dir = path.join(root, 'tree');
  await new Promise<void>((resolve, reject) => {
    const cp = spawn('cp', ['-al', tree, dir], { stdio: 'inherit' });
    cp.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`cp exited ${code}`))));
  });
  // the servers' test users read it
  await new Promise<void>((resolve, reject) => {
    const ch = spawn('chmod', ['-R', 'a+rX', root], { stdio: 'inherit' });
    ch.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`chmod exited ${code}`))));
  });
  return dir;
}

async function uploadTree(server: S3Server, prefix: string): Promise<void> {
  // no aws-chunked bodies: s3rver would store their framing as the content
  const client = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
  const files = [...expected].filter(([, e]) => e.type === 'file').map(([p]) => p);
  const put = async (p: string) => {
    const abs = path.join(tree, p);
    const size = (await fsp.stat(abs)).size;
    await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${prefix}/${p}`, Body: size > 0 ? fs.createReadStream(abs) : Buffer.alloc(0), ContentLength: size }));
  };
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < files.length) await put(files[next++]!);
  }));
  // S3 has no empty folders: a marker key stands for it, and the walk keeps it as a folder
  await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `${prefix}/empty folder/`, Body: Buffer.alloc(0) }));
  client.destroy();
}

beforeAll(async () => {
  tree = path.join(await tempDir('cerberus-remote-tree-'), 'tree');
  await makeTree(tree);
  expected = await listing(tree);
  [apache, ftpd, sshd, s3] = await Promise.all([startApache(), startFtpd(), startSshd(), startS3rver({ bucket: 'sources' })]);
  await Promise.all([serve(ftpd.root), serve(sshd.root), uploadTree(s3, 'site')]);
}, 300_000);

afterAll(async () => {
  await Promise.all([apache?.stop(), ftpd?.stop(), sshd?.stop(), s3?.stop()]);
});

type Protocol = 'ftps' | 'sftp' | 's3';

function sourceYaml(protocol: Protocol): string {
  switch (protocol) {
    case 'ftps':
      return `{ type: ftps, host: 127.0.0.1, port: ${ftpd.port}, username: ${ftpd.username}, password: "\${SOURCE_PASSWORD}", path: ${path.join(ftpd.root, 'tree')}, ca: ${ftpd.certFile} }`;
    case 'sftp':
      return `{ type: sftp, host: 127.0.0.1, port: ${sshd.port}, username: ${sshd.username}, privateKey: "\${file:sftp.key}", hostKey: "${sshd.hostKey}", path: ${path.join(sshd.root, 'tree')} }`;
    case 's3':
      return `{ type: s3, endpoint: ${s3.endpoint}, bucket: ${s3.bucket}, prefix: site, accessKeyId: ${s3.accessKeyId}, secretAccessKey: "\${SOURCE_PASSWORD}" }`;
  }
}

async function job(protocol: Protocol) {
  const dir = await tempDir(`cerberus-remote-${protocol}-`);
  await fsp.writeFile(path.join(dir, 'sftp.key'), sshd.privateKey, { mode: 0o600 });
  const config = path.join(dir, 'cerberus.yaml');
  await fsp.writeFile(
    config,
    [
      'jobs:',
      `  ${protocol}:`,
      `    source: ${sourceYaml(protocol)}`,
      '    encryption: { kind: openpgp, passphrase: "${PASS}" }',
      `    targets: [{ name: dav, type: webdav, url: ${apache.url}, username: ${apache.username}, password: "\${DAV_PASSWORD}", path: ${protocol} }]`,
      '    timezone: UTC',
      '    volumeSize: 64MiB',
    ].join('\n') + '\n',
  );
  const secret = protocol === 'ftps' ? ftpd.password : protocol === 's3' ? s3.secretAccessKey : 'unused';
  const env = { CERBERUS_STATE_DIR: path.join(dir, 'state'), PASS, DAV_PASSWORD: apache.password, SOURCE_PASSWORD: secret };
  return { dir, config, secret, run: (args: string[]) => cerberus([...args, '-c', config], { cwd: dir, env, timeoutMs: 300_000 }) };
}

interface Stats {
  files: number;
  storedFiles: number;
}
const statsOf = (stdout: string) => (JSON.parse(stdout) as { targets: Array<{ status: string; stats: Stats }> }).targets[0]!;

describe.each<Protocol>(['ftps', 'sftp', 's3'])('a %s source', (protocol) => {
  it('backs up to WebDAV and restores byte for byte; an unchanged tree is not read again', { timeout: 300_000 }, async () => {
    const j = await job(protocol);
    expect((await j.run(['init'])).code).toBe(0);
    const first = await j.run(['backup', '--json', '--now', '2026-11-20T02:00:00Z']);
    expect(first.code, first.stderr).toBe(0);
    const files = [...expected.values()].filter((e) => e.type === 'file').length;
    expect(statsOf(first.stdout)).toMatchObject({ status: 'committed', stats: { files, storedFiles: files } });
    // no secret reaches the log
    expect(first.stderr).not.toContain(j.secret);

    const to = path.join(j.dir, 'restored');
    const restore = await j.run(['restore', '--at', 'latest', '--to', to]);
    expect(restore.code, restore.stderr).toBe(0);
    const got = await listing(to);
    expect([...got.keys()].filter((p) => !expected.has(p)), 'extra paths').toEqual([]);
    const differ = [...expected].filter(([p, e]) => JSON.stringify(got.get(p)) !== JSON.stringify(e));
    expect(differ.length, `${differ.length} paths differ, e.g. ${differ.slice(0, 3).map(([p, e]) => `${p}: ${JSON.stringify(got.get(p))} instead of ${JSON.stringify(e)}`).join('; ')}`).toBe(0);

    // size and mtime as the server reports them: nothing changed, nothing is read or stored
    const second = await j.run(['backup', '--json', '--now', '2026-11-21T02:00:00Z']);
    expect(second.code, second.stderr).toBe(0);
    expect(statsOf(second.stdout).stats).toMatchObject({ files, storedFiles: 0 });
  });
});

describe('remote sources that fail', () => {
  it('a refused login fails the run at once, naming the server and never the secret', { timeout: 120_000 }, async () => {
    for (const protocol of ['ftps', 's3'] as const) {
      const j = await job(protocol);
      // s3rver checks the access key, not the signature: there the key is what is wrong
      const text = await fsp.readFile(j.config, 'utf8');
      await fsp.writeFile(j.config, protocol === 'ftps' ? text.replace('${SOURCE_PASSWORD}', 'wrong-secret-123') : text.replace(`accessKeyId: ${s3.accessKeyId}`, 'accessKeyId: AKIAWRONGKEY'));
      const r = await j.run(['backup', '--init']);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/cerberus: error: .*(login|access key|credentials)/i);
      expect(r.stderr).not.toContain('wrong-secret-123');
      expect(r.stderr.split('\n').filter((l) => l.startsWith('cerberus: error:')).length).toBe(1);
    }
  });

  it('health --tenants flags a resource whose server was down for 3 schedule periods', { timeout: 180_000 }, async () => {
    const dir = await tempDir('cerberus-remote-down-');
    await fsp.writeFile(path.join(dir, 'sftp.key'), sshd.privateKey, { mode: 0o600 });
    const served = path.join(sshd.root, 'small');
    await fsp.mkdir(served, { recursive: true });
    await fsp.writeFile(path.join(served, 'note.txt'), 'a small resource\n');
    await fsp.chmod(sshd.root, 0o755);
    const file = path.join(dir, 'tenants.yaml');
    await fsp.writeFile(
      file,
      [
        'targets: [{ name: disk, type: local, path: repo }]',
        'encryption: { kind: openpgp, passphrase: "${PASS}" }',
        'timezone: UTC',
        'tenants:',
        '  - name: acme',
        '    resources:',
        `      - { name: website, schedule: "*/2 * * * * *", source: { type: sftp, host: 127.0.0.1, port: ${sshd.port}, username: ${sshd.username}, privateKey: "\${file:sftp.key}", hostKey: "${sshd.hostKey}", path: ${served} } }`,
      ].join('\n') + '\n',
    );
    const env = { CERBERUS_STATE_DIR: path.join(dir, 'state'), PASS, CERBERUS_RETRY_BASE_MS: '10' };
    const daemon = spawn(process.execPath, [BIN, 'schedule', '--tenants', file, '--grace', '5s'], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    daemon.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise((r) => daemon.on('close', r));
    try {
      for (let i = 0; i < 150 && !log.includes('acme/website: success'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(log).toContain('acme/website: success');
      const healthy = await cerberus(['health', '--tenants', file], { cwd: dir, env });
      expect(healthy.code, healthy.stdout + healthy.stderr).toBe(0);

      await sshd.stop({ keepData: true });
      try {
        // three periods of 2 s and each one's grace at the most: asked each second from the
        // second period on, until health calls it stale
        type Health = { schedule: Array<{ job: string; state: string; missedPeriods: number; message: string; lastFailure?: { error: string } }> };
        const down = Date.now();
        await new Promise((r) => setTimeout(r, 4_000));
        let h = await cerberus(['health', '--tenants', file, '--json'], { cwd: dir, env });
        const stale = (r: typeof h) => {
          const s = r.code === 1 ? (JSON.parse(r.stdout) as Health).schedule[0] : undefined;
          return s !== undefined && s.state === 'stale' && s.missedPeriods >= 3 && s.lastFailure !== undefined;
        };
        while (Date.now() - down < 20_000 && !stale(h)) {
          await new Promise((r) => setTimeout(r, 1_000));
          h = await cerberus(['health', '--tenants', file, '--json'], { cwd: dir, env });
        }
        expect(h.code, h.stderr).toBe(1);
        const out = JSON.parse(h.stdout) as Health;
        const s = out.schedule[0]!;
        expect(s.state, s.message).toBe('stale');
        expect(s.missedPeriods).toBeGreaterThanOrEqual(3);
        expect(s.message).toMatch(/no successful backup since .*scheduled runs missed/);
        expect(s.lastFailure?.error).toMatch(/127\.0\.0\.1|connect|refused/i);
      } finally {
        await sshd.start();
      }
    } finally {
      daemon.kill('SIGTERM');
      await exited;
    }
  });
});
