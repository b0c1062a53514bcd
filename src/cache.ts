import { Coherence } from "./coherence.js";
import { envOf, fraction, pickEnv, type ResolvedConfig, resolveConfig } from "./config.js";
import { toMs } from "./duration.js";
import { compressText, createEntry, type Entry, parseEntry } from "./entry.js";
import { asError, CacheError } from "./errors.js";
import { type FlushContext, runFlush } from "./flush.js";
import { deployHook as deployHandler } from "./http/deploy-hook.js";
import { healthHandler } from "./http/health.js";
import { type RouteHandler, type RouteOptions, route } from "./http/route.js";
import { vercelWaitUntil } from "./http/wait-until.js";
import { KeySpace } from "./keys.js";
import { validate } from "./schema.js";
import { forgetShared, sharedInstance } from "./shared.js";
import { Breaker } from "./tiers/breaker.js";
import { L1 } from "./tiers/l1.js";
import { L2 } from "./tiers/l2.js";
import type {
  CacheEvent,
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
  LoaderContext,
  Schema,
  SetManyEntry,
  SetOptions,
  WaitUntil,
} from "./types.js";
import { registerVersion } from "./versioning.js";
import { type InvalidatingOptions, invalidating, type WrapOptions, wrap } from "./wrap.js";

/** Stored texts longer than this are gzipped before they go to Redis. */
const COMPRESS_ABOVE = 16 * 1024;
/** Stored texts longer than this (after compression) skip Redis with a warning: Upstash caps requests at 1 MB. */
const MAX_L2_VALUE = 1024 * 1024;

type Tier = "l1" | "l2";
interface Found {
  entry: Entry;
  tier: Tier;
  /** What the caller gets: the schema's output when one was given, else the entry's value. */
  value: unknown;
}

/**
 * The tiered cache: an in-process LRU (L1) in front of Redis (L2). Create one per process at
 * module scope with {@link createCache}; it connects on first use and never throws for Redis
 * trouble unless `failSilently` is off.
 */
export class Cache {
  /** The key layout this cache writes in. */
  readonly keys: KeySpace;
  private readonly config: ResolvedConfig;
  private readonly l1: L1 | null;
  private readonly l2: L2 | null;
  private readonly breaker: Breaker;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly schemaIds = new WeakMap<Schema<unknown>, number>();
  private lastSchemaId = 0;
  private readonly refreshing = new Set<string>();
  /** Counters when there is no Redis (or it is down): best effort, this instance only. */
  private readonly localCounters = new Map<string, number>();
  private readonly counts = { l1: 0, l2: 0, misses: 0, stale: 0, loads: 0, errors: 0 };
  private readonly coherence: Coherence;

  constructor(options: CacheOptions = {}) {
    const config = resolveConfig(options);
    this.config = config;
    this.keys = new KeySpace(config.prefix, config.namespace, config.version);
    this.l1 = config.l1 ? new L1(config.l1.maxEntries, config.l1.maxBytes, config.l1.ttlMs) : null;
    this.breaker = new Breaker(config.breaker.failureThreshold, config.breaker.resetMs, (state) => {
      this.emit({ type: "breaker", state });
      if (state === "open") config.logger.warn("Redis circuit open: serving from L1 and loaders");
      else if (state === "closed") config.logger.info?.("Redis circuit closed: Redis is back");
    });
    this.l2 = config.transport
      ? new L2(config.transport, config.transportKind, config.timeoutMs, this.breaker, (operation, error) => {
          this.counts.errors++;
          this.emit({ type: "error", operation, error });
          config.logger.warn(`Redis ${operation} failed: ${error.message}`, { code: error.code });
        })
      : null;
    this.coherence = new Coherence(
      this.l1,
      this.l2,
      this.keys,
      (work) => this.tolerate(work),
      config.l1 ? config.l1.syncMs : 1000,
      () => this.debug("L1 dropped: invalidation on another instance"),
    );
  }

  /** The cache version in force (part of every versioned key). */
  get version(): string {
    return this.config.version;
  }

