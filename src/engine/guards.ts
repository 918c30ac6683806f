/**
 * Guards: signs that a run saw something wrong with the source (an unmounted disk, a mass
 * deletion, ransomware). A run that trips one is committed but marked suspicious, and
 * nothing is pruned after it.
 */

export interface GuardPolicy {
  maxShrink: number;
  maxChanged: number;
  minFiles: number;
}

export interface SourceTotals {
  files: number;
  bytes: number;
}

export interface GuardInput {
  rootsMissing: string[];
  current: SourceTotals;
  /** the state of the last committed generation, when the state cache knows it */
  previous: SourceTotals | undefined;
  /** files of the previous state whose content changed */
  changedFiles: number;
}

const pct = (x: number) => `${Math.round(x * 100)} %`;

export function checkGuards(input: GuardInput, policy: GuardPolicy): string[] {
  const reasons: string[] = [];
  for (const root of input.rootsMissing) reasons.push(`source root ${root} is missing`);
  if (input.rootsMissing.length === 0 && input.current.files < policy.minFiles) {
    reasons.push(`the source holds ${input.current.files} files (fewer than guards.minFiles = ${policy.minFiles})`);
  }
  const prev = input.previous;
  if (prev && prev.files > 0) {
    const fileDrop = (prev.files - input.current.files) / prev.files;
    if (fileDrop > policy.maxShrink) {
      reasons.push(`file count fell by ${pct(fileDrop)} (${prev.files} → ${input.current.files}; guards.maxShrink is ${pct(policy.maxShrink)})`);
    }
    if (prev.bytes > 0) {
      const byteDrop = (prev.bytes - input.current.bytes) / prev.bytes;
      if (byteDrop > policy.maxShrink) {
        reasons.push(`total size fell by ${pct(byteDrop)} (guards.maxShrink is ${pct(policy.maxShrink)})`);
      }
    }
    const changed = input.changedFiles / prev.files;
    if (changed > policy.maxChanged) {
      reasons.push(`${pct(changed)} of the files changed since the last run (${input.changedFiles} of ${prev.files}; guards.maxChanged is ${pct(policy.maxChanged)})`);
    }
  }
  return reasons;
}
