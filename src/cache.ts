import { envOf, pickEnv, resolveConfig } from "./config.js";
import { CacheCore } from "./core.js";
import { Counters } from "./counters.js";
import { toMs } from "./duration.js";
import { CacheError } from "./errors.js";
import { deployHook as deployHandler } from "./http/deploy-hook.js";
import { healthHandler } from "./http/health.js";
import { type RouteHandler, type RouteOptions, route } from "./http/route.js";
import type { KeySpace } from "./keys.js";
import { LoadPolicy } from "./load-policy.js";
import * as operations from "./operations.js";
import { ReadPath } from "./read-path.js";
import * as removal from "./removal.js";
import { buildReport, type CacheReport, type ReportOptions } from "./report.js";
import { forgetShared, sharedInstance } from "./shared.js";
import { type OperationSpan, tracedRoute } from "./telemetry.js";
import type {
  CacheOptions,
  CacheStats,
  ConnectResult,
  DeployHookOptions,
  Duration,
  FlushOptions,
  FlushResult,
  GetOptions,
  GetOrSetOptions,
  HealthReport,
  InvalidationResult,
  LoaderContext,
  SetManyEntry,
  SetOptions,
  WaitUntil,
} from "./types.js";
import { type InvalidatingOptions, invalidating, type WrapOptions, wrap } from "./wrap.js";
import { WritePath } from "./write-path.js";

/**
 * The tiered cache: an in-process LRU (L1) in front of Redis (L2). Create one per process at
 * module scope with {@link createCache}; it connects on first use and never throws for Redis
 * trouble unless `failSilently` is off.
 *
 * This class is the facade: it checks arguments and delegates along the data's path — the read
 * path (read-path.ts), the load policy of `getOrSet` (load-policy.ts), the write path
 * (write-path.ts), removal by key, tag or pattern (removal.ts, over coherence.ts) and operations
 * (operations.ts).
 */
export class Cache {
  /** The key layout this cache writes in. */
  readonly keys: KeySpace;
  private readonly core: CacheCore;
  private readonly read: ReadPath;
  private readonly write: WritePath;
  private readonly loads: LoadPolicy;
  private readonly counters: Counters;

  constructor(options: CacheOptions = {}) {
    const core = new CacheCore(resolveConfig(options));
    this.core = core;
    this.keys = core.keys;
    this.read = new ReadPath(core);
    this.write = new WritePath(core);
    this.loads = new LoadPolicy(core, this.read, this.write);
    this.counters = new Counters(core);
  }

  /** The cache version in force (part of every versioned key). */
  get version(): string {
    return this.core.config.version;
  }

