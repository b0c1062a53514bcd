import { varySuffix } from "./vary.js";

/** The default cache key of a request, in its two parts; the key is `route:${host}${path}`. */
export interface RequestKeyParts {
  /** The host the client asked for, lower case (see {@link requestHost}). */
  host: string;
  /** Path, the query sorted by parameter name, and the values of the `vary` request headers. */
  path: string;
}

/**
 * The default cache key of a request: host, path, the query sorted by parameter name, and the
 * values of the `vary` request headers. The method is left out so a HEAD finds the GET's entry;
 * the scheme is left out because http and https serve the same resource.
 *
 * @param vary lower-case header names, sorted (see {@link normalizeVary})
 */
export function requestKey(
  req: Request,
  vary: readonly string[],
  trustForwardedHost: boolean,
): RequestKeyParts {
  const url = new URL(req.url);
  // A stable sort by name: `?b=1&a=2` and `?a=2&b=1` share an entry, while repeated names keep
  // their order (`?id=2&id=1` may mean something else than `?id=1&id=2`).
  url.searchParams.sort();
  const query = url.searchParams.toString();
  const path = `${url.pathname}${query ? `?${query}` : ""}${varySuffix(req, vary)}`;
  return { host: requestHost(req, url, trustForwardedHost), path };
}

/**
 * The host the client asked for. On Node servers not `req.url`'s: `next start` and others build it
 * from their own listening address (`localhost:3000`), so instances on different ports would never
 * share an entry while two tenants on one port would share one; `Host` is what the client sent. On
 * workerd `req.url` is the client's URL (and `Host` under miniflare is its loopback proxy's), so it
 * wins there. `X-Forwarded-Host` (its first value) only when a proxy in front is trusted to set it,
 * since any client can send one.
 */
function requestHost(req: Request, url: URL, trustForwardedHost: boolean): string {
  const forwarded = trustForwardedHost
    ? req.headers.get("x-forwarded-host")?.split(",")[0]?.trim()
    : undefined;
  const asked = ON_WORKERD ? url.host : req.headers.get("host") || url.host;
  return (forwarded || asked).toLowerCase();
}

const ON_WORKERD =
  (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === "Cloudflare-Workers";

/** Whether `X-Forwarded-Host` is trusted by default: on Vercel (`VERCEL` set), whose edge sets it. */
export function forwardedHostTrustedByDefault(): boolean {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  return Boolean(env?.VERCEL);
}

/** Header names as {@link requestKey} wants them: lower case, deduplicated, sorted. */
export function normalizeVary(names: readonly string[] = []): string[] {
  return [...new Set(names.map((name) => name.trim().toLowerCase()).filter(Boolean))].sort();
}

/** The internal tag every entry of a URL that varies carries, so an unsafe request drops all its variants. */
export const urlTag = (urlKey: string): string => `~url:${urlKey}`;
