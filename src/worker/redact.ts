/**
 * URLs as messages may show them. A database URL carries its password; a signed download URL
 * is itself a credential in its query string (whoever has it may read the object until it
 * expires). Neither ever reaches a log line, an error or a report whole.
 */

/** `postgres://user@host:5432/db`: no password, no query (it may hold one too). */
export function safeDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** `https://host/path?…`: the query string, where the signature lives, and any user info cut. */
export function safeSignedUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(unparsable URL)';
  }
}

/** Every secret of `secrets` (long enough to be one) replaced in `text`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***');
  return out;
}
