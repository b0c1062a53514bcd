/**
 * A validator computed from the body bytes (SHA-256, 144 bits kept). Weak, because the platform may
 * re-encode the body after us (Next.js and Vercel compress responses) and a strong ETag promises
 * byte-identical representations; `If-None-Match` compares weakly anyway (RFC 9110 §13.1.2).
 */
export async function computeEtag(body: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", body)).subarray(0, 18);
  const base64 = btoa(String.fromCharCode(...digest));
  return `W/"${base64.replace(/\+/g, "-").replace(/\//g, "_")}"`;
}

/** Entity tags in a header, e.g. `W/"a", "b,c"` → [`W/"a"`, `"b,c"`] (an opaque tag may hold commas). */
const ENTITY_TAG = /(?:W\/)?"[^"]*"/g;

/**
 * Whether `If-None-Match` matches `etag` with the weak comparison RFC 9110 §13.1.3 prescribes for
 * it: `W/"x"` and `"x"` match each other, and `*` matches any current representation.
 */
export function ifNoneMatch(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const target = opaque(etag);
  for (const candidate of header.match(ENTITY_TAG) ?? []) if (opaque(candidate) === target) return true;
  return false;
}

function opaque(tag: string): string {
  return tag.startsWith("W/") ? tag.slice(2) : tag;
}

/**
 * Whether a conditional GET/HEAD may be answered 304 from the stored response (RFC 9110 §13.2.2):
 * `If-None-Match` when present, else `If-Modified-Since` against its `Last-Modified`.
 */
export function notModified(req: Request, etag: string, lastModified: string | undefined): boolean {
  const tags = req.headers.get("if-none-match");
  if (tags !== null) return ifNoneMatch(tags, etag);
  const since = Date.parse(req.headers.get("if-modified-since") ?? "");
  const modified = Date.parse(lastModified ?? "");
  return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since;
}
