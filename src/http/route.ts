import { toMs } from "../duration.js";
import type { Duration, GetOrSetOptions, LoaderContext, SetOptions, WaitUntil } from "../types.js";
import { cacheControl } from "./cache-control.js";
import {
  forwardedHostTrustedByDefault,
  normalizeVary,
  type RequestKeyParts,
  requestKey,
} from "./cache-key.js";
import { ifNoneMatch } from "./etag.js";
import {
  capture,
  isPassthrough,
  isStoredResponse,
  type Passthrough,
  type StoredResponse,
  type StorePolicy,
  toResponse,
} from "./stored-response.js";
import { waitUntilFrom } from "./wait-until.js";

/** What {@link route} needs of a cache; the `Cache` from `createCache` has it all. */
export interface RouteCache {
  get(key: string): Promise<unknown>;
  getOrSet<T>(
    key: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options?: GetOrSetOptions<T>,
  ): Promise<T>;
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;
  delete(...keys: string[]): Promise<number>;
  invalidateTags(tags: readonly string[]): Promise<unknown>;
  deletePattern(glob: string): Promise<number>;
  runInBackground(work: () => Promise<unknown>, waitUntil?: WaitUntil): Promise<void>;
}

/** A Web-standard handler: Next.js route handlers, Vercel Functions, Cloudflare `fetch(req, env, ctx)`, Hono's `mount`. */
export type RouteHandler<R extends Request = Request, A extends unknown[] = unknown[]> = (
  req: R,
  ...rest: A
) => Response | Promise<Response>;

/** What a successful non-GET request through a route invalidates, beyond the route's own entry and tags. */
export interface Invalidation {
  /** Cache keys, as given to `cache.get`/`cache.set` (or returned by a route's `key`). */
  keys?: readonly string[];
  tags?: readonly string[];
  /** Globs over cache keys, as `cache.deletePattern` takes them. */
  patterns?: readonly string[];
}

/** Options of {@link route}. */
export interface RouteOptions<R extends Request = Request> {
  /** Freshness of cached responses (default: the cache's `ttl`). Giving it lets `x-cache` say STALE exactly. */
  ttl?: Duration;
  /** How long after freshness a response is still served while one request refreshes it (default: the cache's). */
  staleWhileRevalidate?: Duration;
  /**
   * Tags of the cached responses, for `cache.invalidateTags`. A successful non-GET request through
   * the route invalidates the tags it maps to, e.g. `(req) => [`user:${id(req)}`]`.
   */
  tags?: readonly string[] | ((req: R) => readonly string[]);
  /** Request headers whose values split the cache (e.g. `accept-language`); also added to the response's `Vary`. */
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

/**
 * Caches a Web-standard handler's GET and HEAD responses (status, headers, body bytes) in `cache`.
 *
 * - Key: host (the `Host` header, or `X-Forwarded-Host` with `trustForwardedHost`) + path + sorted
 *   query + the `vary` headers' values, method-independent, so HEAD is answered from the GET's entry
 *   (a HEAD miss runs the handler and stores nothing).
 * - Every response carries `x-cache: HIT|MISS|STALE|BYPASS`; cached ones carry `age` and an `ETag`
 *   (the handler's, else a weak one from SHA-256 of the body), and `If-None-Match` gets a 304.
 * - Request `Cache-Control: no-cache` skips the read and refreshes the entry; `no-store` bypasses.
 * - Not cached (BYPASS): requests with `Authorization`/`Cookie` unless `key` is given; responses with
 *   `Set-Cookie`, `Cache-Control: private|no-store|no-cache`, a status outside `statuses`, or a body
 *   over `maxBodyBytes`.
 * - Unsafe methods (POST, PUT, PATCH, DELETE…) run the handler; after a 2xx they invalidate the route's entry for that URL, its
 *   `tags` for that request and `invalidates` — awaited, so the next GET anywhere misses.
 * - Writes after a miss go through `waitUntil`: the handler context's (Cloudflare, Hono), else
 *   the live Vercel request's (what `@vercel/functions` exports), else the cache's own, else they are awaited.
 * - Cache trouble never costs the response: the handler's own goes through. Handler errors propagate.
 */
export function route<R extends Request, A extends unknown[]>(
  cache: RouteCache,
  handler: RouteHandler<R, A>,
  options: RouteOptions<R> = {},
): (req: R, ...rest: A) => Promise<Response> {
  const cached = new CachedRoute(cache, handler, options);
  return async (req, ...rest) => {
    if (req.method === "GET" || req.method === "HEAD") return cached.read(req, rest);
    // OPTIONS (CORS preflights) and TRACE are safe methods too (RFC 9110 §9.2.1): nothing to invalidate.
    if (req.method === "OPTIONS" || req.method === "TRACE") return handler(req, ...rest);
    return cached.mutate(req, rest);
  };
}

class CachedRoute<R extends Request, A extends unknown[]> {
  private readonly policy: StorePolicy;
  private readonly trustForwardedHost: boolean;

