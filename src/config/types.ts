export interface LocalTargetConfig {
  name: string;
  type: 'local';
  /** absolute */
  path: string;
}

/** webdav/s3 join this union later; the zod target schema is already discriminated on `type`. */
export type TargetConfig = LocalTargetConfig;

export type Compression = 'none' | 'zlib';

export type EncryptionConfig =
  | { kind: 'openpgp'; recipients: string[]; passphrase?: undefined; compression: Compression }
  | { kind: 'openpgp'; recipients: []; passphrase: string; compression: Compression };

export interface JobConfig {
  name: string;
  source: {
    /** absolute, normalized, no trailing slash, distinct basenames */
    paths: string[];
    /** glob patterns as given */
    exclude: string[];
  };
  encryption: EncryptionConfig;
  targets: TargetConfig[];
  retention: { daily: number; weekly: number; monthly: number; quarterly: number; keepWithinMs: number };
  /** fractions 0..1, and a file count */
  guards: { maxShrink: number; maxChanged: number; minFiles: number };
  /** IANA zone */
  timezone: string;
  /** bytes */
  volumeSize: number;
}

export interface Config {
  /** absolute */
  file: string;
  /** the config file's folder; relative paths were resolved against it */
  dir: string;
  /** in file order */
  jobs: Map<string, JobConfig>;
}
