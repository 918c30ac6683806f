import fs from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { ROOT } from '../helpers/cli.js';

/**
 * docker/compose.yaml, the stack for trying cerberus, checked as far as it can be without a
 * Docker engine: its shape, where its secrets come from, and that the config it mounts is one
 * cerberus accepts with the variables of try/env.example.
 */

const dir = path.join(ROOT, 'docker');
interface Service {
  image?: string;
  build?: { context: string; dockerfile: string };
  env_file?: string;
  environment?: unknown;
  command?: string[];
  volumes?: string[];
  ports?: string[];
}
const compose = parse(fs.readFileSync(path.join(dir, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };

describe('docker/compose.yaml', () => {
  it('runs cerberus from docker/Dockerfile beside a WebDAV and an S3 server', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['cerberus', 's3', 'webdav']);
    const c = compose.services.cerberus!;
    expect(fs.existsSync(path.join(dir, c.build!.context, c.build!.dockerfile))).toBe(true);
    expect(c.volumes).toEqual(expect.arrayContaining(['state:/state', './try/cerberus.yaml:/config/cerberus.yaml:ro']));
    for (const v of c.volumes!) {
      const from = v.split(':')[0]!;
      if (from.startsWith('./')) expect(['./try/documents', './try/restore'].includes(from) || fs.existsSync(path.join(dir, from)), from).toBe(true);
      else expect(compose.volumes).toHaveProperty(from);
    }
    // the servers answer on loopback only
    for (const s of Object.values(compose.services)) for (const p of s.ports ?? []) expect(p).toMatch(/^127\.0\.0\.1:/);
    expect(compose.services.s3!.command).toEqual(expect.arrayContaining(['s3rver@3.7.1', '--configure-bucket', 'backups']));
  });

  it('takes secrets from .env, never from the file itself', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.environment, `${name} sets its environment inline`).toBeUndefined();
    }
    expect(compose.services.cerberus!.env_file).toBe('.env');
    expect(fs.readFileSync(path.join(ROOT, '.gitignore'), 'utf8')).toMatch(/^\.env$/m);
  });

  it('mounts a config that cerberus accepts with the variables of try/env.example', async () => {
    const env = parseEnv(fs.readFileSync(path.join(dir, 'try/env.example'), 'utf8')) as NodeJS.ProcessEnv;
    const config = await loadConfig(path.join(dir, 'try/cerberus.yaml'), { HOME: '/nonexistent', ...env });
    const job = config.jobs.get('documents')!;
    expect(job.source.paths).toEqual(['/documents']);
    expect(job.targets.map((t) => `${t.name}:${t.type}`)).toEqual(['webdav:webdav', 's3:s3']);
    expect(JSON.stringify(job.targets)).toContain('http://webdav/dav');
    expect(JSON.stringify(job.targets)).toContain('http://s3:4568');
  });

  it("gives Apache only modules that Apache ships (checked against this machine's apache2)", () => {
    const conf = fs.readFileSync(path.join(dir, 'try/httpd.conf'), 'utf8');
    const modules = [...conf.matchAll(/^LoadModule \S+ modules\/(\S+)$/gm)].map((m) => m[1]!);
    expect(modules).toEqual(expect.arrayContaining(['mod_dav.so', 'mod_dav_fs.so', 'mod_auth_basic.so']));
    for (const m of modules) {
      if (m === 'mod_unixd.so') continue; // built into Debian's apache2 binary, a module in the httpd image
      expect(fs.existsSync(path.join('/usr/lib/apache2/modules', m)), m).toBe(true);
    }
  });
});
