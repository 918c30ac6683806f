/** The config module's public face: load and validate the YAML config once, then use plain typed objects. */
export type { Config, CryptomatorEncryption, DatabaseSourceConfig, EncryptionConfig, GithubAlertConfig, HookConfig, HookName, JobConfig, OpenpgpEncryption, LocalTargetConfig, S3TargetConfig, TargetConfig, TargetTransport, WebdavTargetConfig } from './types.js';
export { WEBDAV_PRESETS } from './schema.js';
export { loadConfig, selectJob } from './load.js';
export { parseDuration, parsePercent, parseSize } from './units.js';
export { secretFromEnv } from './env.js';
