import { fraction } from "../config.js";
import { toMs } from "../duration.js";
import { checkTags } from "../input.js";
import { loaderTimeoutMs } from "../loader-timeout.js";
import type { Duration, Invalidation, LoaderTimeout } from "../types.js";
import { forwardedHostTrustedByDefault, normalizeVary, type RequestKeyParts } from "./cache-key.js";
import { type CdnOptions, cdnDirectives } from "./cdn.js";
import type { StorePolicy } from "./stored-response.js";

/** Options of `cache.route(handler, options)`. */
export interface RouteOptions<R extends Request = Request> {
  /**
   * Freshness of cached responses. Default: the response's own, as a shared cache reads it
   * (`s-maxage`, else `max-age`, else `Expires` − `Date`, less its `Age`), else the cache's `ttl`.
   */
  ttl?: Duration;
  /**
   * How long after freshness a response is still served while one request refreshes it. Default: the
   * response's `stale-while-revalidate` directive, else the cache's. (`stale-if-error` is read from
   * the response too.)
   */
  staleWhileRevalidate?: Duration;
  /**
   * How long a request waits for the handler on a miss or a stale entry (see `LoaderTimeout`): past
   * `soft` a stale response is served (`x-cache: STALE`) while the handler finishes in the background;
   * past `hard` the request rejects with a CacheError `LOADER_TIMEOUT`. Default: the cache's.
   */
  loaderTimeout?: LoaderTimeout;
  /** See `GetOrSetOptions.refreshAhead`; default: the cache's. */
  refreshAhead?: number;
  /**
   * Lets the CDN in front cache what the route caches: responses served from the entry carry
   * `CDN-Cache-Control` (RFC 9213; Vercel and Cloudflare honour it) and the route's tags as
   * `Cache-Tag` and `Vercel-Cache-Tag`, so `invalidateTags` can purge them there too (see
   * `onInvalidate` and the `vercelCdn()` / `cloudflareCdn()` adapters).
   */
  cdn?: CdnOptions;
  /**
   * Tags of the cached responses, for `cache.invalidateTags`. A successful non-GET request through
   * the route invalidates the tags it maps to, e.g. `(req) => [`user:${id(req)}`]`.
   */
  tags?: readonly string[] | ((req: R) => readonly string[]);
  /**
   * Request headers whose values split the cache up front (e.g. `accept-language`); also added to the
   * response's `Vary`. A response's own `Vary` splits it as well (learnt per URL); `Vary: *` is not stored.
   */
  vary?: readonly string[];
  /**
   * The cache key of a request, given the default one (host, path, sorted query, `vary` values) and
   * its parts; return `null` not to cache this request. Requests with `Authorization` or `Cookie` are
   * only cached when this is given: it says how they are keyed, e.g. `(req, key) => `${key}|${userId(req)}``.
   * To share entries across hosts, leave the host out: `(req, key, { path }) => `route:${path}``.
   */
  key?: (
    req: R,
    defaultKey: string,
    parts: RequestKeyParts,
  ) => string | null | undefined | Promise<string | null | undefined>;
  /**
   * Key on `X-Forwarded-Host` (when present) instead of `Host`. Only for a proxy in front that sets
   * it and drops what clients send. Default: true on Vercel (`VERCEL` is set), else false.
   */
  trustForwardedHost?: boolean;
  /**
   * Statuses that are cached. Default: RFC 9110's heuristically cacheable ones, which are the
   * handler's deterministic answers — 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501 — and
   * not 302/307 (temporary by definition), 206 (a part) or errors that may pass.
   */
  statuses?: readonly number[];
  /** Larger bodies pass through uncached, `x-cache: BYPASS` (default 1 MiB). */
  maxBodyBytes?: number;
  /** What a successful (2xx) non-GET request invalidates besides the route's own entry and `tags`. */
  invalidates?: Invalidation | ((req: R) => Invalidation | Promise<Invalidation>);
}

const DEFAULT_STATUSES = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** What a route derives from its options once, when it is defined. */
export interface RouteSettings {
  policy: StorePolicy;
  trustForwardedHost: boolean;
  /** The `CDN-Cache-Control` value, when the route lets a CDN cache. */
  cdn: string | undefined;
}

/**
 * Checks a route's options and derives its settings. Bad options (durations, tags, sizes) fail
 * here, when the route is defined, not on its first request.
 */
export function routeSettings<R extends Request>(options: RouteOptions<R>): RouteSettings {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    throw new TypeError(`tiercache: route maxBodyBytes must be a whole number ≥ 0, got ${maxBodyBytes}`);
  }
  const policy: StorePolicy = {
    statuses: new Set(options.statuses ?? DEFAULT_STATUSES),
    vary: normalizeVary(options.vary),
    maxBodyBytes,
    freshMs: options.ttl === undefined ? undefined : toMs(options.ttl, "ttl"),
    staleWhileRevalidateMs:
      options.staleWhileRevalidate === undefined
        ? undefined
        : toMs(options.staleWhileRevalidate, "staleWhileRevalidate"),
  };
  const trustForwardedHost = options.trustForwardedHost ?? forwardedHostTrustedByDefault();
  const cdn = options.cdn ? cdnDirectives(options.cdn) : undefined;
  loaderTimeoutMs(options.loaderTimeout);
  if (options.refreshAhead !== undefined) fraction("route: refreshAhead", options.refreshAhead);
  if (typeof options.tags !== "function") checkTags(options.tags, "route: tags");
  if (options.invalidates && typeof options.invalidates !== "function") {
    checkTags(options.invalidates.tags, "route: invalidates.tags");
  }
  return { policy, trustForwardedHost, cdn };
}
