import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createProgram, main } from '../../src/cli/main.js';
import { configCovers, jenkinsCron, jenkinsCronSpec, TENANT_MARKER } from '../../src/jenkins/index.js';
import { ROOT, tempDir } from '../helpers/cli.js';
import { startFakeJenkins, type FakeJenkins } from '../helpers/fake-jenkins.js';
import { shSteps } from '../helpers/jenkinsfile.js';

// `jenkins apply --tenants` in process, against the FAKE Jenkins (test/helpers/fake-jenkins.ts)
const TOKEN = '11aa22bb33cc44dd55ee66ff77889900aa';
const SECRETS = { S3_SECRET: 's3-secret-value-4711', ACME_FTP_PASSWORD: 'ftp-secret-value-0815' };
const KEY = 'PRIVATE-KEY-BODY-not-for-jenkins';

let jenkins: FakeJenkins;
let dir: string;
let file: string;

const tenants = (resources: { acme: string[]; globex: string[] }) =>
  [
    'targets:',
    '  - { name: cold, type: s3, endpoint: http://127.0.0.1:9000, bucket: backups, accessKeyId: k, secretAccessKey: "${S3_SECRET}" }',
    'encryption: { kind: openpgp, recipients: [keys/ops.pub.asc] }',
    'timezone: Europe/Berlin',
    'tenants:',
    '  - name: acme',
    '    resources:',
    ...resources.acme.map((r) => `      - ${r}`),
    ...(resources.globex.length > 0 ? ['  - name: globex', '    agent: pi-2', '    resources:', ...resources.globex.map((r) => `      - ${r}`)] : []),
  ].join('\n') + '\n';

const WEBSITE = '{ name: website, schedule: "0 2 * * *", source: { type: sftp, host: sftp.acme.test, username: backup, privateKey: "${file:secrets/acme_key}", path: /var/www } }';
const FILES = '{ name: files, schedule: "@daily", source: { type: ftps, host: ftp.acme.test, username: backup, password: "${ACME_FTP_PASSWORD}", path: / } }';
const LOCAL = '{ name: local, schedule: "@hourly", source: { type: local, paths: [/srv/acme] } }';
const BUCKET = '{ name: bucket, schedule: "*/30 * * * *", source: { type: s3, bucket: globex-docs } }';
const ALL = { acme: [WEBSITE, FILES, LOCAL], globex: [BUCKET] };

beforeEach(async () => {
  jenkins = await startFakeJenkins('ops', TOKEN, { strictFolders: true });
  dir = await tempDir();
  file = path.join(dir, 'tenants.yaml');
  await fsp.mkdir(path.join(dir, 'secrets'));
  await fsp.writeFile(path.join(dir, 'secrets/acme_key'), KEY);
  await fsp.writeFile(path.join(dir, '.env'), Object.entries(SECRETS).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  await fsp.writeFile(file, tenants(ALL));
});
afterEach(async () => {
  await jenkins.close();
  await fsp.rm(dir, { recursive: true, force: true });
});

async function apply(...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) => new Writable({ write: (c: Buffer, _e, cb) => (add(c.toString()), cb()) });
  const code = await main(['jenkins', 'apply', '--url', jenkins.url, '--tenants', file, '--agent-tenants', '/etc/cerberus/tenants.yaml', ...extra], {
    env: { JENKINS_USER: 'ops', JENKINS_TOKEN: TOKEN, ...SECRETS },
    stdout: sink((s) => (stdout += s)),
    stderr: sink((s) => (stderr += s)),
    cwd: dir,
  });
  return { code, stdout, stderr };
}

const writes = () => jenkins.requests.filter((r) => r.method === 'POST');
const scriptOf = (xml: string) => /<script>([\s\S]*)<\/script>/.exec(xml)![1]!.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

