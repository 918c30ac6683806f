/**
 * Whether a job's config.xml, as Jenkins gives it back, already says what we would send.
 *
 * Jenkins does not keep the XML it is sent: it re-serializes it (`<?xml version='1.1'…?>`,
 * `plugin="name@version"` attributes, `&apos;`, fields it fills with defaults, an `<actions>`
 * that a declarative run writes). So the test is "covers": every element, attribute (but
 * `plugin`) and text we send is there, in order; what Jenkins adds beside it does not count.
 */

interface Element {
  name: string;
  attrs: Map<string, string>;
  children: Element[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decode(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (_m, e: string) =>
    e.startsWith('#x') ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith('#') ? String.fromCodePoint(Number(e.slice(1))) : (ENTITIES[e] ?? ''),
  );
}

const TOKEN = /<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<!\[CDATA\[([\s\S]*?)\]\]>|<\/([^\s>]+)\s*>|<([^\s/>!?]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>|([^<]+)/g;
const ATTR = /([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;

/** The root element, or undefined when the text is not XML this reader follows. */
function parse(xml: string): Element | undefined {
  const root: Element = { name: '', attrs: new Map(), children: [], text: '' };
  const stack: Element[] = [root];
  for (const m of xml.matchAll(TOKEN)) {
    const top = stack[stack.length - 1]!;
    if (m[1] !== undefined) top.text += m[1];
    else if (m[6] !== undefined) top.text += decode(m[6]);
    else if (m[2] !== undefined) {
      if (stack.length < 2 || top.name !== m[2]) return undefined;
      stack.pop();
    } else if (m[3] !== undefined) {
      const el: Element = { name: m[3], attrs: new Map(), children: [], text: '' };
      for (const a of (m[4] ?? '').matchAll(ATTR)) el.attrs.set(a[1]!, decode(a[2] ?? a[3] ?? ''));
      top.children.push(el);
      if (m[5] !== '/') stack.push(el);
    }
  }
  return stack.length === 1 && root.children.length === 1 ? root.children[0] : undefined;
}

/** Whitespace between elements is layout, not content. */
const textOf = (e: Element) => (e.text.trim() === '' ? '' : e.text);

function covers(theirs: Element, ours: Element): boolean {
  if (theirs.name !== ours.name || textOf(theirs) !== textOf(ours)) return false;
  for (const [k, v] of ours.attrs) if (k !== 'plugin' && theirs.attrs.get(k) !== v) return false;
  let j = 0;
  for (const child of ours.children) {
    while (j < theirs.children.length && !covers(theirs.children[j]!, child)) j++;
    if (j === theirs.children.length) return false;
    j++;
  }
  return true;
}

/** True when `theirs` (from Jenkins) holds all of `ours`: sending `ours` would change nothing. */
export function configCovers(theirs: string, ours: string): boolean {
  const t = parse(theirs);
  const o = parse(ours);
  return t !== undefined && o !== undefined && covers(t, o);
}
