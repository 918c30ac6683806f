export type { FtpsSourceConfig, RemoteEntry, RemoteSource, RemoteSourceConfig, S3SourceConfig, SftpSourceConfig } from './types.js';
export { openRemoteSource, type OpenSourceOptions } from './open.js';
export { resilient, type ResilientOptions } from './resilient.js';
export { isMissingError } from './types.js';
export { walkRemote } from './walk.js';
export { hostKeyFingerprint } from './sftp.js';
