import path from 'node:path';
import type { SecretReferences, TenantsConfig } from '../config/index.js';
import { configError } from '../errors.js';
import { xmlAttr, xmlText } from '../xml.js';
import { jenkinsCronSpec } from './cron.js';

/**
 * A tenants file as Jenkins items: a folder per tenant, in it a pipeline job per resource.
 * Pure: what `jenkins apply --tenants` sends, decided before anything is asked of Jenkins.
 */

/** In the description of every item this writes: what `apply` may update or disable. */
export const TENANT_MARKER = '[cerberus:tenants]';

export const FOLDER_CLASS = 'com.cloudbees.hudson.plugins.folder.Folder';

/** A Jenkins credential a job binds: its id and the variable it becomes. */
export interface CredentialBinding {
  id: string;
  kind: 'string' | 'file';
  variable: string;
  /** for a file: where the tenants file on the agent expects it */
  path?: string;
}

export interface TenantJobItem {
  /** `tenant/resource`, the Jenkins full name as well as the cerberus job */
  name: string;
  folder: string;
  xml: string;
  credentials: CredentialBinding[];
  /** `${cmd:…}` references: run on the agent as written */
  commands: string[];
}

export interface TenantFolderItem {
  name: string;
  xml: string;
}

export interface TenantPlan {
  folders: TenantFolderItem[];
  jobs: TenantJobItem[];
}

/** The credential a `${VAR}` of a tenant's resource is bound from (secret text, as VAR). */
export const varCredentialId = (tenant: string, variable: string) => `cerberus-${tenant}-${variable}`;

/** The credential a `${file:PATH}` is bound from (secret file): by the file's name. */
export const fileCredentialId = (tenant: string, file: string) => `cerberus-${tenant}-file-${path.posix.basename(file).replace(/[^A-Za-z0-9._-]/g, '-')}`;

/** A Groovy single-quoted string: never interpolated, so nothing of it is evaluated. */
const groovy = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;

function bindings(tenant: string, job: string, refs: SecretReferences, agentDir: string): CredentialBinding[] {
  const out: CredentialBinding[] = refs.vars.map((v) => ({ id: varCredentialId(tenant, v), kind: 'string' as const, variable: v }));
  const byId = new Map<string, string>();
  refs.files.forEach((f, i) => {
    const id = fileCredentialId(tenant, f);
    const other = byId.get(id);
    if (other !== undefined) {
      throw configError(`${job}: \${file:${other}} and \${file:${f}} would both be the Jenkins credential ${id}`, 'give the secret files different names');
    }
    byId.set(id, f);
    out.push({ id, kind: 'file', variable: `CERBERUS_SECRET_FILE_${i + 1}`, path: path.posix.resolve(agentDir, f) });
  });
  return out;
}

function pipelineScript(job: string, agent: string, agentFile: string, creds: CredentialBinding[]): string {
  const files = creds.filter((c) => c.kind === 'file');
  const env = [`CERBERUS_TENANTS = ${groovy(agentFile)}`, `CERBERUS_JOB = ${groovy(job)}`, ...files.map((c) => `${c.variable}_PATH = ${groovy(c.path ?? '')}`)];
  const binds = creds.map((c) => (c.kind === 'string' ? `string(credentialsId: ${groovy(c.id)}, variable: ${groovy(c.variable)}),` : `file(credentialsId: ${groovy(c.id)}, variable: ${groovy(c.variable)}),`));
  // a file credential is a temporary file of the build; the path the tenants file names becomes
  // a link to it (a link holds no secret), unless the agent holds a real file there
  const links = files.map((c) => `link "$${c.variable}" "$${c.variable}_PATH"`);
  const sh = [
    ...(links.length > 0 ? ['link() { if [ -e "$2" ] && [ ! -L "$2" ]; then return 0; fi; mkdir -p "$(dirname "$2")" && ln -sfn "$1" "$2"; }', ...links] : []),
    'cerberus backup --tenants "$CERBERUS_TENANTS" --job "$CERBERUS_JOB" --init --report reports',
  ];
  const body = [
    `          script {`,
    `            // 0 ok, 3 warnings or a guard tripped (UNSTABLE), anything else FAILED`,
    `            int code = sh(returnStatus: true, script: '''`,
    ...sh.map((l) => `              ${l}`),
    `            ''')`,
    `            if (code == 3) {`,
    `              unstable('cerberus backup completed with warnings, or a guard tripped (exit 3)')`,
    `            } else if (code != 0) {`,
    `              error("cerberus backup failed (exit \${code})")`,
    `            }`,
    `          }`,
  ];
  return [
    `// Written by cerberus jenkins apply --tenants for ${job}: edits here are replaced on the next apply.`,
    `// Secrets come from Jenkins credentials as environment variables; every sh string is single-quoted.`,
    `pipeline {`,
    `  agent { label ${groovy(agent)} }`,
    `  options {`,
    `    disableConcurrentBuilds()`,
    `    buildDiscarder(logRotator(numToKeepStr: '90', artifactNumToKeepStr: '30'))`,
    `  }`,
    `  environment {`,
    ...env.map((e) => `    ${e}`),
    `  }`,
    `  stages {`,
    `    stage('Backup') {`,
    `      steps {`,
    `        dir('reports') {`,
    `          deleteDir()`,
    `        }`,
    ...(binds.length > 0
      ? [`        withCredentials([`, ...binds.map((b) => `          ${b}`), `        ]) {`, ...body.map((l) => `  ${l}`), `        }`]
      : body),
    `      }`,
    `    }`,
    `  }`,
    `  post {`,
    `    always {`,
    `      junit allowEmptyResults: true, testResults: 'reports/junit.xml'`,
    `      archiveArtifacts artifacts: 'reports/**', allowEmptyArchive: true`,
    `      script {`,
    `        if (fileExists('reports/summary.md')) {`,
    `          currentBuild.description = readFile('reports/summary.md')`,
    `        }`,
    `      }`,
    `    }`,
    `  }`,
    `}`,
    ``,
  ].join('\n');
}

