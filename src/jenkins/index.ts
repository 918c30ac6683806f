/** The jenkins module's public face: the REST client and the job definitions it sends. */
import { ExitCode } from '../errors.js';

export { JenkinsClient, jenkinsCredentials, type BuildState, type JenkinsCredentials, type JenkinsItem, type QueueState } from './client.js';
export { jenkinsCron, jenkinsCronSpec } from './cron.js';
export { configCovers } from './config-xml.js';
export { applyTenantPlan, type TenantAction, type TenantApplyRow } from './tenant-apply.js';
export { fileCredentialId, TENANT_MARKER, tenantPlan, varCredentialId, type CredentialBinding, type TenantJobItem, type TenantPlan } from './tenant-jobs.js';
export { BUNDLED_JOBS_DIR, readJobDefinitions, RESTORE_JOB, type JobDefinition } from './jobs.js';

/** A build's result as an exit code, the way the pipelines map cerberus' own: UNSTABLE is 3. */
export function exitCodeOfResult(result: string): ExitCode {
  if (result === 'SUCCESS') return ExitCode.ok;
  if (result === 'UNSTABLE') return ExitCode.warnings;
  return ExitCode.failed;
}