  /** The fresh value at `key`, or `undefined` on a miss. Never throws for Redis trouble (see `failSilently`). */
  get<T = unknown>(key: string, options: GetOptions<T> = {}): Promise<T | undefined> {
    try {
      const full = this.keys.entry(key, options.versioned);
      const local = this.freshInL1(full, options);
      if (local) return Promise.resolve(this.hit(key, local.value, "l1") as T);
      return this.getThroughTiers(key, full, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async getThroughTiers<T>(
    key: string,
    fullKey: string | Promise<string>,
    options: GetOptions<T>,
  ): Promise<T | undefined> {
    const full = typeof fullKey === "string" ? fullKey : await fullKey;
    if (!this.config.enabled) return this.miss(key);
    const found = await this.lookup(key, full, options.schema, options.waitUntil);
    if (found && found.entry.fresh > Date.now()) return this.hit(key, found.value, found.tier) as T;
    return this.miss(key);
  }

  /**
   * A fresh L1 entry found without a single await: the hot path of every warm invocation, so a
   * hit costs one resolved promise rather than a chain of them.
   */
  private freshInL1(full: string | Promise<string>, options: GetOptions<unknown>): Entry | undefined {
    if (typeof full !== "string" || options.schema || !this.l1 || !this.config.enabled) return undefined;
    const now = Date.now();
    const entry = this.l1.get(full, now);
    if (!entry || entry.fresh <= now) return undefined;
    this.coherence.syncInBackground(now, () => this.scheduler(options.waitUntil));
    return entry;
  }

  /** Fresh values of several keys, in order; L1 misses leave for Redis as one MGET. */
  getMany<T = unknown>(keys: readonly string[], options: GetOptions<T> = {}): Promise<(T | undefined)[]> {
    return Promise.all(keys.map((key) => this.get(key, options)));
  }

  /** Stores a value in L1 and Redis (awaited). An unserializable value is a CacheError. */
  async set(key: string, value: unknown, options: SetOptions = {}): Promise<void> {
    const full = await this.keys.entry(key, options.versioned);
    if (!this.config.enabled) return;
    await this.store(key, full, value, options);
  }

  /** Stores several entries; the Redis writes leave in one round trip. */
  async setMany(entries: readonly SetManyEntry[]): Promise<void> {
    if (!this.config.enabled) return;
    const writes = await Promise.all(
      entries.map(async (e) => this.prepare(e.key, await this.keys.entry(e.key, e.versioned), e.value, e)),
    );
    const now = Date.now();
    for (const write of writes) this.l1?.set(write.full, write.entry, now);
    const commands = writes.flatMap((write) => (write.command ? [write.command] : []));
    if (!this.l2 || commands.length === 0) return;
    await this.tolerate(async () => {
      const replies = await this.l2!.pipeline(commands, "SET");
      const failed = replies.find((reply) => reply instanceof Error);
      if (failed) throw new CacheError("UNAVAILABLE", `SET failed: ${failed.message}`);
    });
  }

  /**
   * Cache-aside: L1 → Redis → `loader`. One loader run per key per instance at a time; stale entries
   * are served within `staleWhileRevalidate` while one background refresh runs, and within
   * `staleIfError` when the loader throws. Loader errors reach the caller unchanged.
   */
  getOrSet<T>(
    key: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T> = {},
  ): Promise<T> {
    try {
      const full = this.keys.entry(key, options.versioned);
      const local = this.freshInL1(full, options);
      if (local) return Promise.resolve(this.hit(key, local.value, "l1") as T);
      return this.getOrLoad(key, full, loader, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async getOrLoad<T>(
    key: string,
    fullKey: string | Promise<string>,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T>,
  ): Promise<T> {
    const full = typeof fullKey === "string" ? fullKey : await fullKey;
    if (!this.config.enabled) return (await this.load(key, full, loader, options)).value;
    // Callers share a flight only when they would get the same value: same key, same schema.
    const flightKey = options.schema ? `${full}\u0000${this.schemaId(options.schema)}` : full;
    const running = this.inflight.get(flightKey);
    if (running) return running as Promise<T>;
    const flight = this.resolve(key, full, loader, options).finally(() => this.inflight.delete(flightKey));
    this.inflight.set(flightKey, flight);
    return flight;
  }

  private schemaId(schema: Schema<unknown>): number {
    let id = this.schemaIds.get(schema);
    if (id === undefined) {
      id = ++this.lastSchemaId;
      this.schemaIds.set(schema, id);
    }
    return id;
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

  /** Removes keys (versioned and unversioned) from both tiers; returns how many Redis removed. */
  async delete(...keys: string[]): Promise<number> {
    const pairs = await Promise.all(keys.map((key) => this.bothSpaces(key)));
    let local = 0;
    for (const full of pairs.flat()) if (this.l1?.delete(full)) local++;
    if (!this.l2 || pairs.length === 0) return local;
    const replies = await this.tolerate(() =>
      this.l2!.pipeline(
        [
          ["UNLINK", ...pairs.flat()],
          ["INCR", this.keys.epoch],
        ],
        "UNLINK",
      ),
    );
    this.coherence.ownBump(replies?.[1]);
    return typeof replies?.[0] === "number" ? replies[0] : local;
  }

  /**
   * Makes every entry carrying one of `tags` a miss (or, with `soft`, stale: served within its
   * `staleWhileRevalidate` window while it refreshes) — here at once, on other instances within
   * `l1.syncMs`. Costs one MSET and one INCR whatever the number of entries: entries are checked
   * against the tag's invalidation time when read, never scanned.
   */
  async invalidateTags(tags: readonly string[], options: { soft?: boolean } = {}): Promise<void> {
    if (tags.length > 0) await this.coherence.invalidateTags(tags, options.soft === true);
  }

  /**
   * Deletes every entry of this namespace and version whose key matches `glob` (Redis glob syntax;
   * pass user input through `escapeGlob`). SCAN + UNLINK in batches; returns how many were removed.
   * Keys long enough to be hashed cannot match a pattern.
   */
  async deletePattern(glob: string, options: { versioned?: boolean } = {}): Promise<number> {
    if (typeof glob !== "string" || glob === "") throw new TypeError("tiercache: deletePattern needs a glob");
    return this.coherence.deletePattern(this.keys.pattern(glob, options.versioned !== false));
  }

  /** How many of `keys` exist (in Redis, or in L1 when there is none). */
  async exists(...keys: string[]): Promise<number> {
    const pairs = await Promise.all(keys.map((key) => this.bothSpaces(key)));
    const now = Date.now();
    const inL1 = pairs.filter((pair) => pair.some((full) => this.l1?.get(full, now))).length;
    if (!this.l2 || pairs.length === 0) return inL1;
    const replies = await this.tolerate(() =>
      this.l2!.pipeline(
        pairs.map((pair) => ["EXISTS", ...pair]),
        "EXISTS",
      ),
    );
    return replies ? replies.filter((reply) => typeof reply === "number" && reply > 0).length : inL1;
  }

  /** Seconds the entry stays fresh: -2 when absent, 0 when only stale remains. */
  async ttl(key: string): Promise<number> {
    const full = await this.keys.entry(key);
    const found = await this.lookup(key, full, undefined);
    if (!found) return -2;
    return Math.max(0, Math.ceil((found.entry.fresh - Date.now()) / 1000));
  }

  /** Gives an existing entry a new freshness (keeping its stale window); false when absent. */
  async expire(key: string, ttl: Duration): Promise<boolean> {
    const ms = toMs(ttl, "ttl");
    const full = await this.keys.entry(key);
    const found = await this.lookup(key, full, undefined);
    if (!found) return false;
    const { entry } = found;
    await this.store(key, full, entry.value, {
      ttl: ms,
      staleWhileRevalidate: entry.stale - entry.fresh,
      tags: entry.tags,
    });
    return true;
  }

  /**
   * Atomically adds `by` to a counter and returns the new value. Counters are not versioned: they
   * survive deploys. Without Redis (or while it fails, with `failSilently`) the count is this
   * instance's own, best effort.
   */
  async increment(key: string, by = 1): Promise<number> {
    if (!Number.isSafeInteger(by))
      throw new TypeError(`tiercache: increment by must be an integer, got ${by}`);
    const full = await this.keys.counter(key);
    const local = (this.localCounters.get(full) ?? 0) + by;
    if (this.l2) {
      const reply = await this.tolerate(() => this.l2!.send(["INCRBY", full, by]));
      if (typeof reply === "number") return reply;
    }
    this.localCounters.set(full, local);
    return local;
  }

  /** Round-trip time to Redis in ms; throws a CacheError when it cannot be reached or there is none. */
  async ping(): Promise<number> {
    if (!this.l2) throw new CacheError("UNAVAILABLE", "no Redis configured (L1 only)");
    const started = performance.now();
    await this.l2.send(["PING"]);
    return performance.now() - started;
  }

  /** Connects now (for long-lived servers that want to know at start-up); never throws. */
  async connect(): Promise<ConnectResult> {
    const base = {
      transport: this.l2?.kind ?? "none",
      version: this.version,
      flushedVersions: [] as string[],
    };
    if (!this.l2) return { connected: false, ...base };
    try {
      await this.ping();
      const flushedVersions = await this.ensureRegistered();
      this.config.logger.info?.("Cache connected", { transport: base.transport, version: this.version });
      return { connected: true, ...base, flushedVersions };
    } catch (error) {
      return { connected: false, ...base, error: asError(error).message };
    }
  }

  /** State of both tiers and Redis, safe to expose: no keys, no secrets. */
  async health(): Promise<HealthReport> {
    const l1 = this.l1
      ? {
          entries: this.l1.entries,
          bytes: this.l1.bytes,
          maxEntries: this.l1.maxEntries,
          maxBytes: this.l1.maxBytes,
        }
      : null;
    const base = { transport: this.l2?.kind ?? "none", version: this.version, l1 };
    if (!this.l2) return { healthy: true, latencyMs: null, breaker: this.breaker.state, ...base };
    try {
      const latencyMs = await this.ping();
      const info = await this.l2.send(["INFO"]);
      return {
        healthy: true,
        latencyMs,
        breaker: this.breaker.state,
        ...base,
        redis: typeof info === "string" ? parseInfo(info) : undefined,
      };
    } catch (error) {
      return {
        healthy: false,
        latencyMs: null,
        breaker: this.breaker.state,
        ...base,
        error: asError(error).message,
      };
    }
  }

  /** Hits per tier, misses, stale served, loads, errors, hit rate — this instance since it started. */
  stats(): CacheStats {
    const { l1, l2, misses, stale, loads, errors } = this.counts;
    const reads = l1 + l2 + stale + misses;
    return {
      hits: { l1, l2 },
      misses,
      staleServed: stale,
      loads,
      errors,
      hitRate: reads === 0 ? 0 : (l1 + l2 + stale) / reads,
    };
  }

  /**
   * Runs background work: handed to `waitUntil` (the one given, else the cache's) so the platform
   * keeps the function alive for it, or awaited when there is none. Its failure is logged, not thrown.
   */
  async runInBackground(work: () => Promise<unknown>, waitUntil?: WaitUntil): Promise<void> {
    const promise = work().catch((error) =>
      this.config.logger.warn(`background work failed: ${asError(error).message}`),
    );
    const schedule = this.scheduler(waitUntil);
    if (schedule) schedule(promise);
    else await promise;
  }

  /** Who keeps the function alive for background work: the call's, the cache's, else the live Vercel request's. */
  private scheduler(given: WaitUntil | undefined): WaitUntil | undefined {
    return given ?? this.config.waitUntil ?? vercelWaitUntil();
  }

  /** Closes the Redis connection; the cache keeps working from L1 and loaders. */
  async close(): Promise<void> {
    forgetShared(this);
    await this.l2?.close();
  }

  private async resolve<T>(
    key: string,
    full: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T>,
  ): Promise<T> {
    const found = await this.lookup(key, full, options.schema, options.waitUntil);
    const now = Date.now();
    if (found && found.entry.fresh > now) return this.hit(key, found.value, found.tier) as T;
    const stale = found?.entry;
    const staleValue = found?.value as T;
    const swrMs = toMs(
      options.staleWhileRevalidate ?? this.config.staleWhileRevalidateMs,
      "staleWhileRevalidate",
    );
    if (stale && now < stale.fresh + swrMs) {
      this.counts.stale++;
      this.emit({ type: "stale", key, tier: found.tier });
      this.debug(`Cache STALE (${found.tier}) ${key}`);
      this.refreshInBackground(key, full, loader, options);
      return staleValue;
    }
    this.miss(key);
    let leaseKey: string | undefined;
    if (options.lease && this.l2 && !stale) {
      const leaseMs = Math.ceil(options.lease === true ? 2000 : toMs(options.lease, "lease"));
      leaseKey = this.keys.lease(full);
      const lease = leaseKey;
      const granted = await this.tolerate(() => this.l2!.send(["SET", lease, "1", "NX", "PX", leaseMs]));
      if (granted === null) {
        leaseKey = undefined;
        const loaded = await this.awaitLeaseHolder(key, full, options.schema, leaseMs);
        if (loaded) return this.hit(key, loaded.value, "l2") as T;
      }
    }
    try {
      return (await this.load(key, full, loader, options, leaseKey)).value;
    } catch (error) {
      if (leaseKey) this.releaseLease(leaseKey);
      const sieMs = toMs(options.staleIfError ?? this.config.staleIfErrorMs, "staleIfError");
      if (
        stale &&
        Date.now() < stale.fresh + sieMs &&
        !(error instanceof CacheError && error.code === "SCHEMA")
      ) {
        this.counts.stale++;
        this.config.logger.warn(`loader failed, serving stale ${key}: ${asError(error).message}`);
        return staleValue;
      }
      throw error;
    }
  }

  private refreshInBackground<T>(
    key: string,
    full: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T>,
  ): void {
    if (this.refreshing.has(full)) return;
    this.refreshing.add(full);
    void this.runInBackground(
      () =>
        this.load(key, full, loader, { ...options, waitUntil: undefined }).finally(() =>
          this.refreshing.delete(full),
        ),
      options.waitUntil,
    );
  }

  /**
   * Polls Redis for the value another instance's lease holder is loading, until the lease ends or is
   * released without a value (the holder's loader failed): then this instance loads for itself.
   */
  private async awaitLeaseHolder(
    key: string,
    full: string,
    schema: Schema<unknown> | undefined,
    leaseMs: number,
  ): Promise<Found | undefined> {
    const lease = this.keys.lease(full);
    const until = Date.now() + leaseMs;
    let pause = 10;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, until - Date.now()))));
      pause = Math.min(pause * 2, 100);
      // Both reads join one MGET.
      const [entry, held] = await Promise.all([
        this.readRemote(key, full),
        this.tolerate(() => this.l2!.get(lease)),
      ]);
      if (entry && entry.fresh > Date.now()) {
        const checked = schema ? await this.conforming(full, entry, schema) : { value: entry.value };
        if (checked) {
          this.l1?.set(full, entry, Date.now());
          return { entry, tier: "l2", value: checked.value };
        }
      }
      if (held === null) return undefined;
    }
    return undefined;
  }

  /** Lets the instances waiting on this lease load for themselves at once. */
  private releaseLease(lease: string): void {
    this.l2?.send(["DEL", lease]).catch(() => {});
  }

  /**
   * Runs the loader, checks its value, puts it in L1 at once and in Redis in the background — or,
   * for a lease holder, awaited and with the lease released, since other instances are polling for it.
   */
  private async load<T>(
    key: string,
    full: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options: GetOrSetOptions<T>,
    leaseKey?: string,
  ): Promise<{ value: T }> {
    let ttl: Duration | undefined = options.ttl;
    let skip = !this.config.enabled;
    const context: LoaderContext = {
      key,
      setTtl: (value) => {
        ttl = toMs(value, "ttl");
      },
      skipCache: () => {
        skip = true;
      },
    };
    // An invalidation of its tags made while the loader runs must still hit this value: it is
    // dated from before the load, not from the write.
    const createdAt = Date.now();
    const started = performance.now();
    const loaded: T = await loader(context);
    const durationMs = performance.now() - started;
    this.counts.loads++;
    this.emit({ type: "load", key, durationMs });
    let value = loaded;
    if (options.schema) {
      const checked = await validate(options.schema, loaded);
      if (!checked.ok)
        throw new CacheError("SCHEMA", `loader value for "${key}" fails the schema: ${checked.message}`);
      value = checked.value;
    }
    if (skip) {
      if (leaseKey) this.releaseLease(leaseKey);
      return { value };
    }
    let write: Awaited<ReturnType<Cache["prepare"]>>;
    try {
      // The loader's own value is cached (a schema's transform is applied on every read).
      write = await this.prepare(key, full, loaded, { ...options, ttl }, createdAt);
    } catch (error) {
      if (!this.config.failSilently) throw error;
      this.config.logger.warn(`not cached: ${asError(error).message}`);
      return { value };
    }
    this.l1?.set(full, write.entry, Date.now());
    if (leaseKey && this.l2) {
      const commands = write.command ? [write.command, ["DEL", leaseKey]] : [["DEL", leaseKey]];
      await this.tolerate(() => this.l2!.pipeline(commands, "SET"));
    } else if (write.command && this.l2) {
      const command = write.command;
      await this.runInBackground(() => this.tolerate(() => this.l2!.send(command)), options.waitUntil);
    }
    return { value };
  }

  /** Finds a servable entry (fresh or stale), preferring L1, asking Redis when L1 has no fresh one. */
  private async lookup(
    key: string,
    full: string,
    schema: Schema<unknown> | undefined,
    waitUntil?: WaitUntil,
  ): Promise<Found | undefined> {
    void this.ensureRegistered(true, waitUntil);
    const now = Date.now();
    const localEntry = this.l1?.get(full, now);
    const localChecked =
      localEntry && (schema ? await this.conforming(full, localEntry, schema) : localEntry);
    const local: Found | undefined =
      localEntry && localChecked ? { entry: localEntry, tier: "l1", value: localChecked.value } : undefined;
    if (local && local.entry.fresh > now)
      this.coherence.syncInBackground(now, () => this.scheduler(waitUntil));
    if ((local && local.entry.fresh > now) || !this.l2) return local;
    const remote = await this.readRemote(key, full);
    if (remote && (!local || remote.fresh > local.entry.fresh)) {
      const checked = schema ? await this.conforming(full, remote, schema) : remote;
      if (checked) {
        this.l1?.set(full, remote, Date.now());
        return { entry: remote, tier: "l2", value: checked.value };
      }
    }
    return local;
  }

  /** The servable entry stored in Redis at `full`: corrupt ones are deleted, invalidated ones skipped. */
  private async readRemote(key: string, full: string): Promise<Entry | undefined> {
    const stored = await this.coherence.read(full);
    if (typeof stored !== "string") return undefined;
    let entry: Entry;
    try {
      const parsed = parseEntry(stored);
      entry = parsed instanceof Promise ? await parsed : parsed;
    } catch (error) {
      this.config.logger.warn(`corrupt entry at ${key} deleted: ${asError(error).message}`);
      this.unlinkQuietly(full);
      return undefined;
    }
    if (entry.stale <= Date.now()) return undefined;
    if (entry.tags.length > 0 && !(await this.coherence.passesTags(entry))) return undefined;
    return entry;
  }

  /**
   * Schema check on read: the schema's output, or undefined for a mismatch — a miss, and the entry
   * is deleted so it is reloaded. The entry itself is left as stored (a transform runs on every read).
   */
  private async conforming(
    full: string,
    entry: Entry,
    schema: Schema<unknown>,
  ): Promise<{ value: unknown } | undefined> {
    const checked = await validate(schema, entry.value);
    if (checked.ok) return { value: checked.value };
    this.debug(`Cache entry fails schema, deleting ${full}`);
    this.l1?.delete(full);
    this.unlinkQuietly(full);
    return undefined;
  }

  private async store(key: string, full: string, value: unknown, options: SetOptions): Promise<void> {
    void this.ensureRegistered();
    const write = await this.prepare(key, full, value, options);
    this.l1?.set(full, write.entry, Date.now());
    const command = write.command;
    if (command && this.l2) await this.tolerate(() => this.l2!.send(command));
  }

  /** Builds the entry and its Redis write: a SET, or an UNLINK of the old value when this one is too large for Redis. */
  private async prepare(
    key: string,
    full: string,
    value: unknown,
    options: SetOptions,
    createdAt?: number,
  ): Promise<{ full: string; entry: Entry; command: (string | number)[] | undefined }> {
    const now = Date.now();
    const baseTtlMs = options.ttl !== undefined ? toMs(options.ttl, "ttl") : this.config.ttlMs;
    const jitter = options.jitter !== undefined ? fraction("jitter", options.jitter) : this.config.jitter;
    const ttlMs = jitter > 0 ? Math.round(baseTtlMs * (1 - Math.random() * jitter)) : baseTtlMs;
    const swrMs = toMs(
      options.staleWhileRevalidate ?? this.config.staleWhileRevalidateMs,
      "staleWhileRevalidate",
    );
    const sieMs = toMs(options.staleIfError ?? this.config.staleIfErrorMs, "staleIfError");
    const fresh = now + ttlMs;
    const times = { created: createdAt ?? now, fresh, stale: fresh + Math.max(swrMs, sieMs) };
    const { entry, text } = createEntry(key, value, times, options.tags ?? []);
    if (!this.l2) return { full, entry, command: undefined };
    const stored = text.length > COMPRESS_ABOVE ? await compressText(text) : text;
    if (stored.length > MAX_L2_VALUE) {
      this.config.logger.warn(
        `value for ${key} is ${stored.length} bytes, over ${MAX_L2_VALUE}: kept in L1 only`,
      );
      // The previous value must not stay behind in Redis for other instances to serve.
      return { full, entry, command: ["UNLINK", full] };
    }
    // PX takes whole milliseconds only: a fractional ttl would make every write an error reply.
    return { full, entry, command: ["SET", full, stored, "PX", Math.max(1, Math.ceil(times.stale - now))] };
  }

  /**
   * Deletes a bad entry from Redis without making the read wait. Its failure was reported by L2
   * already and must not surface as an unhandled rejection, whatever `failSilently` says.
   */
  private unlinkQuietly(full: string): void {
    this.l2?.send(["UNLINK", full]).catch(() => {});
  }

  /** Runs an L2 operation; its CacheError is swallowed (undefined) with `failSilently`, thrown without. */
  private tolerate<T>(work: () => Promise<T>): Promise<T | undefined> {
    const swallow = (error: unknown) => {
      if (!this.config.failSilently) throw error;
      return undefined;
    };
    try {
      return work().catch(swallow);
    } catch (error) {
      return Promise.reject(error).catch(swallow);
    }
  }

  private bothSpaces(key: string): Promise<string[]> {
    return Promise.all([this.keys.entry(key, true), this.keys.entry(key, false)]);
  }

  private hit(key: string, value: unknown, tier: Tier): unknown {
    this.counts[tier]++;
    if (this.config.onEvent) this.emit({ type: "hit", key, tier });
    this.config.logger.debug?.(`Cache HIT (${tier === "l1" ? "l1" : "redis"}) ${key}`);
    return value;
  }

  private miss(key: string): undefined {
    this.counts.misses++;
    this.emit({ type: "miss", key });
    this.debug(`Cache MISS ${key}`);
    return undefined;
  }

  private debug(message: string): void {
    this.config.logger.debug?.(message);
  }

  private emit(event: CacheEvent): void {
    if (!this.config.onEvent) return;
    try {
      this.config.onEvent(event);
    } catch {
      // A metrics callback must never break a read.
    }
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
    return route(this, handler, options);
  }

  /** A Web handler answering `health()` as JSON: 200 when healthy, 503 otherwise; no keys, no secrets. */
  healthHandler(): (req: Request) => Promise<Response> {
    return healthHandler(this);
  }

  // Versioning and flush (issue 4)

  /** This instance's version registration, started on its first Redis contact; settles with the versions it flushed. */
  private registration: Promise<string[]> | undefined;

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
  async flush(options: FlushOptions = {}): Promise<FlushResult> {
    // Registered first so that the current version is dated; a dry run writes nothing.
    if (!options.dryRun) await this.ensureRegistered(false);
    return runFlush(this.flushContext(), options);
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

  /**
   * Registers this instance's version once, on its first Redis contact, and lets the newest version
   * flush stale ones (versioning.ts). Never on a request's path: the promise is handed to `waitUntil`
   * when there is one and otherwise runs on its own; it never rejects, and a failed registration is
   * retried on a later contact. `autoFlush: false` for an explicit flush, which does the work itself.
   */
  private ensureRegistered(autoFlush = true, waitUntil?: WaitUntil): Promise<string[]> {
    if (this.registration || !this.l2) return this.registration ?? Promise.resolve([]);
    const context = this.flushContext();
    const registration = registerVersion(
      { l2: this.l2, keys: this.keys, logger: this.config.logger },
      this.config.keepVersions,
      autoFlush ? () => runFlush(context) : undefined,
    ).catch((error: unknown) => {
      this.registration = undefined;
      // While the circuit is open every contact retries at no cost; only real failures are worth a line.
      if (!(error instanceof CacheError && error.code === "BREAKER_OPEN")) {
        this.config.logger.warn(`Cache version registration failed: ${asError(error).message}`);
      }
      return [];
    });
    this.registration = registration;
    this.scheduler(waitUntil)?.(registration);
    return registration;
  }

  private flushContext(): FlushContext {
    const { logger, keepVersions } = this.config;
    return { l1: this.l1, l2: this.l2, keys: this.keys, logger, keepVersions };
  }
}

/** The few INFO fields health() reports; Upstash answers a subset, so each is optional. */
function parseInfo(info: string): NonNullable<HealthReport["redis"]> {
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim() ?? "";
  return {
    version: field("redis_version"),
    usedMemory: Number(field("used_memory")) || 0,
    connectedClients: Number(field("connected_clients")) || 0,
    uptimeSeconds: Number(field("uptime_in_seconds")) || 0,
  };
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