  constructor(
    private readonly cache: RouteCache,
    private readonly handler: RouteHandler<R, A>,
    private readonly options: RouteOptions<R>,
  ) {
    const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
      throw new TypeError(`tiercache: route maxBodyBytes must be a whole number ≥ 0, got ${maxBodyBytes}`);
    }
    // Bad durations fail here, when the route is defined, not on its first request.
    if (options.staleWhileRevalidate !== undefined)
      toMs(options.staleWhileRevalidate, "staleWhileRevalidate");
    this.policy = {
      statuses: new Set(options.statuses ?? DEFAULT_STATUSES),
      vary: normalizeVary(options.vary),
      maxBodyBytes,
      freshMs: options.ttl === undefined ? undefined : toMs(options.ttl, "ttl"),
    };
    this.trustForwardedHost = options.trustForwardedHost ?? forwardedHostTrustedByDefault();
  }

  async read(req: R, rest: A): Promise<Response> {
    const directives = cacheControl(req.headers.get("cache-control"));
    const key = directives.has("no-store") ? null : await this.keyOf(req, true);
    if (key === null) return withXCache(await this.handler(req, ...rest), "BYPASS");
    if (req.method === "HEAD") return this.head(req, rest, key);
    const waitUntil = waitUntilFrom(rest);
    if (directives.has("no-cache")) return this.refresh(req, rest, key, waitUntil);
    return this.lookup(req, rest, key, waitUntil);
  }

  async mutate(req: R, rest: A): Promise<Response> {
    const res = await this.handler(req, ...rest);
    if (res.status < 200 || res.status > 299) return res;
    const own = await this.keyOf(req, false);
    const extra =
      typeof this.options.invalidates === "function"
        ? await this.options.invalidates(req)
        : this.options.invalidates;
    const keys = [...(own === null ? [] : [own]), ...(extra?.keys ?? [])];
    const tags = [...this.tagsOf(req), ...(extra?.tags ?? [])];
    // Settled, not raced: each is tried even if another fails, and a failure (already reported by
    // the cache) does not cost the handler's response.
    await Promise.allSettled([
      keys.length > 0 ? this.cache.delete(...keys) : undefined,
      tags.length > 0 ? this.cache.invalidateTags(tags) : undefined,
      ...(extra?.patterns ?? []).map((pattern) => this.cache.deletePattern(pattern)),
    ]);
    return res;
  }

