import fs from 'node:fs';
import path from 'node:path';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { PIPELINES } from '../helpers/jenkinsfile.js';

/**
 * pipelines/jobs/*.xml declare the same parameters as the Jenkinsfile they run, with the same
 * defaults, so the first "Build with parameters" offers what the pipeline reads.
 */

const JOBS = fs.readdirSync(path.join(ROOT, 'pipelines/jobs')).filter((f) => f.endsWith('.xml'));

interface Param {
  name: string;
  type: 'string' | 'boolean';
  default: string;
}

function fromJenkinsfile(groovy: string): Param[] {
  const block = /parameters\s*\{([\s\S]*?)\n\s*\}/.exec(groovy)?.[1] ?? '';
  return [...block.matchAll(/(string|booleanParam)\(name: '([^']+)', defaultValue: (?:'((?:[^'\\]|\\.)*)'|(true|false))/g)].map((m) => ({
    name: m[2]!,
    type: m[1] === 'string' ? 'string' : 'boolean',
    default: (m[3] ?? m[4] ?? '').replace(/\\'/g, "'"),
  }));
}

function fromXml(xml: string): { script: string; params: Param[]; noConcurrent: boolean } {
  const doc = new XMLParser({ isArray: (n) => n.endsWith('ParameterDefinition'), parseTagValue: false }).parse(xml) as {
    'flow-definition': {
      properties: Record<string, unknown> & { 'hudson.model.ParametersDefinitionProperty': { parameterDefinitions: Record<string, Array<{ name: string; defaultValue: string }>> } };
      definition: { scriptPath: string };
    };
  };
  const f = doc['flow-definition'];
  const defs = f.properties['hudson.model.ParametersDefinitionProperty'].parameterDefinitions;
  const params: Param[] = [
    ...(defs['hudson.model.StringParameterDefinition'] ?? []).map((p) => ({ name: p.name, type: 'string' as const, default: String(p.defaultValue ?? '') })),
    ...(defs['hudson.model.BooleanParameterDefinition'] ?? []).map((p) => ({ name: p.name, type: 'boolean' as const, default: String(p.defaultValue) })),
  ];
  return { script: f.definition.scriptPath, params, noConcurrent: 'org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty' in f.properties };
}

describe('pipelines/jobs/*.xml', () => {
  it('has a job for each pipeline', () => {
    expect(JOBS.sort()).toEqual(['cerberus-backup.xml', 'cerberus-export.xml', 'cerberus-health.xml', 'cerberus-restore.xml', 'cerberus-worker.xml']);
    expect(JOBS.map((f) => fromXml(fs.readFileSync(path.join(ROOT, 'pipelines/jobs', f), 'utf8')).script).sort()).toEqual([...PIPELINES].sort());
  });

  it.each(JOBS)('%s: well-formed, and declares its Jenkinsfile\'s parameters with their defaults', (file) => {
    const xml = fs.readFileSync(path.join(ROOT, 'pipelines/jobs', file), 'utf8');
    expect(XMLValidator.validate(xml)).toBe(true);
    const job = fromXml(xml);
    expect(job.noConcurrent).toBe(true);
    const wanted = fromJenkinsfile(fs.readFileSync(path.join(ROOT, job.script), 'utf8'));
    expect(wanted.length).toBeGreaterThan(2);
    const byName = (ps: Param[]) => [...ps].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName(job.params)).toEqual(byName(wanted));
  });

  it('the restore job asks for a dry run by default', () => {
    const job = fromXml(fs.readFileSync(path.join(ROOT, 'pipelines/jobs/cerberus-restore.xml'), 'utf8'));
    expect(job.params.find((p) => p.name === 'DRY_RUN')).toEqual({ name: 'DRY_RUN', type: 'boolean', default: 'true' });
    expect(job.params.find((p) => p.name === 'AT')?.default).toBe('latest');
  });
});
