import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { ConnectConfig, FileEntryWithStats, SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { CerberusError } from '../errors.js';
import { networkCode } from '../storage/index.js';
import { PATH_CODES, joinRemote, pathError, remoteRoot, type RemoteEntry, type RemoteSource, type SftpSourceConfig } from './types.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that name the request's trouble, not the connection's */
const NO_SUCH_FILE = 2;
const PERMISSION_DENIED = 3;
const NO_CONNECTION = 6;
const CONNECTION_LOST = 7;

export interface SftpSourceOptions {
  /** how long the SSH handshake and login may take (default 20 s) */
  readyTimeoutMs?: number;
}

/** `SHA256:` and unpadded base64 of the key blob, as `ssh-keygen -lf` prints it. */
export function hostKeyFingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The pin as a user may write it: with or without `SHA256:`, padded or not. */
function normalizePin(pin: string): string {
  const bare = pin.trim().replace(/^SHA256:/i, '').replace(/=+$/, '');
  return `SHA256:${bare}`;
}

/**
 * A folder on an SSH server, over SFTP, with a password or a key. The server's host key is
 * checked against `hostKey` when given; otherwise the one seen is kept in `hostKeySeen` so the
 * caller can ask the user to pin it. Symlinks are reported, never followed.
 */
export class SftpSource implements RemoteSource {
  readonly label: string;
  readonly root: string;
  private client: SftpClient | undefined;
  private sftp: SFTPWrapper | undefined;
  private seen: string | undefined;

  constructor(
    private readonly cfg: SftpSourceConfig,
    private readonly opts: SftpSourceOptions = {},
  ) {
    if (!cfg.path.startsWith('/')) throw new CerberusError('CONFIG', `sftp source path ${cfg.path} is not absolute`, { hint: 'give the folder from the server\'s root, e.g. /var/www' });
    this.root = remoteRoot(cfg.path);
    this.label = `sftp://${cfg.username}@${cfg.host}:${cfg.port ?? 22}${this.root}`;
  }

  get hostKeySeen(): string | undefined {
    return this.cfg.hostKey ? undefined : this.seen;
  }

  async connect(): Promise<void> {
    await this.close();
    const { default: Client } = await import('ssh2-sftp-client');
    // without callbacks the library writes every connection event to the console
    const quiet = { error: () => undefined, end: () => undefined, close: () => undefined };
    const client = new Client('cerberus', quiet);
    const pin = this.cfg.hostKey ? normalizePin(this.cfg.hostKey) : undefined;
    let seen: string | undefined;
    const password = this.cfg.password;
    const config: ConnectConfig = {
      host: this.cfg.host,
      port: this.cfg.port ?? 22,
      username: this.cfg.username,
      ...(password !== undefined ? { password, tryKeyboard: true } : {}),
      ...(this.cfg.privateKey !== undefined ? { privateKey: this.cfg.privateKey } : {}),
      ...(this.cfg.passphrase !== undefined ? { passphrase: this.cfg.passphrase } : {}),
      readyTimeout: this.opts.readyTimeoutMs ?? 20_000,
      // a connection that died silently (NAT, a cable) shows within half a minute
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer): boolean => {
        seen = hostKeyFingerprint(key);
        return pin === undefined || seen === pin;
      },
    };
    // servers that take passwords only as keyboard-interactive (PAM) ask for it there
    if (password !== undefined) {
      client.on('keyboard-interactive', (_name: string, _instructions: string, _lang: string, prompts: unknown[], finish: (answers: string[]) => void) =>
        finish(prompts.map(() => password)),
      );
    }
    try {
      this.sftp = await client.connect(config);
    } catch (err) {
      await client.end().catch(() => undefined);
      throw this.loginFailure(err, pin, seen);
    }
    this.seen = seen;
    this.client = client;
    client.on('close', () => {
      if (this.client === client) this.sftp = undefined;
    });
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const sftp = await this.ready();
    const items = await new Promise<FileEntryWithStats[]>((resolve, reject) =>
      sftp.readdir(dir, (err, list) => {
        if (!err) return resolve(list);
        // OpenSSH answers "no such file" for a file too: a root that is a file is no missing root
        if ((err as { code?: unknown }).code !== NO_SUCH_FILE) return reject(requestError(err, dir, 'folder'));
        sftp.lstat(dir, (e, st) => reject(e ? requestError(err, dir, 'folder') : pathError('ENOTDIR', `${dir}: not a folder`, err)));
      }),
    );
    const entries: RemoteEntry[] = [];
    for (const item of items) {
      if (item.filename === '.' || item.filename === '..') continue;
      const kind = item.attrs.mode & S_IFMT;
      const type: RemoteEntry['type'] = kind === S_IFDIR ? 'dir' : kind === S_IFREG ? 'file' : kind === S_IFLNK ? 'symlink' : 'other';
      const entry: RemoteEntry = {
        name: item.filename,
        type,
        size: type === 'file' ? item.attrs.size : 0,
        mtimeMs: item.attrs.mtime * 1000,
        mode: item.attrs.mode & 0o7777,
      };
      if (type === 'symlink') {
        const abs = joinRemote(dir, item.filename);
        entry.target = await new Promise<string>((resolve, reject) =>
          sftp.readlink(abs, (err, target) => (err ? reject(requestError(err, abs, 'symlink')) : resolve(target))),
        );
      }
      entries.push(entry);
    }
    return entries;
  }

  async read(file: string, offset: number): Promise<Readable> {
    const sftp = await this.ready();
    const stream = sftp.createReadStream(file, { start: offset });
    // the open's answer first: a missing file fails here rather than as the stream's first event
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(requestError(err, file, 'file'));
      stream.once('error', onError);
      stream.once('open', () => {
        stream.off('error', onError);
        resolve();
      });
    });
    return stream;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.sftp = undefined;
    await client?.end().catch(() => undefined);
  }

  transient(err: unknown): boolean {
    if (err instanceof CerberusError) return false;
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && PATH_CODES.has(code)) return false;
    if (typeof code === 'number') return code === NO_CONNECTION || code === CONNECTION_LOST;
    if (networkCode(err) !== undefined) return true;
    const level = (err as { level?: unknown })?.level;
    if (level === 'client-socket' || level === 'client-timeout') return true;
    const message = err instanceof Error ? err.message : '';
    return /timed out|no response|not connected|unexpected (end|close)|closed|connection lost|no sftp connection|handshake|keepalive/i.test(message);
  }

  /** The SFTP session; connects again when the connection went away between two operations. */
  private async ready(): Promise<SFTPWrapper> {
    if (!this.sftp) await this.connect();
    return this.sftp!;
  }

  private loginFailure(err: unknown, pin: string | undefined, seen: string | undefined): unknown {
    const message = err instanceof Error ? err.message : String(err);
    if (pin !== undefined && seen !== undefined && seen !== pin) {
      return new CerberusError('SOURCE', `${this.label}: the server's host key is ${seen}, not the pinned ${pin}; if its key really changed, set hostKey: ${seen}`, { cause: err });
    }
    if (/authentication methods failed/i.test(message)) {
      const how = this.cfg.privateKey !== undefined ? (this.cfg.password !== undefined ? 'password and key' : 'key') : 'password';
      return new CerberusError('SOURCE', `${this.label}: the server refused the login for user ${this.cfg.username}; check username and ${how}`, { cause: err });
    }
    // ssh2's words about the key never quote it
    if (/privateKey|passphrase|private key/i.test(message)) {
      return new CerberusError('SOURCE', `${this.label}: cannot use the private key (${message.replace(/^[a-zA-Z]+: /, '')}); check privateKey and passphrase`, { cause: err });
    }
    return err;
  }
}

/** An SFTP status as a walk can act on it: missing, forbidden, or (as is) something else. */
function requestError(err: Error, p: string, what: string): Error {
  const code = (err as { code?: unknown }).code;
  if (code === NO_SUCH_FILE) return pathError('ENOENT', `${p}: no such ${what}`, err);
  if (code === PERMISSION_DENIED) return pathError('EACCES', `${p}: permission denied`, err);
  return err;
}
