/** The config module's public face: load and validate the YAML config once, then use plain typed objects. */
export type { Config, CryptomatorEncryption, DatabaseSourceConfig, EncryptionConfig, GithubAlertConfig, HookConfig, HookName, JobConfig, OpenpgpEncryption, LocalTargetConfig, RemoteSourceConfig, FtpsSourceConfig, SftpSourceConfig, S3SourceConfig, S3TargetConfig, TargetConfig, TargetTransport, WebdavTargetConfig } from './types.js';
export { WEBDAV_PRESETS } from './schema.js';
export { loadConfig, selectJob } from './load.js';
export { DEFAULT_AGENT, loadTenants, tenantJobName, tenantReferences, type SecretReferences, type TenantJob, type TenantsConfig } from './tenants.js';
export { parseDuration, parsePercent, parseSize } from './units.js';
export { secretFromEnv } from './env.js';
