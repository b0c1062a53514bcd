import { cdnTag } from "./http/cdn.js";
import type { Invalidation } from "./types.js";

/**
 * Ready `onInvalidate` adapters that purge the CDN in front of the functions by tag — the tags a
 * route puts in `Cache-Tag` / `Vercel-Cache-Tag` with its `cdn` option. Keys and patterns mean
 * nothing to a CDN and are ignored: give routes tags to purge them there.
 */
export type CdnPurger = (invalidation: Invalidation) => Promise<void>;

const VERCEL_REQUEST_CONTEXT = Symbol.for("@vercel/request-context");

interface VercelPurgeApi {
  invalidateByTag(tag: string | string[]): Promise<void>;
}

/**
 * Marks the tags stale on Vercel's CDN, as `invalidateByTag` from `@vercel/functions` does: through
 * the request context Vercel's runtime provides (no package to install). Outside a Vercel request
 * there is nothing to purge, and the purge fails with a clear error (logged by the cache).
 */
export function vercelCdn(): CdnPurger {
  return async ({ tags }) => {
    if (!tags || tags.length === 0) return;
    const slot = (
      globalThis as Record<symbol, { get?: () => { purge?: Partial<VercelPurgeApi> } | undefined }>
    )[VERCEL_REQUEST_CONTEXT];
    const purge = slot?.get?.()?.purge;
    if (typeof purge?.invalidateByTag !== "function") {
      throw new Error(
        "vercelCdn: no Vercel purge API in this request (not running on Vercel, or outside a request): CDN tags not invalidated",
      );
    }
    await purge.invalidateByTag(tags.map(cdnTag));
  };
}

/** Options of {@link cloudflareCdn}. */
export interface CloudflareCdnOptions {
  /** The zone's id (32 hex characters, from the dashboard's overview page). */
  zoneId: string;
  /** An API token with the zone's Cache Purge permission. Never logged. */
  token: string;
  /** The API's base URL (default `https://api.cloudflare.com/client/v4`); a proxy or a test server. */
  apiBase?: string;
}

/** Tags per purge request; Cloudflare caps how many one call may name. */
const TAGS_PER_PURGE = 30;

/**
 * Purges the tags from a Cloudflare zone (the purge-by-tag API). A failed call is retried once, then
 * reported with the status and Cloudflare's error codes — never the token.
 */
export function cloudflareCdn(options: CloudflareCdnOptions): CdnPurger {
  const { zoneId, token } = options;
  if (!/^[0-9a-f]{32}$/i.test(zoneId)) throw new TypeError("cloudflareCdn: zoneId must be 32 hex characters");
  if (!/^[\x21-\x7e]{20,}$/.test(token)) {
    throw new TypeError(
      "cloudflareCdn: token must be an API token (visible ASCII, no spaces or line breaks)",
    );
  }
  const endpoint = `${(options.apiBase ?? "https://api.cloudflare.com/client/v4").replace(/\/+$/, "")}/zones/${zoneId}/purge_cache`;
  const purgeOnce = async (tags: string[]): Promise<string | undefined> => {
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ tags }),
      });
      if (res.ok) return undefined;
      const body = (await res.json().catch(() => undefined)) as { errors?: { code?: number }[] } | undefined;
      const codes = body?.errors?.map((e) => e.code).filter((code) => typeof code === "number") ?? [];
      return `HTTP ${res.status}${codes.length > 0 ? ` (errors ${codes.join(", ")})` : ""}`;
    } catch (error) {
      return error instanceof Error ? error.name : "network error";
    }
  };
  return async ({ tags }) => {
    if (!tags || tags.length === 0) return;
    const encoded = tags.map(cdnTag);
    for (let i = 0; i < encoded.length; i += TAGS_PER_PURGE) {
      const chunk = encoded.slice(i, i + TAGS_PER_PURGE);
      const failure = (await purgeOnce(chunk)) && (await purgeOnce(chunk));
      if (failure) throw new Error(`cloudflareCdn: purge of ${chunk.length} tags failed twice: ${failure}`);
    }
  };
}
