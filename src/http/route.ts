import { toMs } from "../duration.js";
import { CacheError } from "../errors.js";
import { checkTags } from "../input.js";
import type {
  Duration,
  GetOrSetOptions,
  Invalidation,
  LoaderContext,
  SetOptions,
  WaitUntil,
} from "../types.js";
import { cacheControl } from "./cache-control.js";
import {
  forwardedHostTrustedByDefault,
  normalizeVary,
  type RequestKeyParts,
  requestKey,
} from "./cache-key.js";
import { type CdnOptions, cdnDirectives, cdnHeaders } from "./cdn.js";
import { notModified } from "./etag.js";
import {
  capture,
  isPassthrough,
  isStoredResponse,
  type Passthrough,
  type StoredResponse,
  type StorePolicy,
  toResponse,
} from "./stored-response.js";
import { VaryMemory, varySuffix } from "./vary.js";
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

export type { Invalidation } from "../types.js";

/** Options of {@link route}. */
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

/** The internal tag every entry of a URL that varies carries, so an unsafe request drops all its variants. */
const urlTag = (urlKey: string) => `~url:${urlKey}`;

class CachedRoute<R extends Request, A extends unknown[]> {
  private readonly policy: StorePolicy;
  private readonly trustForwardedHost: boolean;
  private readonly cdn: string | undefined;
  private readonly varies = new VaryMemory();
  /** Stale windows travel with the stored response: the ones it was stored with decide when it is found stale. */
  private readonly staleWindows = (value: unknown) =>
    isStoredResponse(value)
      ? { staleWhileRevalidate: value.staleWhileRevalidateMs, staleIfError: value.staleIfErrorMs }
      : undefined;

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
    this.policy = {
      statuses: new Set(options.statuses ?? DEFAULT_STATUSES),
      vary: normalizeVary(options.vary),
      maxBodyBytes,
      freshMs: options.ttl === undefined ? undefined : toMs(options.ttl, "ttl"),
      staleWhileRevalidateMs:
        options.staleWhileRevalidate === undefined
          ? undefined
          : toMs(options.staleWhileRevalidate, "staleWhileRevalidate"),
    };
    this.trustForwardedHost = options.trustForwardedHost ?? forwardedHostTrustedByDefault();
    this.cdn = options.cdn ? cdnDirectives(options.cdn) : undefined;
    if (typeof options.tags !== "function") checkTags(options.tags, "route: tags");
    if (options.invalidates && typeof options.invalidates !== "function") {
      checkTags(options.invalidates.tags, "route: invalidates.tags");
    }
  }

  async read(req: R, rest: A): Promise<Response> {
    const directives = cacheControl(req.headers.get("cache-control"));
    // A range is a part of a representation: passed through whole to the handler, never stored.
    const bypass = directives.has("no-store") || req.headers.has("range");
    const key = bypass ? null : await this.keyOf(req, true);
    if (key === null) return withXCache(await this.handler(req, ...rest), "BYPASS");
    const learnt = this.varies.get(key);
    const variant = learnt ? key + varySuffix(req, learnt) : key;
    if (req.method === "HEAD") return this.head(req, rest, key, variant);
    const waitUntil = waitUntilFrom(rest);
    if (directives.has("no-cache")) return this.refresh(req, rest, key, variant, waitUntil);
    return this.lookup(req, rest, key, variant, waitUntil);
  }

  async mutate(req: R, rest: A): Promise<Response> {
    // Computed first: a tags function that fails must fail before the handler changes anything.
    const ownTags = this.tagsOf(req);
    const res = await this.handler(req, ...rest);
    if (res.status < 200 || res.status > 299) return res;
    const own = await this.keyOf(req, false);
    const extra =
      typeof this.options.invalidates === "function"
        ? await this.options.invalidates(req)
        : this.options.invalidates;
    const keys = [...(own === null ? [] : [own]), ...(extra?.keys ?? [])];
    // Bad input is thrown, but only once everything valid was invalidated.
    let badInput: unknown;
    let extraTags: readonly string[] = [];
    try {
      extraTags = checkTags(extra?.tags, "route: invalidates.tags");
    } catch (error) {
      badInput = error;
    }
    // Variants of the URL live under other keys: they carry its tag.
    const tags = [...(own === null ? [] : [urlTag(own)]), ...ownTags, ...extraTags];
    // Settled, not raced: each is tried even if another fails, and a failure (already reported by
    // the cache) does not cost the handler's response.
    const settled = await Promise.allSettled([
      keys.length > 0 ? this.cache.delete(...keys) : undefined,
      tags.length > 0 ? this.cache.invalidateTags(tags) : undefined,
      ...(extra?.patterns ?? []).map((pattern) => this.cache.deletePattern(pattern)),
    ]);
    for (const result of settled) {
      if (result.status === "rejected" && isInvalidArgument(result.reason)) badInput ??= result.reason;
    }
    if (badInput !== undefined) throw badInput;
    return res;
  }

  /**
   * L1 → L2 → handler through `getOrSet`, which gives single-flight and stale-while-revalidate.
   * `urlKey` is the URL's own key; `key` is where this request's variant lives (the same until the
   * URL is known to vary).
   */
  private async lookup(
    req: R,
    rest: A,
    urlKey: string,
    key: string,
    waitUntil: WaitUntil | undefined,
  ): Promise<Response> {
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
      const produced = await capture(res, this.policy, req);
      if (isPassthrough(produced)) context.skipCache();
      else this.adopt(produced, req, urlKey, key, context, waitUntil);
      run.produced = produced;
      return produced;
    };
    // Outside the try: a tags function that fails is the caller's error, not a cache failure.
    const options = { ...this.writeOptions(req, urlKey, key), waitUntil };
    let value: unknown;
    try {
      value = await this.cache.getOrSet(key, loader, options);
    } catch (error) {
      if (run.failure) throw run.failure.error;
      // So is a bad key from the route's `key` option.
      if (isInvalidArgument(error)) throw error;
      // The cache failed (failSilently off, or a bug): serve what the handler made, or run it now.
      run.produced ??= { passthrough: await this.handler(req, ...rest) };
      value = run.produced;
    }
    const own = run.produced;
    if (own !== undefined && value === own) {
      return isPassthrough(own) ? withXCache(own.passthrough, "BYPASS") : this.serve(req, own, "MISS");
    }
    if (isStoredResponse(value)) {
      const variant = this.variantKey(req, urlKey, value);
      // Another variant of this URL (found under its own key, or shared by a concurrent request's flight).
      if (variant !== undefined && variant !== key) return this.lookup(req, rest, urlKey, variant, waitUntil);
      // Our loader ran yet another value came back: it is the stale one, refreshing in the background.
      const stale = run.loaded || (value.freshUntil !== undefined && Date.now() >= value.freshUntil);
      return this.serve(req, value, stale ? "STALE" : "HIT");
    }
    // A concurrent request's uncacheable response (its body is that request's), or a foreign value
    // at this key: answer from the handler.
    if (isPassthrough(value)) return withXCache(await this.handler(req, ...rest), "BYPASS");
    return this.refresh(req, rest, urlKey, key, waitUntil);
  }

  /**
   * Freshness and placement of a response the handler just made: its own lifetime when the route
   * gives none, and, when it varies, a copy under its variant's key and the vary list learnt.
   */
  private adopt(
    stored: StoredResponse,
    req: R,
    urlKey: string,
    key: string,
    context: LoaderContext,
    waitUntil: WaitUntil | undefined,
  ): void {
    if (this.options.ttl === undefined && stored.freshUntil !== undefined) {
      context.setTtl(Math.max(1, stored.freshUntil - Date.now()));
    }
    if (!stored.vary) {
      this.varies.remember(urlKey, []);
      return;
    }
    this.varies.remember(urlKey, stored.vary.names);
    const variant = urlKey + stored.vary.suffix;
    if (variant === key) return;
    // Stored under the URL's key too (getOrSet does that), where instances that have not learnt
    // the list find it; the copy is where they look once they have.
    const options = this.writeOptionsFor(stored, this.tagsOfKey(urlKey, req));
    void this.cache
      .runInBackground(() => this.cache.set(variant, stored, options), waitUntil)
      .catch(() => {});
  }

  /** Where a request's variant of a stored response lives, when the response varies (and learns it). */
  private variantKey(req: R, urlKey: string, stored: StoredResponse): string | undefined {
    if (!stored.vary) return undefined;
    this.varies.remember(urlKey, stored.vary.names);
    return urlKey + varySuffix(req, stored.vary.names);
  }

  /** Skips the read, runs the handler and replaces the entry (request `Cache-Control: no-cache`). */
  private async refresh(
    req: R,
    rest: A,
    urlKey: string,
    key: string,
    waitUntil: WaitUntil | undefined,
  ): Promise<Response> {
    const captured = await capture(await this.handler(req, ...rest), this.policy, req);
    if (isPassthrough(captured)) return withXCache(captured.passthrough, "BYPASS");
    const target = captured.vary ? urlKey + captured.vary.suffix : key;
    const options = this.writeOptionsFor(captured, this.tagsOfKey(urlKey, req));
    try {
      await this.cache.runInBackground(() => this.cache.set(target, captured, options), waitUntil);
    } catch {
      // Only a throwing waitUntil gets here; the response does not depend on the write.
    }
    return this.serve(req, captured, "MISS");
  }

  /** HEAD is served from the GET's entry; on a miss the handler answers and nothing is stored. */
  private async head(req: R, rest: A, urlKey: string, key: string): Promise<Response> {
    let value = await this.cache.get(key).catch(unlessInvalidArgument);
    if (isStoredResponse(value)) {
      const variant = this.variantKey(req, urlKey, value);
      if (variant !== undefined && variant !== key)
        value = await this.cache.get(variant).catch(unlessInvalidArgument);
    }
    if (isStoredResponse(value)) return this.serve(req, value, "HIT");
    return withXCache(await this.handler(req, ...rest), "MISS");
  }

  private serve(req: R, stored: StoredResponse, xCache: "HIT" | "MISS" | "STALE"): Response {
    const lastModified = stored.headers.find(([name]) => name === "last-modified")?.[1];
    return toResponse(stored, {
      xCache,
      head: req.method === "HEAD",
      notModified: notModified(req, stored.etag, lastModified),
      now: Date.now(),
      extraHeaders: cdnHeaders(this.cdn, this.tagsOf(req)),
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
    return typeof tags === "function" ? checkTags(tags(req), "route: tags") : (tags ?? []);
  }

  /** The route's tags for the request, plus the URL's own once it is known to vary. */
  private tagsOfKey(urlKey: string, req: R): readonly string[] {
    const tags = this.tagsOf(req);
    return this.varies.get(urlKey) ? [...tags, urlTag(urlKey)] : tags;
  }

  private writeOptions(
    req: R,
    urlKey: string,
    key: string,
  ): SetOptions & Pick<GetOrSetOptions<unknown>, "staleWindows"> {
    const tags = this.tagsOf(req);
    return {
      ttl: this.options.ttl,
      staleWhileRevalidate: this.options.staleWhileRevalidate,
      tags: key === urlKey ? tags : [...tags, urlTag(urlKey)],
      staleWindows: this.staleWindows,
    };
  }

  /** Options of a write outside getOrSet: the stored response's own lifetime and windows. */
  private writeOptionsFor(stored: StoredResponse, tags: readonly string[]): SetOptions {
    return {
      ttl: stored.freshUntil !== undefined ? Math.max(1, stored.freshUntil - Date.now()) : this.options.ttl,
      staleWhileRevalidate: stored.staleWhileRevalidateMs,
      staleIfError: stored.staleIfErrorMs,
      tags,
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

function isInvalidArgument(error: unknown): boolean {
  return error instanceof CacheError && error.code === "INVALID_ARGUMENT";
}

/** A cache failure reads as a miss; bad input is the caller's error and is thrown. */
function unlessInvalidArgument(error: unknown): undefined {
  if (isInvalidArgument(error)) throw error;
  return undefined;
}
