import type { Client, FileInfo } from 'basic-ftp';
import fs from 'node:fs';
import { PassThrough, Writable, type Readable } from 'node:stream';
import tls from 'node:tls';
import { CerberusError } from '../errors.js';
import { networkCode } from '../storage/index.js';
import { PATH_CODES, joinRemote, pathError, remoteRoot, type FtpsSourceConfig, type RemoteEntry, type RemoteSource } from './types.js';

/** Certificate failures: no retry helps, the config has to change. */
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

export interface FtpsSourceOptions {
  /** silence on the control or data connection before it counts as dead (default 30 s) */
  timeoutMs?: number;
}

/**
 * A folder on an FTP server, over explicit TLS (AUTH TLS) in passive mode. FTP does one thing at
 * a time per connection, so every operation waits its turn, a read until its stream is done.
 */
export class FtpsSource implements RemoteSource {
  readonly label: string;
  readonly root: string;
  private client: Client | undefined;
  /** the tail of the queue of operations on the connection */
  private turn: Promise<unknown> = Promise.resolve();
  /** the TLS context trusting caFile, made once: see `trust` */
  private trusted: { pem: string; context: tls.SecureContext } | undefined;

  constructor(
    private readonly cfg: FtpsSourceConfig,
    private readonly opts: FtpsSourceOptions = {},
  ) {
    if (!cfg.path.startsWith('/')) throw new CerberusError('CONFIG', `ftps source path ${cfg.path} is not absolute`, { hint: 'give the folder from the server\'s root, e.g. /var/www' });
    this.root = remoteRoot(cfg.path);
    this.label = `ftps://${cfg.username}@${cfg.host}:${cfg.port ?? 21}${this.root}`;
  }

  connect(): Promise<void> {
    return this.exclusive(() => this.login());
  }

  list(dir: string): Promise<RemoteEntry[]> {
    return this.exclusive(async () => {
      const client = await this.ready();
      // CWD then a bare LIST: vsftpd globs a LIST argument, so names with '[' or '*' would mislead it
      try {
        await client.cd(dir);
      } catch (err) {
        if (isFtpError(err) && err.code >= 500) throw await this.whyRefused(client, dir, err, 'folder');
        throw err;
      }
      const infos = await client.list();
      const entries: RemoteEntry[] = [];
      for (const info of infos) {
        if (info.name === '.' || info.name === '..' || info.name === '') continue;
        entries.push(await this.entry(client, dir, info));
      }
      return entries;
    });
  }

  read(file: string, offset: number): Promise<Readable> {
    return new Promise<Readable>((resolve, reject) => {
      void this.exclusive(async () => {
        let client: Client;
        try {
          client = await this.ready();
        } catch (err) {
          reject(err);
          return;
        }
        const out = new PassThrough();
        // the caller gets the stream with its first bytes (or its end), and a missing file as a
        // rejection, as the other sources do: basic-ftp tells nothing in between
        let handed = false;
        const hand = () => {
          if (!handed) resolve(out);
          handed = true;
        };
        // the bytes pass through `sink`, and `out` ends only on the server's 226: a data
        // connection that merely closes (server killed, TLS without close_notify) is not an end
        let waiting: (() => void) | undefined;
        const sink = new Writable({
          write(chunk: Buffer, _enc, cb) {
            hand();
            if (out.write(chunk)) cb();
            else waiting = cb;
          },
          final(cb) {
            cb();
          },
        });
        out.on('drain', () => {
          const cb = waiting;
          waiting = undefined;
          cb?.();
        });
        let settled = false;
        // a reader that leaves early: FTP has no reliable way to stop a RETR but dropping the connection
        out.once('close', () => {
          if (!settled) client.close();
        });
        try {
          await client.downloadTo(sink, file, offset);
          settled = true;
          hand();
          out.end();
        } catch (err) {
          settled = true;
          // a transfer cut short leaves the control connection out of step: the next operation logs in afresh
          if (!(isFtpError(err) && err.code >= 500)) client.close();
          let e = err as Error;
          if (isFtpError(err) && err.code === 550) e = await this.whyRefused(client, file, err, 'file').catch(() => e);
          if (!handed) {
            handed = true;
            out.destroy();
            reject(e);
          } else if (!out.destroyed) out.destroy(e);
        }
      });
    });
  }

  close(): Promise<void> {
    return this.exclusive(async () => {
      this.client?.close();
      this.client = undefined;
    });
  }

