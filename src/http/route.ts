import { CacheError } from "../errors.js";
import { checkTags } from "../input.js";
import type { GetOrSetOptions, LoaderContext, SetOptions, WaitUntil } from "../types.js";
import { cacheControl } from "./cache-control.js";
import { requestKey, urlTag } from "./cache-key.js";
import { cdnHeaders } from "./cdn.js";
import { notModified } from "./etag.js";
import { isInvalidArgument, unlessInvalidArgument } from "./route-errors.js";
import { type InvalidatingCache, invalidateAfter } from "./route-invalidation.js";
import { type RouteOptions, type RouteSettings, routeSettings } from "./route-options.js";
import {
  capture,
  isPassthrough,
  isStoredResponse,
  type Passthrough,
  type StoredResponse,
  toResponse,
} from "./stored-response.js";
import { VaryMemory, varySuffix } from "./vary.js";
import { waitUntilFrom } from "./wait-until.js";
import { withXCache } from "./x-cache.js";

export type { RouteOptions } from "./route-options.js";

/** What {@link route} needs of a cache; the `Cache` from `createCache` has it all. */
export interface RouteCache extends InvalidatingCache {
  get(key: string): Promise<unknown>;
  getOrSet<T>(
    key: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options?: GetOrSetOptions<T>,
  ): Promise<T>;
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;
  runInBackground(work: () => Promise<unknown>, waitUntil?: WaitUntil): Promise<void>;
}

/** A Web-standard handler: Next.js route handlers, Vercel Functions, Cloudflare `fetch(req, env, ctx)`, Hono's `mount`. */
export type RouteHandler<R extends Request = Request, A extends unknown[] = unknown[]> = (
  req: R,
  ...rest: A
) => Response | Promise<Response>;

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
  private readonly settings: RouteSettings;
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
    this.settings = routeSettings(options);
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
    await invalidateAfter(this.cache, req, await this.keyOf(req, false), ownTags, this.options.invalidates);
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
      const produced = await capture(res, this.settings.policy, req);
      if (isPassthrough(produced)) context.skipCache();
      else this.adopt(produced, req, urlKey, key, context, waitUntil);
      run.produced = produced;
      return produced;
    };
    // Outside the try: a tags function that fails is the caller's error, not a cache failure.
    const options = {
      ...this.writeOptions(req, urlKey, key),
      waitUntil,
      loaderTimeout: this.options.loaderTimeout,
      refreshAhead: this.options.refreshAhead,
      // A stored response has no schema a warm start could check it against.
      warmStart: false,
    };
    let value: unknown;
    try {
      value = await this.cache.getOrSet(key, loader, options);
    } catch (error) {
      if (run.failure) throw run.failure.error;
      // Past `loaderTimeout.hard` the handler is still running: running it again would hold the request.
      if (error instanceof CacheError && error.code === "LOADER_TIMEOUT") throw error;
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
    const captured = await capture(await this.handler(req, ...rest), this.settings.policy, req);
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
      extraHeaders: cdnHeaders(this.settings.cdn, this.tagsOf(req)),
    });
  }

  /** The request's cache key; null when it must not be cached. */
  private async keyOf(req: R, reading: boolean): Promise<string | null> {
    const parts = requestKey(req, this.settings.policy.vary, this.settings.trustForwardedHost);
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
