import { type Document, LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Env } from './env.js';
import { interpolate, type SecretSources } from './env.js';

export type PathKey = string | number;

/** One thing wrong with the file; `line` is 1-based. */
export interface Problem {
  line: number | undefined;
  message: string;
  hint?: string;
}

/** Where an interpolated value came from, so error messages can show the template instead. */
export interface Redaction {
  value: string;
  template: string;
}

export interface ParsedYaml {
  doc: Document.Parsed;
  lines: LineCounter;
}

export function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

/*
 * `{ passphrase: ${PASS} }` is not valid YAML: in a flow collection `{` and `}` are syntax.
 * Before parsing, each `${NAME}` is swapped for look-alike private-use characters of the same
 * length (offsets stay right), and swapped back in every scalar after parsing.
 */
const SHIELD: Record<string, string> = { $: '\uE000', '{': '\uE001', '}': '\uE002' };
const UNSHIELD: Record<string, string> = { '\uE000': '$', '\uE001': '{', '\uE002': '}' };

function shield(text: string): string {
  if (/[\uE000-\uE002]/.test(text)) return text; // would not round-trip; leave YAML rules as they are
  return text.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*\}/g, (ref) => ref.replace(/[${}]/g, (c) => SHIELD[c] ?? c));
}

function unshield(s: string): string {
  return s.replace(/[\uE000-\uE002]/g, (c) => UNSHIELD[c] ?? c);
}

export function parseYaml(text: string): { parsed: ParsedYaml; problems: Problem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(shield(text), { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  // only the first: later syntax errors are mostly echoes of it
  const problems: Problem[] = doc.errors.slice(0, 1).map((err) => ({
    line: lineAt(lines, err.pos[0]),
    message: `YAML syntax: ${unshield(err.message.split('\n')[0] ?? err.code)}`,
  }));
  if (problems.length === 0) unshieldDocument(doc);
  return { parsed: { doc, lines }, problems };
}

function unshieldDocument(doc: Document.Parsed): void {
  const walk = (node: unknown): void => {
    if (isScalar(node)) {
      if (typeof node.value === 'string') node.value = unshield(node.value);
    } else if (isMap(node)) {
      for (const pair of node.items) {
        walk(pair.key);
        walk(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) walk(item);
    }
  };
  walk(doc.contents);
}

function lineAt(lines: LineCounter, offset: number): number {
  return Math.max(1, lines.linePos(offset).line);
}

function lineOf(node: unknown, lines: LineCounter): number | undefined {
  if (node && typeof node === 'object' && 'range' in node) {
    const range = (node as { range?: readonly number[] | null }).range;
    if (range && typeof range[0] === 'number') return lineAt(lines, range[0]);
  }
  return undefined;
}

function keyName(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/** What an optional value whose variable is unset reads as; never a usable secret. */
export const UNSET_PLACEHOLDER = '(unset)';

/** Every `${…}` a string scalar holds, with the path of its key; nothing is resolved. */
export function references(parsed: ParsedYaml): Array<{ path: PathKey[]; ref: string }> {
  const out: Array<{ path: PathKey[]; ref: string }> = [];
  const walk = (node: unknown, p: PathKey[]): void => {
    if (isScalar(node)) {
      if (typeof node.value !== 'string') return;
      // `$${` is a literal `${`, no reference
      for (const m of node.value.matchAll(/(\$?)\$\{([^}]*)\}/g)) if (m[1] === '') out.push({ path: p, ref: m[2]! });
    } else if (isMap(node)) {
      for (const pair of node.items) walk(pair.value, [...p, keyName(pair.key)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...p, i]));
    }
  };
  walk(parsed.doc.contents, []);
  return out;
}

/**
 * Interpolates `${VAR}` in every string value scalar, in place. Keys are left alone.
 * Working on nodes (not on the raw text) keeps line numbers right and means a value can
 * never turn into YAML structure.
 */
export function interpolateDocument(
  parsed: ParsedYaml,
  env: Env,
  /** where an unset variable is no problem: the value becomes UNSET_PLACEHOLDER */
  optional?: (path: readonly PathKey[]) => boolean,
  secrets?: SecretSources,
): { problems: Problem[]; redactions: Redaction[] } {
  const problems: Problem[] = [];
  const redactions: Redaction[] = [];
  const walk = (node: unknown, p: PathKey[]): void => {
    if (isScalar(node)) {
      if (typeof node.value !== 'string') return;
      const template = node.value;
      const r = interpolate(template, env, secrets);
      const line = lineOf(node, parsed.lines);
      if (!r.ok && 'missing' in r && optional?.(p)) {
        node.value = UNSET_PLACEHOLDER;
      } else if (!r.ok && 'missing' in r) {
        problems.push({
          line,
          message: `${formatPath(p)} uses \${${r.missing}}, which is not set`,
          hint: 'export it or put it in .env',
        });
      } else if (!r.ok) {
        problems.push({ line, message: `${formatPath(p)} ${r.malformed}` });
      } else if (r.value !== template) {
        node.value = r.value;
        if (r.vars.length > 0) redactions.push({ value: r.value, template });
      }
    } else if (isMap(node)) {
      for (const pair of node.items) walk(pair.value, [...p, keyName(pair.key)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...p, i]));
    }
    // aliases share the anchored node, which is interpolated where it is defined
  };
  walk(parsed.doc.contents, []);
  return { problems, redactions };
}

/** The line of the deepest node along `p` that exists (a map entry's key line, a list item's line). */
export function locate(parsed: ParsedYaml, p: readonly PropertyKey[]): number | undefined {
  const { doc, lines } = parsed;
  let node: unknown = doc.contents;
  let line = lineOf(node, lines);
  for (const seg of p) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((it) => keyName(it.key) === String(seg));
      if (!pair) break;
      line = lineOf(pair.key, lines) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item: unknown = node.items[seg];
      if (item === undefined) break;
      line = lineOf(item, lines) ?? line;
      node = item;
    } else {
      break;
    }
  }
  return line;
}

/** Replaces interpolated values in a message with the `${VAR}` text they came from. */
export function redact(message: string, redactions: readonly Redaction[]): string {
  let out = message;
  const sorted = [...redactions].sort((a, b) => b.value.length - a.value.length);
  for (const { value, template } of sorted) {
    if (value === '') continue;
    out = out.split(JSON.stringify(value)).join(JSON.stringify(template));
    // bare occurrences too, unless the value is so short that it would mangle the text
    if (value.length >= 4) out = out.split(value).join(template);
  }
  return out;
}