  /** L1 → L2 → handler through `getOrSet`, which gives single-flight and stale-while-revalidate. */
  private async lookup(req: R, rest: A, key: string, waitUntil: WaitUntil | undefined): Promise<Response> {
    // What this request's own loader did, if the cache ran it (a hit, or another request's flight, does not).
    const run: { loaded: boolean; produced?: StoredResponse | Passthrough; failure?: { error: unknown } } = {
      loaded: false,
    };
    const loader = async (context: LoaderContext): Promise<StoredResponse | Passthrough> => {
      run.loaded = true;
      let res: Response;
      try {
        res = await this.handler(req, ...rest);
      } catch (error) {
        run.failure = { error };
        throw error;
      }
      const produced = await capture(res, this.policy);
      if (isPassthrough(produced)) context.skipCache();
      run.produced = produced;
      return produced;
    };
    let value: unknown;
    try {
      value = await this.cache.getOrSet(key, loader, { ...this.writeOptions(req), waitUntil });
    } catch {
      if (run.failure) throw run.failure.error;
      // The cache failed (failSilently off, or a bug): serve what the handler made, or run it now.
      run.produced ??= { passthrough: await this.handler(req, ...rest) };
      value = run.produced;
    }
    const own = run.produced;
    if (own !== undefined && value === own) {
      return isPassthrough(own) ? withXCache(own.passthrough, "BYPASS") : this.serve(req, own, "MISS");
    }
    if (isStoredResponse(value)) {
      // Our loader ran yet another value came back: it is the stale one, refreshing in the background.
      const stale = run.loaded || (value.freshUntil !== undefined && Date.now() >= value.freshUntil);
      return this.serve(req, value, stale ? "STALE" : "HIT");
    }
    // A concurrent request's uncacheable response (its body is that request's), or a foreign value
    // at this key: answer from the handler.
    if (isPassthrough(value)) return withXCache(await this.handler(req, ...rest), "BYPASS");
    return this.refresh(req, rest, key, waitUntil);
  }

  /** Skips the read, runs the handler and replaces the entry (request `Cache-Control: no-cache`). */
  private async refresh(req: R, rest: A, key: string, waitUntil: WaitUntil | undefined): Promise<Response> {
    const captured = await capture(await this.handler(req, ...rest), this.policy);
    if (isPassthrough(captured)) return withXCache(captured.passthrough, "BYPASS");
    const options = this.writeOptions(req);
    try {
      await this.cache.runInBackground(() => this.cache.set(key, captured, options), waitUntil);
    } catch {
      // Only a throwing waitUntil gets here; the response does not depend on the write.
    }
    return this.serve(req, captured, "MISS");
  }

  /** HEAD is served from the GET's entry; on a miss the handler answers and nothing is stored. */
  private async head(req: R, rest: A, key: string): Promise<Response> {
    let value: unknown;
    try {
      value = await this.cache.get(key);
    } catch {
      value = undefined;
    }
    if (isStoredResponse(value)) return this.serve(req, value, "HIT");
    return withXCache(await this.handler(req, ...rest), "MISS");
  }

  private serve(req: R, stored: StoredResponse, xCache: "HIT" | "MISS" | "STALE"): Response {
    const condition = req.headers.get("if-none-match");
    return toResponse(stored, {
      xCache,
      head: req.method === "HEAD",
      notModified: condition !== null && ifNoneMatch(condition, stored.etag),
      now: Date.now(),
    });
  }

  /** The request's cache key; null when it must not be cached. */
  private async keyOf(req: R, reading: boolean): Promise<string | null> {
    const parts = requestKey(req, this.policy.vary, this.trustForwardedHost);
    const key = `route:${parts.host}${parts.path}`;
    if (this.options.key) return (await this.options.key(req, key, parts)) || null;
    // Without a `key` option the response may depend on who asks: never share it.
    if (reading && (req.headers.has("authorization") || req.headers.has("cookie"))) return null;
    return key;
  }

  private tagsOf(req: R): readonly string[] {
    const { tags } = this.options;
    return typeof tags === "function" ? tags(req) : (tags ?? []);
  }

  private writeOptions(req: R): SetOptions {
    return {
      ttl: this.options.ttl,
      staleWhileRevalidate: this.options.staleWhileRevalidate,
      tags: this.tagsOf(req),
    };
  }
}

/** Marks a response the route did not serve from its entry; copies it when its headers are immutable. */
function withXCache(res: Response, value: "BYPASS" | "MISS"): Response {
  try {
    res.headers.set("x-cache", value);
    return res;
  } catch {
    // `Response.redirect()` and `fetch()` responses have immutable headers.
  }
  try {
    const copy = new Response(res.body, res);
    copy.headers.set("x-cache", value);
    return copy;
  } catch {
    return res;
  }
}
