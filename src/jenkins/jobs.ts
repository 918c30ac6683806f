import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { configError, ioError, usageError } from '../errors.js';
import { xmlText } from '../xml.js';

/** pipelines/jobs of this installation (dist/jenkins → the package root). */
export const BUNDLED_JOBS_DIR = fileURLToPath(new URL('../../pipelines/jobs/', import.meta.url));

/** The repository URL the bundled jobs carry until `--repo` replaces it. */
const PLACEHOLDER_REPO = 'https://git.example.invalid/you/cerberus-config.git';

/** The restore job `jenkins restore` triggers unless told another. */
export const RESTORE_JOB = 'cerberus-restore';

export interface JobDefinition {
  /** the Jenkins job name: the file name without .xml */
  name: string;
  file: string;
  xml: string;
}

export interface JobOptions {
  /** the git repository holding the config and the Jenkinsfiles */
  repo?: string;
  branch?: string;
}

/**
 * Every `*.xml` of `dir` as a job to send, with the config repository (and branch) put in
 * place of the placeholder. Refuses to send a job that still points at the placeholder.
 */
export async function readJobDefinitions(dir: string, opts: JobOptions): Promise<JobDefinition[]> {
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((f) => f.endsWith('.xml')).sort();
  } catch (err) {
    throw ioError(err, `cannot read the job folder ${dir}`);
  }
  if (names.length === 0) throw configError(`${dir} holds no job (*.xml)`, 'point --jobs at a folder of Jenkins config.xml files, such as pipelines/jobs');
  const out: JobDefinition[] = [];
  for (const f of names) {
    const file = path.join(dir, f);
    let xml = await fsp.readFile(file, 'utf8').catch((err: unknown) => {
      throw ioError(err, `cannot read ${file}`);
    });
    if (!/<(flow-definition|project|com\.cloudbees\.hudson\.plugins\.folder\.Folder)[\s>]/.test(xml)) {
      throw configError(`${file} is not a Jenkins job config.xml`, 'it must hold a <flow-definition> (a pipeline job)');
    }
    if (opts.repo !== undefined) xml = xml.split(`<url>${PLACEHOLDER_REPO}</url>`).join(`<url>${xmlText(opts.repo)}</url>`);
    if (opts.branch !== undefined) xml = xml.replace(/(<hudson\.plugins\.git\.BranchSpec>\s*<name>)[^<]*(<\/name>)/g, (_m, open: string, close: string) => `${open}${xmlText(`*/${opts.branch}`)}${close}`);
    if (xml.includes(PLACEHOLDER_REPO)) {
      throw usageError(`${f} still points at the placeholder repository ${PLACEHOLDER_REPO}`, 'pass --repo with the git URL of the repository that holds your cerberus.yaml and the Jenkinsfiles');
    }
    out.push({ name: f.slice(0, -'.xml'.length), file, xml });
  }
  return out;
}
