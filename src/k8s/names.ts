import { createHash } from 'node:crypto';
import { configError } from '../errors.js';

/**
 * Kubernetes names from tenant and resource names. A tenants file allows letters, digits, ".",
 * "_" and "-"; most Kubernetes objects want a DNS-1123 label: lowercase letters, digits and
 * "-", starting and ending with a letter or digit.
 */

/** The Job a CronJob starts is named `<cronjob>-<11 digits>`, and a Job's name is a label (63). */
export const CRONJOB_NAME_MAX = 52;
/** volume, container and label-value names */
export const LABEL_MAX = 63;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const isDnsLabel = (s: string, max = LABEL_MAX) => s.length <= max && DNS_LABEL.test(s);

/**
 * `Acme_Corp.eu` → `acme-corp-eu`. Distinct names can meet here (`acme_corp`, `acme-corp`): the
 * caller checks the results with `refuseCollisions`.
 */
export function dnsName(name: string): string {
  const mapped = name
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  if (mapped === '') throw configError(`the name ${JSON.stringify(name)} has no letter or digit, so it cannot name a Kubernetes object`, 'rename it in the tenants file');
  return mapped;
}

/**
 * `name` when it fits in `max`, else its first characters and a hash of `of` (what it names,
 * e.g. `acme/website`): still unique and still readable where it begins.
 */
export function fitName(name: string, max: number, of: string): string {
  if (name.length <= max) return name;
  const hash = createHash('sha256').update(of).digest('hex').slice(0, 6);
  return `${name.slice(0, max - hash.length - 1).replace(/-+$/, '')}-${hash}`;
}

/**
 * Throws when two things (`tenant/resource`, tenant names) got the same Kubernetes name:
 * one would overwrite the other's objects on `kubectl apply`.
 */
export function refuseCollisions(kind: string, named: ReadonlyArray<{ of: string; name: string }>): void {
  const seen = new Map<string, string>();
  for (const { of, name } of named) {
    const before = seen.get(name);
    if (before !== undefined && before !== of) {
      throw configError(
        `${JSON.stringify(before)} and ${JSON.stringify(of)} would both be the ${kind} ${JSON.stringify(name)} (Kubernetes names are lowercase, with "-" for "." and "_")`,
        'rename one of them in the tenants file',
      );
    }
    seen.set(name, of);
  }
}
