import type { Readable } from 'node:stream';

/** One name in a remote folder, as the server reports it. */
export interface RemoteEntry {
  name: string;
  /** 'other': a socket, FIFO or device (SFTP tells them): walkRemote reports it skipped */
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** modification time in ms since the epoch, at the precision the server gives (FTP: seconds) */
  mtimeMs: number;
  /** permission bits when the server tells them (SFTP; FTP's LIST: rwx only), else undefined */
  mode?: number;
  /** a symlink's target, when the server tells it */
  target?: string;
}

/**
 * A source that lives on another machine (FTPS, SFTP, S3), read where it is: listed folder by
 * folder and each file streamed, never copied whole to the local disk first. One connection,
 * used for one operation at a time: a caller lists, or reads one file to its end, then goes on.
 */
export interface RemoteSource {
  /** for messages and reports, e.g. `sftp://backup@host:2222/var/www`; never holds a secret */
  readonly label: string;
  /** the root folder on the server that the backup holds (absolute, '/'-separated) */
  readonly root: string;
  /** logs in; a refused login is a CerberusError('SOURCE') that says so, and is not retried */
  connect(): Promise<void>;
  /**
   * the entries of one folder (absolute path), in any order; '.' and '..' never. A folder that
   * does not exist fails with an error whose `code` is 'ENOENT' (one that cannot be read:
   * 'EACCES', a file: 'ENOTDIR'), so a walk can tell a missing root from a broken server.
   */
  list(dir: string): Promise<RemoteEntry[]>;
  /**
   * a file's bytes from `offset` to its end (the caller reads the stream to its end or destroys
   * it); a file that is not there (any more) rejects with `code` 'ENOENT', one it may not read 'EACCES'
   */
  read(file: string, offset: number): Promise<Readable>;
  close(): Promise<void>;
  /**
   * Whether a failure is the connection's (a reset, a timeout, a server going away: closing,
   * connecting again and repeating may help) rather than the request's or the login's. Each
   * protocol knows its own signs; resilient() asks here.
   */
  transient?(err: unknown): boolean;
  /** SFTP without a pinned hostKey: the fingerprint the server showed at the last login, to pin */
  readonly hostKeySeen?: string;
}

// validated once, by the config schema, with every default filled in
export type { FtpsSourceConfig, RemoteSourceConfig, S3SourceConfig, SftpSourceConfig } from '../config/types.js';

/** A config path as a root: absolute, '/'-separated, no trailing '/' (but '/' itself). */
export function remoteRoot(p: string): string {
  const trimmed = p.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** `dir/name` for server paths (never path.join: a name is a name, '..' included). */
export function joinRemote(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/** A path that is missing, unreadable or not a folder, with the errno-style code walks act on. */
export function pathError(code: 'ENOENT' | 'EACCES' | 'ENOTDIR', message: string, cause?: unknown): NodeJS.ErrnoException {
  return Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });
}

/** A file or folder that is not there (any more): a file deleted between the listing and its read. */
export function isMissingError(err: unknown): boolean {
  return (err as { code?: unknown } | undefined)?.code === 'ENOENT';
}

export const PATH_CODES: ReadonlySet<string> = new Set(['ENOENT', 'EACCES', 'ENOTDIR']);
