import { CerberusError } from '../errors.js';
import type { JenkinsClient, JenkinsItem } from './client.js';
import { configCovers } from './config-xml.js';
import { FOLDER_CLASS, TENANT_MARKER, type TenantPlan } from './tenant-jobs.js';

/**
 * Brings Jenkins in line with a tenant plan: folders created when missing (never changed: a
 * folder may hold its tenant's credentials), jobs created or updated when their config differs,
 * and jobs this wrote before that the file no longer names disabled, never deleted. Everything
 * is read first, so a refusal comes before the first change.
 */

export type TenantAction = 'created' | 'updated' | 'unchanged' | 'disabled' | 'already disabled';

export interface TenantApplyRow {
  /** the Jenkins full name */
  item: string;
  kind: 'folder' | 'job';
  action: TenantAction;
  /** set for what is (or would be) created or updated: what is sent */
  xml?: string;
  detail: string;
}

const ours = (item: JenkinsItem) => (item.description ?? '').includes(TENANT_MARKER);
const isDisabled = (item: JenkinsItem) => (item.color ?? '').startsWith('disabled');

export async function applyTenantPlan(client: JenkinsClient, plan: TenantPlan, opts: { dryRun: boolean }): Promise<TenantApplyRow[]> {
  const root = new Map((await client.items()).map((i) => [i.name, i]));
  const rows: TenantApplyRow[] = [];
  const existing = new Map<string, Map<string, JenkinsItem>>();

  for (const f of plan.folders) {
    const item = root.get(f.name);
    if (item === undefined) {
      rows.push({ item: f.name, kind: 'folder', action: 'created', xml: f.xml, detail: 'folder of the tenant' });
      existing.set(f.name, new Map());
    } else if (item._class !== FOLDER_CLASS) {
      throw new CerberusError('USAGE', `${client.url}: ${f.name} is a ${item._class ?? 'Jenkins item'}, not a folder, so the jobs of the tenant ${f.name} cannot go in it`, {
        hint: 'rename or move that item in Jenkins',
      });
    }
  }
  // a tenant gone from the file leaves a folder this made: its jobs are disabled as well
  const scanned = [...new Set([...plan.folders.map((f) => f.name), ...[...root.values()].filter((i) => i._class === FOLDER_CLASS && ours(i)).map((i) => i.name)])];
  for (const folder of scanned) {
    if (!existing.has(folder)) existing.set(folder, new Map((await client.items(folder)).map((i) => [i.name, i])));
  }

  const wanted = new Set(plan.jobs.map((j) => j.name));
  const handMade: string[] = [];
  for (const job of plan.jobs) {
    const leaf = job.name.slice(job.folder.length + 1);
    const item = existing.get(job.folder)?.get(leaf);
    if (item === undefined) {
      rows.push({ item: job.name, kind: 'job', action: 'created', xml: job.xml, detail: credentialNote(job.credentials.map((c) => c.id)) });
      continue;
    }
    if (!ours(item)) {
      handMade.push(job.name);
      continue;
    }
    const current = await client.config(job.name);
    const same = current !== undefined && configCovers(current, job.xml);
    rows.push(same ? { item: job.name, kind: 'job', action: 'unchanged', detail: '' } : { item: job.name, kind: 'job', action: 'updated', xml: job.xml, detail: credentialNote(job.credentials.map((c) => c.id)) });
  }
  if (handMade.length > 0) {
    throw new CerberusError('USAGE', `${client.url}: ${handMade.join(', ')} already exist${handMade.length === 1 ? 's' : ''} in Jenkins and ${handMade.length === 1 ? 'was' : 'were'} not made by cerberus jenkins apply --tenants; nothing was changed`, {
      hint: `rename or delete ${handMade.length === 1 ? 'it' : 'them'} in Jenkins, or put ${TENANT_MARKER} in the description to hand ${handMade.length === 1 ? 'it' : 'them'} over`,
    });
  }
  for (const [folder, items] of existing) {
    for (const item of items.values()) {
      const name = `${folder}/${item.name}`;
      if (item._class === FOLDER_CLASS || wanted.has(name) || !ours(item)) continue;
      rows.push({ item: name, kind: 'job', action: isDisabled(item) ? 'already disabled' : 'disabled', detail: 'no longer in the tenants file (disabled, not deleted)' });
    }
  }

  if (opts.dryRun) return rows;
  for (const row of rows) {
    if (row.action === 'created') await client.createItem(row.item, row.xml ?? '');
    else if (row.action === 'updated') await client.updateConfig(row.item, row.xml ?? '');
    else if (row.action === 'disabled') await client.disable(row.item);
  }
  return rows;
}

/** The credentials a job binds, so the operator knows what to create in Jenkins. */
function credentialNote(ids: string[]): string {
  return ids.length === 0 ? '' : `credentials: ${ids.join(', ')}`;
}
