import { readCapped } from "./body.js";
import { cacheControl } from "./cache-control.js";
import { computeEtag } from "./etag.js";
import { responseFreshness } from "./freshness.js";
import { parseVary, varySuffix } from "./vary.js";

/** A cached response: plain data (the cache's codec carries the bytes), rebuilt into a fresh `Response` per request. */
export interface StoredResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer>;
  /** The handler's own ETag, or one computed from the body. */
  etag: string;
  /** Epoch ms when the origin produced it (its `Age` header counted in); `age` counts from here. */
  created: number;
  /** Epoch ms until which it is fresh, from the route's `ttl` or the response's own freshness. */
  freshUntil?: number;
  /** The stale windows it carries: the route's options, else the response's Cache-Control directives. */
  staleWhileRevalidateMs?: number;
  staleIfErrorMs?: number;
  /**
   * The request headers its `Vary` names beyond the route's `vary`, and this representation's values
   * of them: a request with other values must be answered by another entry.
   */
  vary?: { names: string[]; suffix: string };
}

/** A response the route hands back untouched because it must not be cached. */
export interface Passthrough {
  passthrough: Response;
}

/** What decides whether a response may be stored. */
export interface StorePolicy {
  statuses: ReadonlySet<number>;
  /** The route's `vary` request headers (lower case, sorted). */
  vary: readonly string[];
  maxBodyBytes: number;
  /** The route's `ttl` and `staleWhileRevalidate`; when absent, the response's own directives decide. */
  freshMs: number | undefined;
  staleWhileRevalidateMs: number | undefined;
}

/** Per-connection headers and ones the route sets itself on every response it serves. */
const NOT_STORED = new Set([
  "age",
  "connection",
  "content-length",
  "date",
  "keep-alive",
  "proxy-connection",
  "set-cookie",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "x-cache",
]);
/** What a 304 carries (RFC 9110 §15.4.5), plus the route's own. */
const NOT_MODIFIED_HEADERS = [
  "cache-control",
  "cdn-cache-control",
  "content-location",
  "etag",
  "expires",
  "vary",
  "age",
  "x-cache",
];
/** Statuses whose responses cannot have a body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * Stores the handler's response if it may be shared, else hands it back to pass through. Never
 * stored: a status outside `statuses`, `Set-Cookie`, `Cache-Control: private|no-store|no-cache`,
 * `max-age=0` (or an `Expires` already past) without `stale-while-revalidate`, `Vary: *`, an event
 * stream (it never ends), a body over the cap. Freshness comes from the route's options, else from
 * the response (see {@link responseFreshness}), else the cache's `ttl` applies.
 */
export async function capture(
  res: Response,
  policy: StorePolicy,
  req: Request,
): Promise<StoredResponse | Passthrough> {
  if (!storable(res, policy)) return { passthrough: res };
  const now = Date.now();
  const own = policy.freshMs === undefined ? responseFreshness(res.headers, now) : undefined;
  const freshMs = policy.freshMs ?? own?.freshMs;
  const swrMs = policy.staleWhileRevalidateMs ?? own?.staleWhileRevalidateMs;
  if (freshMs === 0 && !swrMs) return { passthrough: res };
  if (Number(res.headers.get("content-length") ?? 0) > policy.maxBodyBytes) return { passthrough: res };
  const body = await readCapped(res.body, policy.maxBodyBytes);
  if (!body.complete) return { passthrough: new Response(body.stream, res) };
  const varyNames = parseVary(res.headers.get("vary")) as string[]; // "*" is not storable
  const extra = varyNames.filter((name) => !policy.vary.includes(name));
  const stored: StoredResponse = {
    status: res.status,
    headers: storedHeaders(res.headers, [...new Set([...policy.vary, ...varyNames])].sort()),
    body: body.bytes,
    etag: res.headers.get("etag") ?? (await computeEtag(body.bytes)),
    created: now - (own?.ageMs ?? 0),
  };
  if (freshMs !== undefined) stored.freshUntil = now + freshMs;
  if (swrMs) stored.staleWhileRevalidateMs = swrMs;
  if (own?.staleIfErrorMs) stored.staleIfErrorMs = own.staleIfErrorMs;
  if (extra.length > 0) stored.vary = { names: extra, suffix: varySuffix(req, extra) };
  return stored;
}

function storable(res: Response, policy: StorePolicy): boolean {
  if (!policy.statuses.has(res.status) || res.headers.has("set-cookie")) return false;
  const directives = cacheControl(res.headers.get("cache-control"));
  if (directives.has("no-store") || directives.has("private") || directives.has("no-cache")) return false;
  if (res.headers.get("content-type")?.toLowerCase().startsWith("text/event-stream")) return false;
  return parseVary(res.headers.get("vary")) !== "*";
}

function storedHeaders(headers: Headers, vary: readonly string[]): [string, string][] {
  const kept: [string, string][] = [];
  for (const [name, value] of headers) if (!NOT_STORED.has(name) && name !== "vary") kept.push([name, value]);
  // Downstream caches (a CDN in front) must split on the same headers the route keys on.
  if (vary.length > 0) kept.push(["vary", vary.join(", ")]);
  return kept;
}

/** Whether a value read from the cache is a response this module stored. */
export function isStoredResponse(value: unknown): value is StoredResponse {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<StoredResponse>;
  return (
    typeof v.status === "number" &&
    Array.isArray(v.headers) &&
    v.body instanceof Uint8Array &&
    typeof v.etag === "string" &&
    typeof v.created === "number"
  );
}

export function isPassthrough(value: unknown): value is Passthrough {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Partial<Passthrough>).passthrough instanceof Response
  );
}

/** How a stored response is served to one request. */
export interface Serving {
  xCache: "HIT" | "MISS" | "STALE";
  head: boolean;
  notModified: boolean;
  now: number;
  /** Set on every response served from the entry (the CDN's directives and tags). */
  extraHeaders: readonly [string, string][];
}

/** A new `Response` for one request (bodies are single-use, so never the same object twice). */
export function toResponse(stored: StoredResponse, serving: Serving): Response {
  const headers = new Headers(stored.headers);
  headers.set("etag", stored.etag);
  headers.set("age", String(Math.max(0, Math.floor((serving.now - stored.created) / 1000))));
  headers.set("x-cache", serving.xCache);
  for (const [name, value] of serving.extraHeaders) headers.set(name, value);
  if (serving.notModified) {
    const kept = new Headers();
    for (const name of NOT_MODIFIED_HEADERS) {
      const value = headers.get(name);
      if (value !== null) kept.set(name, value);
    }
    return new Response(null, { status: 304, headers: kept });
  }
  if (NULL_BODY.has(stored.status)) return new Response(null, { status: stored.status, headers });
  if (serving.head) {
    headers.set("content-length", String(stored.body.byteLength));
    return new Response(null, { status: stored.status, headers });
  }
  return new Response(stored.body, { status: stored.status, headers });
}