function jobXml(description: string, cronSpec: string, script: string): string {
  return [
    `<?xml version='1.1' encoding='UTF-8'?>`,
    `<flow-definition plugin="workflow-job">`,
    `  <description>${xmlText(description)}</description>`,
    `  <keepDependencies>false</keepDependencies>`,
    `  <properties>`,
    // the job property holds from the start; the pipeline's options only after its first run
    `    <org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty/>`,
    `    <org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>`,
    `      <triggers>`,
    `        <hudson.triggers.TimerTrigger>`,
    `          <spec>${xmlText(cronSpec)}</spec>`,
    `        </hudson.triggers.TimerTrigger>`,
    `      </triggers>`,
    `    </org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty>`,
    `  </properties>`,
    `  <definition class="${xmlAttr('org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition')}" plugin="workflow-cps">`,
    `    <script>${xmlText(script)}</script>`,
    `    <sandbox>true</sandbox>`,
    `  </definition>`,
    `  <triggers/>`,
    `  <disabled>false</disabled>`,
    `</flow-definition>`,
    ``,
  ].join('\n');
}

function folderXml(tenant: string): string {
  return [
    `<?xml version='1.1' encoding='UTF-8'?>`,
    `<${FOLDER_CLASS} plugin="cloudbees-folder">`,
    `  <description>${xmlText(`cerberus backups of the tenant ${tenant}, made by cerberus jenkins apply --tenants. ${TENANT_MARKER}`)}</description>`,
    `  <properties/>`,
    `</${FOLDER_CLASS}>`,
    ``,
  ].join('\n');
}

/**
 * Every tenant's folder and every resource's job. `agentFile` is the tenants file's absolute
 * path on the agents; `refs` is `tenantReferences` of the file.
 */
export function tenantPlan(tenants: TenantsConfig, refs: Map<string, SecretReferences>, agentFile: string): TenantPlan {
  const shown = path.basename(tenants.file);
  const agentDir = path.posix.dirname(agentFile);
  const folders = tenants.tenants.map((t) => ({ name: t.name, xml: folderXml(t.name) }));
  const jobs: TenantJobItem[] = [];
  for (const job of tenants.jobs.values()) {
    const what = `${shown}: ${job.name}`;
    const spec = jenkinsCronSpec(job.schedule, job.timezone, what);
    const own = refs.get(job.name) ?? { vars: [], files: [], commands: [] };
    const credentials = bindings(job.tenant, what, own, agentDir);
    const description = `cerberus backup of ${job.name} (${shown}), made by cerberus jenkins apply --tenants: edits are replaced on the next apply, and the job is disabled once the resource leaves the file. ${TENANT_MARKER}`;
    jobs.push({ name: job.name, folder: job.tenant, xml: jobXml(description, spec, pipelineScript(job.name, job.agent, agentFile, credentials)), credentials, commands: own.commands });
  }
  return { folders, jobs };
}
