import { FtpsSource, type FtpsSourceOptions } from './ftps.js';
import { resilient, type ResilientOptions } from './resilient.js';
import { S3Source, type S3SourceOptions } from './s3.js';
import { SftpSource, type SftpSourceOptions } from './sftp.js';
import type { RemoteSource, RemoteSourceConfig } from './types.js';

export interface OpenSourceOptions extends ResilientOptions {
  /** protocol knobs, mostly for tests */
  ftps?: FtpsSourceOptions;
  sftp?: SftpSourceOptions;
  s3?: S3SourceOptions;
}

/** The source a config names, retrying and resuming through broken connections (see resilient). */
export function openRemoteSource(config: RemoteSourceConfig, opts: OpenSourceOptions = {}): RemoteSource {
  const { ftps, sftp, s3, ...retry } = opts;
  switch (config.type) {
    case 'ftps':
      return resilient(new FtpsSource(config, ftps), retry);
    case 'sftp':
      return resilient(new SftpSource(config, sftp), retry);
    case 's3':
      return resilient(new S3Source(config, s3), retry);
  }
}