describe('jenkins apply --tenants', () => {
  it('makes a folder per tenant and a job per resource: cron, no overlap, agent, credentials, the backup step', async () => {
    const r = await apply();
    expect(r.code, r.stderr).toBe(0);
    expect([...jenkins.jobs.keys()]).toEqual(['acme', 'globex', 'acme/website', 'acme/files', 'acme/local', 'globex/bucket']);
    expect(jenkins.jobs.get('acme')).toMatch(/^<\?xml[^>]*>\s*<com\.cloudbees\.hudson\.plugins\.folder\.Folder/);
    const spec = (name: string) => /<spec>([\s\S]*?)<\/spec>/.exec(jenkins.jobs.get(name)!)![1];
    expect(spec('acme/website')).toBe('TZ=Europe/Berlin\n0 2 * * *');
    expect(spec('acme/files')).toBe('TZ=Europe/Berlin\nH H * * *');
    expect(spec('acme/local')).toBe('TZ=Europe/Berlin\nH * * * *');
    expect(spec('globex/bucket')).toBe('TZ=Europe/Berlin\n*/30 * * * *');
    for (const name of ['acme/website', 'acme/files', 'acme/local', 'globex/bucket']) {
      const xml = jenkins.jobs.get(name)!;
      expect(xml).toContain('<org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty/>');
      expect(xml).toContain('disableConcurrentBuilds()');
      expect(xml).toContain(TENANT_MARKER);
      expect(xml).toContain('<disabled>false</disabled>');
      const script = scriptOf(xml);
      const steps = shSteps(script);
      expect(steps.unquoted).toEqual([]);
      expect(steps.scripts.join('\n')).toContain('cerberus backup --tenants "$CERBERUS_TENANTS" --job "$CERBERUS_JOB" --init --report reports');
      expect(script).toContain(`CERBERUS_JOB = '${name}'`);
      expect(script).toContain("CERBERUS_TENANTS = '/etc/cerberus/tenants.yaml'");
      expect(script).toContain("junit allowEmptyResults: true, testResults: 'reports/junit.xml'");
      expect(script).toContain(`agent { label '${name.startsWith('globex') ? 'pi-2' : 'cerberus'}' }`);
      expect(script).toContain("string(credentialsId: 'cerberus-" + name.split('/')[0] + "-S3_SECRET', variable: 'S3_SECRET')");
    }
    const website = scriptOf(jenkins.jobs.get('acme/website')!);
    expect(website).toContain("file(credentialsId: 'cerberus-acme-file-acme_key', variable: 'CERBERUS_SECRET_FILE_1')");
    expect(website).toContain("CERBERUS_SECRET_FILE_1_PATH = '/etc/cerberus/secrets/acme_key'");
    expect(scriptOf(jenkins.jobs.get('acme/files')!)).toContain("string(credentialsId: 'cerberus-acme-ACME_FTP_PASSWORD', variable: 'ACME_FTP_PASSWORD')");
    expect(r.stdout).toMatch(/acme\/\s+created/);
    expect(r.stdout).toMatch(/acme\/files\s+created\s+credentials: cerberus-acme-S3_SECRET, cerberus-acme-ACME_FTP_PASSWORD/);
    // no value of a secret anywhere: not in a config, a request, or the output
    const everything = [...jenkins.jobs.values(), ...jenkins.requests.map((q) => q.body), r.stdout, r.stderr].join('\n');
    for (const v of [...Object.values(SECRETS), KEY, TOKEN]) expect(everything).not.toContain(v);
  });

  it('the step calls flags cerberus backup has, and the pipeline compiles as Groovy', async () => {
    expect((await apply()).code).toBe(0);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const backup = createProgram({ env: {}, stdout: sink, stderr: sink, cwd: ROOT, ownsProcess: false }, () => undefined).commands.find((c) => c.name() === 'backup')!;
    for (const flag of ['--tenants', '--job', '--init', '--report']) expect(backup.options.map((o) => o.long)).toContain(flag);
    const groovy = path.join(dir, 'website.Jenkinsfile');
    await fsp.writeFile(groovy, scriptOf(jenkins.jobs.get('acme/website')!));
    // Debian's groovy on Java 17, as test/pipelines/groovy.test.ts (which insists on it) finds them
    const jvm = fs.existsSync('/usr/lib/jvm') ? fs.readdirSync('/usr/lib/jvm').find((d) => /^java-17-openjdk-/.test(d)) : undefined;
    if (!fs.existsSync('/usr/bin/groovy') || (!process.env.JAVA_HOME && !jvm)) return;
    const env = { ...process.env, JAVA_HOME: process.env.JAVA_HOME || path.join('/usr/lib/jvm', jvm!) };
    const r = await promisify(execFile)('groovy', ['test/pipelines/parse.groovy', groovy], { cwd: ROOT, env });
    expect(r.stdout).toContain(`parsed ${groovy}`);
  }, 120_000);

  it('applying twice changes nothing the second time', async () => {
    expect((await apply()).code).toBe(0);
    const before = writes().length;
    const again = await apply();
    expect(again.code, again.stderr).toBe(0);
    expect(writes().length).toBe(before);
    for (const name of ['acme/website', 'acme/files', 'acme/local', 'globex/bucket']) expect(again.stdout).toMatch(new RegExp(`${name}\\s+unchanged`));
    // a changed schedule is an update of that job alone
    await fsp.writeFile(file, tenants({ ...ALL, acme: [WEBSITE.replace('0 2 * * *', '15 3 * * *'), FILES, LOCAL] }));
    const changed = await apply();
    expect(changed.stdout).toMatch(/acme\/website\s+updated/);
    expect(changed.stdout).toMatch(/acme\/files\s+unchanged/);
    expect(writes().map((q) => q.path).slice(before)).toEqual(['/job/acme/job/website/config.xml']);
  });

  it('disables the jobs of removed resources and tenants, never a hand-made job', async () => {
    expect((await apply()).code).toBe(0);
    jenkins.jobs.set('acme/by-hand', '<flow-definition><description>made by a person</description><disabled>false</disabled></flow-definition>');
    await fsp.writeFile(file, tenants({ acme: [WEBSITE, FILES], globex: [] }));
    const r = await apply();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/acme\/local\s+disabled\s+no longer in the tenants file/);
    expect(r.stdout).toMatch(/globex\/bucket\s+disabled/);
    expect(jenkins.jobs.get('acme/local')).toContain('<disabled>true</disabled>');
    expect(jenkins.jobs.get('globex/bucket')).toContain('<disabled>true</disabled>');
    expect(jenkins.jobs.get('acme/by-hand')).toContain('<disabled>false</disabled>');
    expect(jenkins.jobs.has('acme/local')).toBe(true);
    expect(r.stdout).not.toContain('by-hand');
    const again = await apply();
    expect(again.stdout).toMatch(/acme\/local\s+already disabled/);
    expect(writes().filter((q) => q.path.endsWith('/disable'))).toHaveLength(2);
    // back in the file: enabled again
    await fsp.writeFile(file, tenants(ALL));
    expect((await apply()).stdout).toMatch(/acme\/local\s+updated/);
    expect(jenkins.jobs.get('acme/local')).toContain('<disabled>false</disabled>');
  });

  it('--dry-run prints the XML it would send and changes nothing', async () => {
    const r = await apply('--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('<!-- acme/website: would create -->');
    expect(r.stdout).toContain('<!-- acme: would create -->');
    expect(r.stdout).toContain('<spec>TZ=Europe/Berlin\nH H * * *</spec>');
    expect(r.stderr).toMatch(/globex\/bucket\s+would create/);
    expect(writes()).toEqual([]);
    expect(jenkins.jobs.size).toBe(0);
  });

  it('refuses a seconds schedule naming the resource, a hand-made job at a name it needs, and --repo with --tenants', async () => {
    await fsp.writeFile(file, tenants({ ...ALL, acme: [LOCAL.replace('@hourly', '30 0 2 * * *')] }));
    const secs = await apply();
    expect(secs.code).toBe(2);
    expect(secs.stderr).toMatch(/acme\/local: schedule "30 0 2 \* \* \*" cannot be a Jenkins cron: it has a seconds field/);
    expect(jenkins.requests).toEqual([]);
    await fsp.writeFile(file, tenants(ALL));
    jenkins.jobs.set('acme', '<com.cloudbees.hudson.plugins.folder.Folder><description>ours, by hand</description></com.cloudbees.hudson.plugins.folder.Folder>');
    jenkins.jobs.set('acme/website', '<flow-definition><description>by hand</description></flow-definition>');
    const clash = await apply();
    expect(clash.code).toBe(2);
    expect(clash.stderr).toMatch(/acme\/website already exists in Jenkins and was not made by cerberus jenkins apply --tenants; nothing was changed/);
    expect(writes()).toEqual([]);
    const both = await apply('--repo', 'https://git.example.com/x.git');
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--tenants <file>' cannot be used with option '--repo/);
  });
});

