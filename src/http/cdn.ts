import { toMs } from "../duration.js";
import type { Duration } from "../types.js";

/** What the CDN in front of a route may cache (see {@link RouteOptions.cdn}). */
export interface CdnOptions {
  /** How long the CDN keeps a response fresh (`max-age` of `CDN-Cache-Control`). */
  ttl: Duration;
  /** How long past that it may serve it while revalidating (default 0). */
  staleWhileRevalidate?: Duration;
}

/** `CDN-Cache-Control` takes whole seconds. */
const seconds = (ms: number) => Math.max(0, Math.floor(ms / 1000));

/** Validates the options once, when the route is defined; returns the directive line. */
export function cdnDirectives(options: CdnOptions): string {
  const ttl = seconds(toMs(options.ttl, "cdn.ttl"));
  const swr =
    options.staleWhileRevalidate === undefined
      ? 0
      : seconds(toMs(options.staleWhileRevalidate, "cdn.staleWhileRevalidate"));
  return swr > 0 ? `max-age=${ttl}, stale-while-revalidate=${swr}` : `max-age=${ttl}`;
}

/**
 * The headers that let a CDN cache a response and purge it by tag: Cloudflare reads `Cache-Tag`,
 * Vercel `Vercel-Cache-Tag`; both strip them before the response reaches the client.
 */
export function cdnHeaders(directives: string | undefined, tags: readonly string[]): [string, string][] {
  if (directives === undefined) return [];
  const headers: [string, string][] = [["cdn-cache-control", directives]];
  if (tags.length > 0) {
    const list = tags.map(cdnTag).join(",");
    headers.push(["cache-tag", list], ["vercel-cache-tag", list]);
  }
  return headers;
}

/**
 * A tag as it travels in `Cache-Tag` and in purge requests: header-safe and comma-free. Bytes outside
 * visible ASCII, `%` and `,` are percent-encoded (UTF-8), so any tag the cache accepts can be sent
 * and purged, and `user:1` stays readable.
 */
export function cdnTag(tag: string): string {
  return tag.replace(/[^\x21-\x7e]|[%,]/gu, encodeURIComponent);
}
