import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { resultMapping, shSteps } from '../helpers/jenkinsfile.js';

/**
 * pipelines/worker.Jenkinsfile against what the worker needs: the variables of the README's
 * worker config bound in every stage, its state dir on the daily backup's named volume, each
 * stage's reports in a folder of their own, and exit 3 (rows tried again later) as UNSTABLE.
 */

const read = (f: string) => fs.readFileSync(path.join(ROOT, f), 'utf8');
const groovy = read('pipelines/worker.Jenkinsfile');
const stages = [...groovy.matchAll(/stage\('([^']+)'\)\s*\{([\s\S]*?)\n {4}\}/g)].map((m) => ({ name: m[1]!, body: m[2]! }));

describe('pipelines/worker.Jenkinsfile', () => {
  it('binds the variables of the README\'s worker config in each stage, from Jenkins credentials', () => {
    const config = /```yaml\n(worker:\n[\s\S]*?)```/.exec(read('README.md'))?.[1] ?? '';
    const wanted = [...new Set([...config.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]!))].sort();
    expect(wanted).toEqual(['DB_URL', 'S3_KEY', 'S3_SECRET']);
    expect(stages.map((s) => s.name)).toEqual(['Worker', 'Health']);
    for (const s of stages) {
      const bound = [...s.body.matchAll(/\b(?:variable|usernameVariable|passwordVariable): '(\w+)'/g)].map((m) => m[1]!).sort();
      expect(bound, s.name).toEqual(wanted);
    }
  });

  it('runs every 10 minutes, keeps its state on the volume the daily backup keeps its own on, and reports each stage apart', () => {
    expect(groovy).toContain("cron('H/10 * * * *')");
    expect(groovy).toContain('disableConcurrentBuilds()');
    const volume = /-v cerberus-state:\/state\b/;
    expect(read('Jenkinsfile')).toMatch(volume);
    expect(groovy).toMatch(volume);
    // the image points the state dir (and so $CERBERUS_STATE_DIR/worker/<target>) at /state
    expect(read('docker/Dockerfile')).toMatch(/CERBERUS_STATE_DIR=\/state\b/);
    const reports = shSteps(groovy).scripts.map((s) => /--report (\S+)/.exec(s)?.[1]);
    expect(reports).toEqual(['reports', 'reports/health']);
    expect(groovy).toContain("testResults: 'reports/**/junit.xml'");
  });

  it('gives exit 3 UNSTABLE, and any other failure FAILED', () => {
    const result = resultMapping(groovy);
    expect([0, 1, 2, 3, 4].map(result)).toEqual(['SUCCESS', 'FAILURE', 'FAILURE', 'UNSTABLE', 'FAILURE']);
  });
});