describe('cron for Jenkins', () => {
  it('nicknames become H forms, five fields stay, the rest is refused', () => {
    expect(jenkinsCron('@daily', 'r')).toBe('H H * * *');
    expect(jenkinsCron('@weekly', 'r')).toBe('H H * * H');
    expect(jenkinsCron('@midnight', 'r')).toBe('H H(0-2) * * *');
    expect(jenkinsCron('0 2 * * 1-5', 'r')).toBe('0 2 * * 1-5');
    expect(jenkinsCronSpec('*/15 8-18 * * *', 'UTC', 'r')).toBe('TZ=UTC\n*/15 8-18 * * *');
    expect(() => jenkinsCron('0 0 2 * * *', 'acme/web')).toThrow(/acme\/web: .*seconds field/);
    expect(() => jenkinsCron('0 2 * * MON', 'r')).toThrow(/field "MON"/);
    expect(() => jenkinsCron('0 2 L * *', 'r')).toThrow(/field "L"/);
    expect(() => jenkinsCron('0 2 1 * 1', 'r')).toThrow(/both a day of month and a day of week/);
  });
});

describe('comparing configs as Jenkins keeps them', () => {
  const ours = "<?xml version='1.1' encoding='UTF-8'?>\n<flow-definition plugin=\"workflow-job\">\n  <description>x</description>\n  <properties>\n    <a/>\n  </properties>\n  <definition class=\"c\"><script>sh 'x' &amp;&amp; y</script></definition>\n  <disabled>false</disabled>\n</flow-definition>\n";
  it('ignores what Jenkins adds (versions, defaults, actions, entities), not what it changes', () => {
    const saved =
      "<?xml version='1.1' encoding='UTF-8'?>\n<flow-definition plugin=\"workflow-job@1400.v\">\n  <actions><x.Tracker><y>1</y></x.Tracker></actions>\n  <description>x</description>\n  <keepDependencies>false</keepDependencies>\n  <properties>\n    <a><abortPrevious>false</abortPrevious></a>\n  </properties>\n  <definition class=\"c\" plugin=\"workflow-cps@3.0\"><script>sh &apos;x&apos; &amp;&amp; y</script><sandbox>true</sandbox></definition>\n  <triggers/>\n  <disabled>false</disabled>\n</flow-definition>";
    expect(configCovers(saved, ours)).toBe(true);
    expect(configCovers(saved.replace('<disabled>false', '<disabled>true'), ours)).toBe(false);
    expect(configCovers(saved.replace('&apos;x&apos;', '&apos;z&apos;'), ours)).toBe(false);
    expect(configCovers(saved.replace('<a>', '<b>').replace('</a>', '</b>'), ours)).toBe(false);
    expect(configCovers('not xml <', ours)).toBe(false);
  });
});
