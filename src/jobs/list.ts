import type { JobConfig } from '../config/index.js';
import { describeError } from '../errors.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { listGenerations } from '../repository/generations.js';
import type { OpenTarget } from '../storage/open.js';

export interface RestorePointRow {
  target: string;
  id: string;
  level: string;
  parent: string | null;
  files: number;
  bytes: number;
  storedBytes: number;
  state: 'committed' | 'suspicious';
  suspicious: string[];
}

export interface ListResult {
  points: RestorePointRow[];
  errors: Array<{ target: string; error: string }>;
}

export async function runList(job: JobConfig, open: OpenTarget): Promise<ListResult> {
  const result: ListResult = { points: [], errors: [] };
  for (const target of job.targets) {
    try {
      const backend = open(target);
      await requireDescriptor(backend, target.name, kindFor(job, target));
      for (const g of (await listGenerations(backend)).committed) {
        result.points.push({
          target: target.name,
          id: g.id,
          level: g.level,
          parent: g.parent,
          files: g.info.stats.files,
          bytes: g.info.stats.bytes,
          storedBytes: g.storedSize + (g.info.stats.vaultBytes ?? 0),
          state: g.info.suspicious.length > 0 ? 'suspicious' : 'committed',
          suspicious: g.info.suspicious,
        });
      }
    } catch (err) {
      result.errors.push({ target: target.name, error: describeError(err) });
    }
  }
  return result;
}