  transient(err: unknown): boolean {
    if (err instanceof CerberusError) return false;
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && PATH_CODES.has(code)) return false;
    // 421 closing, 425/426 data connection trouble, 450/451 the server's own trouble; 5xx are final
    if (isFtpError(err)) return err.code >= 400 && err.code < 500;
    if (networkCode(err) !== undefined) return true;
    const message = err instanceof Error ? err.message : '';
    return /closed|FIN packet|timeout|transfer strategies|socket|disconnected/i.test(message);
  }

  /** Runs `op` once every earlier operation has finished. */
  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const run = this.turn.then(op, op);
    this.turn = run.catch(() => undefined);
    return run;
  }

  /** The logged-in client; logs in again when a failure or an early end of a read closed it. */
  private async ready(): Promise<Client> {
    if (!this.client || this.client.closed) await this.login();
    return this.client!;
  }

  private async login(): Promise<void> {
    this.client?.close();
    this.client = undefined;
    const { Client } = await import('basic-ftp');
    const client = new Client(this.opts.timeoutMs ?? 30_000);
    client.ftp.verbose = false;
    const host = this.cfg.host;
    try {
      await client.connect(host, this.cfg.port ?? 21);
      try {
        await client.useTLS({ host, ...this.trust() });
      } catch (err) {
        throw this.tlsFailure(err);
      }
      // before USER, for non-ASCII names and passwords; servers that refuse it here take it after login
      await client.sendIgnoringError('OPTS UTF8 ON');
      try {
        await client.login(this.cfg.username, this.cfg.password);
      } catch (err) {
        if (isFtpError(err) && err.code === 530) {
          throw new CerberusError('SOURCE', `${this.label}: the server refused the login for user ${this.cfg.username}; check username and password`, { cause: err });
        }
        throw err;
      }
      // TYPE I, PBSZ 0, PROT P (the data connections are encrypted too), and MLSD when offered
      await client.useDefaultSettings();
    } catch (err) {
      client.close();
      throw err;
    }
    this.client = client;
  }

  private trust(): tls.ConnectionOptions {
    if (this.cfg.insecure) return { rejectUnauthorized: false };
    if (!this.cfg.caFile) return {};
    let pem: string;
    try {
      pem = fs.readFileSync(this.cfg.caFile, 'utf8');
    } catch (err) {
      throw new CerberusError('SOURCE', `${this.label}: cannot read caFile ${this.cfg.caFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, {
        hint: 'give the absolute path of the PEM certificate to trust',
        cause: err,
      });
    }
    // besides the system's roots, not instead of them. One context for every connection: basic-ftp
    // hands these options to tls.connect for each data connection too (every LIST and RETR), and a
    // `ca` option makes each one parse the ~150 root certificates anew, some 30 ms of CPU a file
    if (this.trusted?.pem !== pem) this.trusted = { pem, context: tls.createSecureContext({ ca: [...tls.rootCertificates, pem] }) };
    return { secureContext: this.trusted.context };
  }

  private tlsFailure(err: unknown): unknown {
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && CERT_CODES.has(code)) {
      return new CerberusError('SOURCE', `${this.label}: the server's TLS certificate is not trusted (${code}); set caFile to its certificate or CA, or insecure: true`, { cause: err });
    }
    if (isFtpError(err)) {
      return new CerberusError('SOURCE', `${this.label}: the server does not offer FTPS (AUTH TLS answered ${err.code}); cerberus only speaks FTP over TLS`, { cause: err });
    }
    return err;
  }

  private async entry(client: Client, dir: string, info: FileInfo): Promise<RemoteEntry> {
    const type: RemoteEntry['type'] = info.isDirectory ? 'dir' : info.isSymbolicLink ? 'symlink' : info.isFile ? 'file' : 'other';
    const p = info.permissions;
    const entry: RemoteEntry = {
      name: info.name,
      type,
      size: type === 'file' ? info.size : 0,
      mtimeMs: info.modifiedAt?.getTime() ?? listTime(info.rawModifiedAt),
      ...(p ? { mode: (p.user << 6) | (p.group << 3) | p.world } : {}),
      ...(info.link ? { target: info.link } : {}),
    };
    // LIST (no MLSD) gives minutes at best, days for older files: MDTM has the seconds.
    // Files only: MDTM follows a symlink, and vsftpd refuses it on folders
    if (!info.modifiedAt && type === 'file') {
      try {
        entry.mtimeMs = (await client.lastMod(joinRemote(dir, info.name))).getTime();
      } catch (err) {
        if (!isFtpError(err) || err.code < 500) throw err;
      }
    }
    return entry;
  }

  /**
   * After a 550 on CWD or RETR (vsftpd says 550 for missing and forbidden alike): whether the
   * path is missing, unreadable or of the other kind, from its parent's listing.
   */
  private async whyRefused(client: Client, p: string, err: Error, want: 'folder' | 'file'): Promise<NodeJS.ErrnoException> {
    const cut = p.lastIndexOf('/');
    const name = p.slice(cut + 1);
    if (cut < 0 || name === '') return pathError('EACCES', `${p}: ${err.message}`, err);
    const parent = cut === 0 ? '/' : p.slice(0, cut);
    try {
      await client.cd(parent);
    } catch (e) {
      if (!isFtpError(e) || e.code < 500) throw e;
      const up = await this.whyRefused(client, parent, e, 'folder');
      return up.code === 'EACCES' ? pathError('EACCES', `${p}: ${err.message}`, err) : pathError('ENOENT', `${p}: no such ${want}`, err);
    }
    const found = (await client.list()).find((i) => i.name === name);
    if (!found) return pathError('ENOENT', `${p}: no such ${want}`, err);
    if (want === 'folder' && !found.isDirectory && !found.isSymbolicLink) return pathError('ENOTDIR', `${p}: not a folder`, err);
    return pathError('EACCES', `${p}: ${err.message}`, err);
  }
}

function isFtpError(err: unknown): err is Error & { code: number } {
  return err instanceof Error && err.name !== 'CerberusError' && typeof (err as { code?: unknown }).code === 'number';
}

/**
 * A LIST date (`Mar 04 05:06` within the last half year, `Mar 04 2020` before), read as UTC, as
 * vsftpd writes it by default: folders and symlinks only, which MDTM cannot date. 0 when unreadable.
 */
export function listTime(raw: string, now = Date.now()): number {
  const m = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{4})|(\d{1,2}):(\d{2}))$/.exec(raw.trim());
  const month = m ? MONTHS.indexOf(m[1]!.toLowerCase()) : -1;
  if (!m || month < 0) return 0;
  const day = Number(m[2]);
  if (m[3]) return Date.UTC(Number(m[3]), month, day);
  const year = new Date(now).getUTCFullYear();
  const t = Date.UTC(year, month, day, Number(m[4]), Number(m[5]));
  // no year means within the last six months: a date ahead of now is last year's
  return t > now + 86_400_000 ? Date.UTC(year - 1, month, day, Number(m[4]), Number(m[5])) : t;
}
