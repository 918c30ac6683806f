/** What every target accepts besides its own keys; the wrappers in storage/open.ts use these. */
export interface TargetTransport {
  /** further attempts after a retryable failure */
  retries: number;
  /** ms a request may wait for a response, or a body stay without progress */
  timeoutMs: number;
  /** requests in flight at once */
  concurrency: number;
  /** bytes per second for uploads and downloads; undefined is unlimited */
  bwlimit: number | undefined;
}

export interface LocalTargetConfig extends TargetTransport {
  name: string;
  type: 'local';
  /** absolute */
  path: string;
  /** hardlink: a plain repository, every generation a browsable folder tree (see jobs/stage-backup.ts) */
  snapshots?: 'hardlink';
}

export interface WebdavTargetConfig extends TargetTransport {
  name: string;
  type: 'webdav';
  /** the server's base URL, without the repository path */
  url: string;
  username: string | undefined;
  password: string | undefined;
  /** the repository folder on the server, '/'-separated, no trailing '/' */
  path: string;
  /** size: PROPFIND after each put; readback: also download and compare sha256 */
  verify: 'size' | 'readback';
}

export interface S3TargetConfig extends TargetTransport {
  name: string;
  type: 's3';
  bucket: string;
  /** key prefix without leading or trailing '/'; '' for the bucket root */
  prefix: string;
  region: string;
  endpoint: string | undefined;
  forcePathStyle: boolean;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  sessionToken: string | undefined;
  /** when_required: no streamed checksum framing; the safe default for custom endpoints */
  checksums: 'when_supported' | 'when_required';
  /** bytes per multipart part */
  partSize: number;
  storageClass: string | undefined;
}

export type TargetConfig = LocalTargetConfig | WebdavTargetConfig | S3TargetConfig;

export type Compression = 'none' | 'zlib';

export type OpenpgpEncryption =
  | { kind: 'openpgp'; recipients: string[]; passphrase?: undefined; compression: Compression }
  | { kind: 'openpgp'; recipients: []; passphrase: string; compression: Compression };

/** Every generation is a Cryptomator vault (format 8, SIV_GCM) opened with this password. */
export interface CryptomatorEncryption {
  kind: 'cryptomator';
  password: string;
}

export type EncryptionConfig = OpenpgpEncryption | CryptomatorEncryption;

export interface JobConfig {
  name: string;
  source: {
    /** absolute, normalized, no trailing slash, distinct basenames; empty when databases are given */
    paths: string[];
    /** glob patterns as given */
    exclude: string[];
    /** dumped into `databases/<name>.dump` (.sql for mysql) of every generation; names distinct */
    databases: DatabaseSourceConfig[];
    /** a tree on a server instead of paths (which are then empty) */
    remote?: RemoteSourceConfig;
    /** read and hash every file on every run, trusting no size and mtime */
    rehash?: boolean;
  };
  encryption: EncryptionConfig;
  targets: TargetConfig[];
  retention: { daily: number; weekly: number; monthly: number; quarterly: number; keepWithinMs: number; yearly?: number };
  /** fractions 0..1, and a file count */
  guards: { maxShrink: number; maxChanged: number; minFiles: number };
  /** IANA zone */
  timezone: string;
  /** bytes */
  volumeSize: number;
  report: { github?: GithubAlertConfig };
  /** the yearly 7-Zip cold copy: its own password, never the vault's */
  export?: { password: string; level: number };
  /** commands run around the backup, each list in order */
  hooks: Record<HookName, HookConfig[]>;
  /** target names: backup writes the first (a plain stage) and replicates it to the others */
  stages?: string[] | undefined;
}

/** A source on an FTPS server (explicit TLS, passive mode); `path` absolute on the server. */
export interface FtpsSourceConfig {
  type: 'ftps';
  host: string;
  port: number;
  username: string;
  password: string;
  path: string;
  /** a PEM file of the CA or the server's own certificate to trust */
  caFile?: string;
  /** no certificate check at all */
  insecure: boolean;
}

/** A source on an SFTP server: a key (its text) or a password. */
export interface SftpSourceConfig {
  type: 'sftp';
  host: string;
  port: number;
  username: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  /** the server key's fingerprint, SHA256:…, as ssh-keygen -lf prints it */
  hostKey?: string;
  path: string;
}

/** A source in an S3 bucket, below `prefix` ('' for the whole bucket). */
export interface S3SourceConfig {
  type: 's3';
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle: boolean;
}

export type RemoteSourceConfig = FtpsSourceConfig | SftpSourceConfig | S3SourceConfig;

/** A database the backup dumps (engine/database-dump.ts); `url` may hold the password. */
export interface DatabaseSourceConfig {
  type: 'postgres' | 'mysql';
  url: string;
  name: string;
}

export type HookName = 'before' | 'afterSnapshot' | 'after' | 'onError';

/** One command a hook runs. */
export interface HookConfig {
  /** the program and its arguments; with shell, one command line for /bin/sh -c */
  argv: string[];
  shell: boolean;
  timeoutMs: number;
  /** absolute; the config file's folder unless set */
  cwd: string;
}

/** Failures and recoveries as GitHub issues, one per job and target. */
export interface GithubAlertConfig {
  /** owner/name */
  repo: string;
  token: string;
  labels: string[];
  apiUrl: string;
  /** may the issue hold error messages (which can name files)? */
  details: boolean;
}

export interface Config {
  /** absolute */
  file: string;
  /** the config file's folder; relative paths were resolved against it */
  dir: string;
  /** in file order */
  jobs: Map<string, JobConfig>;
}