  /** The fresh value at `key`, or `undefined` on a miss. Never throws for Redis trouble (see `failSilently`). */
  get<T = unknown>(key: string, options: GetOptions<T> = {}): Promise<T | undefined> {
    try {
      const full = this.keys.entry(key, options.versioned);
      const local = this.read.freshInL1(full, options);
      const { telemetry } = this.core;
      if (local) {
        if (telemetry?.traceL1Hits) telemetry.l1Hit("get", this.core.keyAttributes(key));
        return Promise.resolve(this.core.hit(key, local.value, "l1") as T);
      }
      if (telemetry) {
        return telemetry.span("get", this.core.keyAttributes(key), (span) =>
          this.getThroughTiers(key, full, options, span),
        );
      }
      if (this.read.batchable(full, options)) return this.read.fresh<T>(key, full, options.waitUntil);
      return this.getThroughTiers(key, full, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async getThroughTiers<T>(
    key: string,
    fullKey: string | Promise<string>,
    options: GetOptions<T>,
    span?: OperationSpan,
  ): Promise<T | undefined> {
    const full = typeof fullKey === "string" ? fullKey : await fullKey;
    if (this.core.config.enabled) {
      // The value and its tag marks are read one after the other: one timeoutMs for both.
      const budget = this.core.l2?.budget();
      const found = await this.read.lookup(key, full, options.schema, options.waitUntil, budget);
      if (found && found.entry.fresh > Date.now()) {
        span?.hit(found.tier);
        return this.core.hit(key, found.value, found.tier) as T;
      }
    }
    span?.hit("miss");
    return this.core.miss(key);
  }

  /** Fresh values of several keys, in order; L1 misses leave for Redis as one MGET. */
  getMany<T = unknown>(keys: readonly string[], options: GetOptions<T> = {}): Promise<(T | undefined)[]> {
    return Promise.all(keys.map((key) => this.get(key, options)));
  }

  /** Stores a value in L1 and Redis (awaited). An unserializable value is a CacheError. */
  set(key: string, value: unknown, options: SetOptions = {}): Promise<void> {
    const { telemetry } = this.core;
    if (!telemetry) return this.store(key, value, options);
    return telemetry.span("set", this.core.keyAttributes(key), () => this.store(key, value, options));
  }

  private async store(key: string, value: unknown, options: SetOptions): Promise<void> {
    const full = await this.keys.entry(key, options.versioned);
    if (!this.core.config.enabled) return;
    await this.write.store(key, full, value, options);
  }

  /** Stores several entries; the Redis writes leave in one round trip. */
  setMany(entries: readonly SetManyEntry[]): Promise<void> {
    const { telemetry } = this.core;
    if (!telemetry) return this.storeMany(entries);
    const attributes = {
      "tiercache.keys.count": Array.isArray(entries) ? entries.length : undefined,
      ...this.listAttribute(
        "tiercache.keys",
        Array.isArray(entries) ? entries.map((entry) => entry?.key) : undefined,
      ),
    };
    return telemetry.span("setMany", attributes, () => this.storeMany(entries));
  }

  private async storeMany(entries: readonly SetManyEntry[]): Promise<void> {
    if (!this.core.config.enabled) return;
    await this.write.storeMany(entries);
  }

  /**
   * Cache-aside: L1 → Redis → `loader`. One loader run per key per instance at a time; stale entries
   * are served within `staleWhileRevalidate` while one background refresh runs, and within
   * `staleIfError` when the loader throws. Loader errors reach the caller unchanged.
   * `loaderTimeout`, `refreshAhead` and `warmStart`: see README, "Deploys without a cold cache".
   */
  getOrSet<T>(
    key: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T> = {},
  ): Promise<T> {
    try {
      this.loads.checkWarmStart(key, options);
      const full = this.keys.entry(key, options.versioned);
      const local = this.read.freshInL1(full, options);
      const { telemetry } = this.core;
      if (local && typeof full === "string") {
        if (telemetry?.traceL1Hits) telemetry.l1Hit("getOrSet", this.core.keyAttributes(key));
        this.loads.refreshAheadIfDue(key, full, loader, options, local);
        return Promise.resolve(this.core.hit(key, local.value, "l1") as T);
      }
      if (telemetry) {
        return telemetry.span("getOrSet", this.core.keyAttributes(key), (span) =>
          this.loads.getOrLoad(key, full, loader, options, span),
        );
      }
      return this.loads.getOrLoad(key, full, loader, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * A cached version of `fn`: `key` is a function of the arguments or a template such as
   * `"{username}_posts:page_{page}"` filled from an object argument (`{0}` for positional ones).
   * A placeholder missing from the arguments is a TypeError, not a key containing "undefined".
   */
  wrap<A extends unknown[], R>(
    fn: (...args: A) => R | Promise<R>,
    options: WrapOptions<A, R>,
  ): (...args: A) => Promise<R> {
    return wrap(this, fn, options);
  }

  /**
   * `fn`, followed by invalidation of `keys`, `tags` and `patterns` (lists or functions of the
   * arguments and result; templates are filled as in {@link Cache.wrap}, glob-escaped in patterns).
   */
  invalidating<A extends unknown[], R>(
    fn: (...args: A) => R | Promise<R>,
    options: InvalidatingOptions<A, R>,
  ): (...args: A) => Promise<R> {
    return invalidating(this, fn, options);
  }

  /**
   * Removes keys (versioned and unversioned, and the previous version's copy a warm start would
   * serve) from both tiers; returns how many entries Redis held.
   * A loader of one of them running meanwhile does not put its older value back. While Redis is
   * unreachable the delete is deferred (a `deferred` event; replayed when Redis answers, served by
   * no read of this instance meanwhile) and the count is L1's.
   */
  delete(...keys: string[]): Promise<number> {
    const { telemetry } = this.core;
    if (!telemetry) return removal.deleteKeys(this.core, keys);
    const attributes = { "tiercache.keys.count": keys.length, ...this.listAttribute("tiercache.keys", keys) };
    return telemetry.span("delete", attributes, async (span) => {
      const removed = await removal.deleteKeys(this.core, keys);
      span.set("tiercache.removed", removed);
      return removed;
    });
  }

  /**
   * Makes every entry carrying one of `tags` a miss (or, with `soft`, stale: served within its
   * `staleWhileRevalidate` window while it refreshes) — here at once, on other instances within
   * `l1.syncMs`. Costs one MSET and one epoch SET whatever the number of entries: entries are checked
   * against the tag's invalidation time when read, never scanned. Resolves to `{ deferred: true }`
   * when Redis could not be reached: the invalidation holds here at once and is replayed when it answers.
   */
  invalidateTags(tags: readonly string[], options: { soft?: boolean } = {}): Promise<InvalidationResult> {
    const { telemetry } = this.core;
    if (!telemetry) return removal.invalidateTags(this.core, tags, options.soft === true);
    const attributes = {
      "tiercache.tags.count": Array.isArray(tags) ? tags.length : undefined,
      "tiercache.soft": options.soft === true,
      ...this.listAttribute("tiercache.tags", tags),
    };
    return telemetry.span("invalidateTags", attributes, async (span) => {
      const result = await removal.invalidateTags(this.core, tags, options.soft === true);
      span.set("tiercache.deferred", result.deferred);
      return result;
    });
  }

  /**
   * Deletes every entry of this namespace and version whose key matches `glob` (Redis glob syntax;
   * pass user input through `escapeGlob`). SCAN + UNLINK in batches; returns how many were removed.
   * Keys long enough to be hashed cannot match a pattern.
   */
  deletePattern(glob: string, options: { versioned?: boolean } = {}): Promise<number> {
    const { telemetry } = this.core;
    if (!telemetry) return removal.deletePattern(this.core, glob, options.versioned !== false);
    const attributes = telemetry.traceKeys ? { "tiercache.pattern": String(glob) } : {};
    return telemetry.span("deletePattern", attributes, async (span) => {
      const removed = await removal.deletePattern(this.core, glob, options.versioned !== false);
      span.set("tiercache.removed", removed);
      return removed;
    });
  }

  /** How many of `keys` exist (in Redis, or in L1 when there is none). */
  async exists(...keys: string[]): Promise<number> {
    const pairs = await Promise.all(keys.map((key) => this.keys.entries(key)));
    return this.read.countExisting(pairs);
  }

  /** Seconds the entry stays fresh: -2 when absent, 0 when only stale remains. */
  async ttl(key: string): Promise<number> {
    const full = await this.keys.entry(key);
    const found = await this.read.lookup(key, full, undefined);
    if (!found) return -2;
    return Math.max(0, Math.ceil((found.entry.fresh - Date.now()) / 1000));
  }

  /** Gives an existing entry a new freshness (keeping its stale window); false when absent. */
  async expire(key: string, ttl: Duration): Promise<boolean> {
    const ms = toMs(ttl, "ttl");
    const full = await this.keys.entry(key);
    const budget = this.core.l2?.budget(); // read and rewrite: one timeoutMs for both
    const found = await this.read.lookup(key, full, undefined, undefined, budget);
    if (!found) return false;
    const { entry } = found;
    await this.write.store(
      key,
      full,
      entry.value,
      { ttl: ms, staleWhileRevalidate: entry.stale - entry.fresh, tags: entry.tags },
      budget,
    );
    return true;
  }

  /**
   * Atomically adds `by` to a counter and returns the new value. Counters are not versioned: they
   * survive deploys. Without Redis (or while it fails, with `failSilently`) the count is this
   * instance's own, best effort.
   */
  increment(key: string, by = 1): Promise<number> {
    return this.counters.increment(key, by);
  }

  /** Round-trip time to Redis in ms; throws a CacheError when it cannot be reached or there is none. */
  ping(): Promise<number> {
    return operations.ping(this.core);
  }

  /** Connects now (for long-lived servers that want to know at start-up); never throws. */
  connect(): Promise<ConnectResult> {
    return operations.connect(this.core);
  }

  /** State of both tiers and Redis, safe to expose: no keys, no secrets. */
  health(): Promise<HealthReport> {
    return operations.health(this.core);
  }

  /** Hits per tier, misses, stale served, loads, errors, hit rate — this instance since it started. */
  stats(): CacheStats {
    return operations.stats(this.core);
  }

  /**
   * Runs background work: handed to `waitUntil` (the one given, else the cache's) so the platform
   * keeps the function alive for it, or awaited when there is none. Its failure is logged, not thrown.
   */
  runInBackground(work: () => Promise<unknown>, waitUntil?: WaitUntil): Promise<void> {
    return this.core.runInBackground(work, waitUntil);
  }

  /**
   * What the whole Redis database holds, per environment prefix, namespace and version: key counts,
   * approximate memory, the version registry, tag marks, and the analytics every instance with
   * `analytics: true` pushed over the last hour and day. SCAN-based and bounded (see
   * {@link ReportOptions}); throws a CacheError when Redis fails or there is none.
   */
  report(options?: ReportOptions): Promise<CacheReport> {
    const { l2 } = this.core;
    if (!l2) return Promise.reject(new CacheError("UNAVAILABLE", "no Redis configured (L1 only)"));
    return buildReport(l2, options);
  }

  /**
   * Closes the Redis connection for good (after a last analytics push): the cache keeps working from
   * L1 and loaders only and never reconnects (a cache configured from the environment included);
   * `ping()` and `flush()` fail with a `CLOSED` CacheError. Create a new cache to use Redis again.
   */
  async close(): Promise<void> {
    forgetShared(this);
    await this.core.analytics?.push().catch(() => {});
    await this.core.l2?.close();
  }

  /**
   * Caches a Web-standard handler's `GET`/`HEAD` responses (Next.js route handlers, Vercel
   * Functions, Cloudflare `fetch(req, env, ctx)`, Hono); other methods run it, then invalidate.
   * Adds `x-cache: HIT|MISS|STALE|BYPASS` and `age`, answers `If-None-Match` with 304. See
   * {@link RouteOptions} for what is cached and how it is keyed.
   */
  route<R extends Request, A extends unknown[]>(
    handler: RouteHandler<R, A>,
    options?: RouteOptions<R>,
  ): (req: R, ...rest: A) => Promise<Response> {
    const served = route(this, handler, options);
    const { telemetry } = this.core;
    return telemetry ? tracedRoute(telemetry, served) : served;
  }

  /** A Web handler answering `health()` as JSON: 200 when healthy, 503 otherwise; no keys, no secrets. */
  healthHandler(): (req: Request) => Promise<Response> {
    return healthHandler(this);
  }

  /**
   * Removes cached keys of one scope (see {@link FlushScope}) from Redis and from this instance's L1;
   * other instances drop their L1 copies within `l1.syncMs`. SCAN + UNLINK in batches of about 1,000
   * keys: memory stays bounded and Redis is never blocked for long. The default, `"stale-versions"`,
   * deletes the entries of versions first seen before the current one and the `keepVersions` before
   * it — an older deployment never deletes a newer one's keys. `"database"` (FLUSHDB) runs only when
   * asked for by name. Unlike reads, a flush throws a CacheError when Redis fails, whatever
   * `failSilently` says: a deploy step must know its flush did not happen.
   *
   * @example
   * await cache.flush(); // { scope: "stale-versions", removed: 1234, versions: ["a1b2c3d4"] }
   * await cache.flush({ scope: "version", dryRun: true, onProgress: (n) => console.log(n) });
   */
  flush(options: FlushOptions = {}): Promise<FlushResult> {
    const { telemetry } = this.core;
    if (!telemetry) return operations.flush(this.core, options);
    const attributes = {
      "tiercache.flush.scope": options.scope ?? "stale-versions",
      "tiercache.dry_run": options.dryRun === true,
    };
    return telemetry.span("flush", attributes, async (span) => {
      const result = await operations.flush(this.core, options);
      span.set("tiercache.removed", result.removed);
      return result;
    });
  }

  /**
   * A Web handler `(req) => Promise<Response>` for a deploy step, a GitHub Action or a cron: on `POST`
   * with `Authorization: Bearer <secret>` it runs `flush({ scope })` and answers `{ scope, removed }`
   * as JSON; a wrong or missing secret gets 401 and deletes nothing, other methods 405.
   *
   * @example
   * export const POST = cache.deployHook({ secret: process.env.CACHE_FLUSH_SECRET! });
   */
  deployHook(options: DeployHookOptions): (req: Request) => Promise<Response> {
    return deployHandler(this, options);
  }

  /** A list of user keys or tags as one span attribute, only with `traceKeys`. */
  private listAttribute(name: string, list: unknown): Record<string, string> {
    return this.core.telemetry?.traceKeys && Array.isArray(list) ? { [name]: list.join(", ") } : {};
  }
}

/**
 * Creates a cache; nothing connects until the first operation. See {@link CacheOptions}.
 *
 * Options that are plain data (configuration from the environment: no `redis` transport, `logger`
 * or callbacks) give one instance per process: calling `createCache()` in several modules, or in
 * modules Next.js bundles more than once, shares one L1 and one connection. `new Cache(options)`
 * always makes a new one.
 */
export function createCache(options: CacheOptions = {}): Cache {
  return sharedInstance(options, pickEnv(envOf(options)), () => new Cache(options));
}
