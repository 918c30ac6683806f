import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Document, isMap, isScalar } from 'yaml';
import { loadTenants, tenantReferences } from '../config/index.js';
import { configError, ioError } from '../errors.js';
import { dnsName } from './names.js';
import { publicFiles, render, type Manifest, type Rendered, type RenderOptions } from './render.js';

/** The Kubernetes module's public face: a tenants file in, manifests out. */
export { CONFIGMAP_NAME, HEALTH_NAME, kubernetesSchedule, render, secretFileKey, secretName, type KubeObject, type Manifest, type Rendered, type RenderInput, type RenderOptions } from './render.js';

/**
 * Renders the tenants file `file` (absolute). Nothing of its secrets is resolved, read or run:
 * only the public files it names in its folder are read, for the ConfigMap.
 */
export async function renderTenantsFile(file: string, opts: RenderOptions, env: NodeJS.ProcessEnv = process.env): Promise<Rendered> {
  const tenants = await loadTenants(file, env, { unresolved: true });
  const references = await tenantReferences(tenants.file);
  const tenantsText = await readFile(tenants.file, 'utf8');
  const configFiles = new Map<string, Uint8Array>();
  for (const rel of publicFiles(tenants, tenantsText).inside) {
    try {
      configFiles.set(rel, await readFile(path.join(tenants.dir, ...rel.split('/'))));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw configError(`${rel}, named in ${tenants.file}, does not exist`, 'the ConfigMap holds it beside the tenants file: create it or fix the path');
      throw ioError(err, `cannot read ${rel}`);
    }
  }
  return render({ tenants, references, tenantsText, configFiles }, opts);
}

function document(m: Manifest): Document {
  // the same labels in a CronJob's three places: written out each time, as kubectl users expect, not as &anchors
  const doc = new Document(m.object, { aliasDuplicateObjects: false });
  if (m.header !== undefined) doc.commentBefore = m.header;
  for (const note of m.notes) {
    const parent = doc.getIn(note.at.slice(0, -1), true);
    const last = note.at[note.at.length - 1];
    if (!isMap(parent)) continue;
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    if (pair && isScalar(pair.key)) pair.key.commentBefore = note.text.split('\n').map((l) => ` ${l}`).join('\n');
  }
  return doc;
}

/** Several objects as one multi-document YAML stream (for `kubectl apply -f -`). */
export function toYaml(manifests: Manifest[]): string {
  // lineWidth 0: no folding, so the tenants file in the ConfigMap reads as written
  return manifests.map((m) => document(m).toString({ lineWidth: 0 })).join('---\n');
}

/** One file per tenant (`tenant-<name>.yaml`) and one for the shared objects (`shared.yaml`). */
export function manifestFiles(manifests: Manifest[]): Map<string, string> {
  const groups = new Map<string, Manifest[]>([['shared.yaml', []]]);
  for (const m of manifests) {
    const file = m.tenant === undefined ? 'shared.yaml' : `tenant-${dnsName(m.tenant)}.yaml`;
    groups.set(file, [...(groups.get(file) ?? []), m]);
  }
  return new Map([...groups].map(([file, ms]) => [file, toYaml(ms)]));
}

/** Writes manifestFiles() into `dir` (created); returns the paths written. */
export async function writeManifests(dir: string, manifests: Manifest[]): Promise<string[]> {
  try {
    await mkdir(dir, { recursive: true });
    const written: string[] = [];
    for (const [name, text] of manifestFiles(manifests)) {
      const file = path.join(dir, name);
      await writeFile(file, text);
      written.push(file);
    }
    return written;
  } catch (err) {
    throw ioError(err, `cannot write the manifests into ${dir}`);
  }
}
