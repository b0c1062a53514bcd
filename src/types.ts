import type { EncryptionOptions } from "./encryption.js";
import type { StandardSchemaV1 } from "./standard-schema.js";
import type { TelemetryFactory } from "./telemetry.js";
import type { Topology, Transport } from "./transports/types.js";

/** Milliseconds as a number, or a string such as `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`. */
export type Duration = number | string;

/** Where log lines go. Debug lines ("Cache HIT (l1) key") are only written when `debug` is given. */
export interface Logger {
  debug?(message: string, details?: Record<string, unknown>): void;
  info?(message: string, details?: Record<string, unknown>): void;
  warn(message: string, details?: Record<string, unknown>): void;
  error?(message: string, details?: Record<string, unknown>): void;
}

/** Schedules background work so the platform keeps the function alive until it settles. */
export type WaitUntil = (promise: Promise<unknown>) => void;

/** What `onEvent` receives: one event per cache decision, for metrics. */
export type CacheEvent =
  | { type: "hit"; key: string; tier: "l1" | "l2" }
  | { type: "stale"; key: string; tier: "l1" | "l2" }
  | { type: "miss"; key: string }
  | { type: "load"; key: string; durationMs: number }
  | { type: "error"; key?: string; operation: string; error: Error }
  | { type: "breaker"; state: BreakerState }
  /**
   * An invalidation (or a `set`, replayed as a delete of its key) Redis could not take: kept, applied
   * to this instance's reads, and replayed when Redis answers again. `pending`: how many are kept.
   */
  | { type: "deferred"; operation: DeferredOperation; pending: number }
  /** Deferred invalidations written to Redis; `purged` when they had overflowed into a namespace purge. */
  | { type: "replayed"; count: number; purged: boolean };

/** The calls whose Redis work can be deferred while Redis is unreachable. */
export type DeferredOperation = "delete" | "set" | "invalidateTags" | "deletePattern";

/** What `invalidateTags` resolves to. */
export interface InvalidationResult {
  /**
   * Redis could not be reached: the invalidation holds on this instance at once and reaches Redis
   * (and so other instances) when it answers again; see the `deferred` event.
   */
  deferred: boolean;
}

export type BreakerState = "closed" | "open" | "half-open";

/** In-process LRU settings. Entries never outlive their L2 freshness whatever `ttl` says. */
export interface L1Options {
  /** Most entries kept (default 1,000). */
  maxEntries?: number;
  /** Most bytes kept, counted as the encoded size of each value (default 50 MB). */
  maxBytes?: number;
  /** Longest an entry stays in L1, shorter than its freshness if you want (default: its freshness). */
  ttl?: Duration;
  /** How often, at most, an instance checks Redis for invalidations made elsewhere (default 1 s). */
  syncMs?: number;
}

/** What an invalidation covered: passed to `onInvalidate`, and what a route's `invalidates` returns. */
export interface Invalidation {
  /** Cache keys, as given to `cache.get`/`cache.set` (or returned by a route's `key`). */
  keys?: readonly string[];
  tags?: readonly string[];
  /** Globs over cache keys, as `cache.deletePattern` takes them. */
  patterns?: readonly string[];
}

/** Options of {@link createCache}; each has an environment default (see README). */
export interface CacheOptions {
  /** A transport (`upstash()`, `nodeRedis()`), or `false` for L1 only. Default: from env. */
  redis?: Transport | false;
  /** Where environment variables are read (default `process.env` where it exists; Workers pass `env`). */
  env?: object;
  /** Key prefix isolating environments (default `REDIS_ENV`, else `VERCEL_ENV` when not production). */
  prefix?: string;
  /** Cache version (default `REDIS_CACHE_VERSION`, else `VERCEL_GIT_COMMIT_SHA` cut to 8, else `"1"`). */
  version?: string;
  /** Separates caches of one app (default `"default"`). */
  namespace?: string;
  /** Freshness of entries (default `CACHE_TTL_DEFAULT` seconds, else 300 s). */
  ttl?: Duration;
  /** How long after freshness a stale entry may be served while one refresh runs (default 0). */
  staleWhileRevalidate?: Duration;
  /** How long after freshness a stale entry may be served when the loader fails (default 0). */
  staleIfError?: Duration;
  /**
   * Shortens each entry's freshness by a random fraction up to this (0…1, default 0), so entries
   * written together do not all expire — and reload — in the same instant.
   */
  jitter?: number;
  /** In-process LRU settings, or `false` to disable L1. */
  l1?: L1Options | false;
  /** Deadline in ms of one call's Redis work, all it awaits together; of each batch for flush and deletePattern (default 500). */
  timeoutMs?: number;
  /** Swallow cache errors and fall back to L1/loader (default `CACHE_FAIL_SILENTLY`, else true). */
  failSilently?: boolean;
  /** `false`: every read misses and loaders always run (default `CACHE_ENABLED`, else true). */
  enabled?: boolean;
  /** Where log lines go (default: warnings and errors to `console`). */
  logger?: Logger;
  /** Called for every hit, miss, load, error and breaker change. Must not throw. */
  onEvent?: (event: CacheEvent) => void;
  /**
   * Called with the keys, tags and patterns of every invalidation (`delete`, `invalidateTags`,
   * `deletePattern`, and so every unsafe request through a route), in the background via
   * `waitUntil`: where a CDN in front is told to drop the same tags (`vercelCdn()`,
   * `cloudflareCdn()`). Its failure is logged, never thrown into the request.
   */
  onInvalidate?: (invalidation: Invalidation) => unknown;
  /**
   * Background-work scheduler. Default: inside a Vercel request, its `waitUntil` (what `@vercel/functions`
   * exports); otherwise background work is awaited. Per-call `waitUntil` options win.
   */
  waitUntil?: WaitUntil;
  /** Circuit breaker: failures in a row that open it, and how long it stays open (defaults 5 and 5 s). */
  breaker?: { failureThreshold?: number; resetMs?: number };
  /**
   * How many versions before the current one a `stale-versions` flush keeps, so a rollback finds
   * its cache warm (default 1; 0 keeps the current version only).
   */
  keepVersions?: number;
  /**
   * Use Redis while `next build` prerenders pages (default `CACHE_REDIS_DURING_BUILD`, else false:
   * during a build, where Next.js sets `NEXT_PHASE=phase-production-build`, the cache is L1 only).
   */
  redisDuringBuild?: boolean;
  /**
   * Encrypts every value before it goes to Redis (AES-256-GCM, a fresh IV per write, the Redis key
   * as associated data); times and tags stay readable. Default: `CACHE_ENCRYPTION_KEY`, with
   * `CACHE_ENCRYPTION_KEYS_PREVIOUS` for rotation; off when neither is set. L1 holds plaintext.
   */
  encryption?: EncryptionOptions;
  /**
   * Traces and metrics: `otel()` from `tiercache/otel` (OpenTelemetry, an optional peer). Default
   * none, and then nothing is recorded and no tracing package is loaded.
   */
  telemetry?: TelemetryFactory;
  /**
   * Push this instance's hit, miss, load and error counts to Redis for `tiercache stats` /
   * `report()` (aggregated over every instance): in the background, at most once per `analyticsMs`.
   * Default false.
   */
  analytics?: boolean;
  /** Least time between two analytics pushes of one instance, ms (default 60,000). */
  analyticsMs?: number;
}

/** A schema checked on read (zod, valibot, arktype… anything implementing Standard Schema). */
export type Schema<T> = StandardSchemaV1<unknown, T>;

/** Per-call options of reads. */
export interface GetOptions<T = unknown> {
  /** A cached value that fails the schema is a miss and is deleted. */
  schema?: Schema<T>;
  /** `false`: the entry lives outside the versioned key space and survives deploys. */
  versioned?: boolean;
  /**
   * Schedules this call's background work (refresh, L2 write, invalidation check); default: the
   * cache's `waitUntil`. On Workers pass `ctx.waitUntil` — workerd cancels loose I/O at the response.
   */
  waitUntil?: WaitUntil;
}

/** Per-call options of writes. */
export interface SetOptions {
  ttl?: Duration;
  staleWhileRevalidate?: Duration;
  staleIfError?: Duration;
  /** See {@link CacheOptions.jitter}. */
  jitter?: number;
  tags?: readonly string[];
  versioned?: boolean;
}

/** What a loader can say about the value it is producing. */
export interface LoaderContext {
  readonly key: string;
  /** Overrides the freshness of this value. */
  setTtl(ttl: Duration): void;
  /** The value is returned to the caller but not cached. */
  skipCache(): void;
}

export interface GetOrSetOptions<T = unknown> extends SetOptions, GetOptions<T> {
  /**
   * Stale windows (ms) carried by the value itself: when given for a value they win over
   * `staleWhileRevalidate` / `staleIfError`, both when it is written and when it is later found
   * stale. `route()` uses it for the `stale-while-revalidate` / `stale-if-error` of each response.
   */
  staleWindows?: (value: T) => { staleWhileRevalidate?: number; staleIfError?: number } | undefined;
  /**
   * A short Redis lease (`SET NX PX`) so that cold instances missing the same key run the loader
   * about once: the others poll Redis for the value until the lease ends (`true`: 2 s), then load
   * themselves rather than fail.
   */
  lease?: boolean | Duration;
}

/** One entry of {@link Cache.setMany}. */
export interface SetManyEntry<T = unknown> extends SetOptions {
  key: string;
  value: T;
}

export interface CacheStats {
  hits: { l1: number; l2: number };
  misses: number;
  staleServed: number;
  loads: number;
  errors: number;
  /** Hits over reads, 0…1. */
  hitRate: number;
}

export interface HealthReport {
  healthy: boolean;
  latencyMs: number | null;
  transport: string;
  version: string;
  redis?: { version: string; usedMemory: number; connectedClients: number; uptimeSeconds: number };
  l1: { entries: number; bytes: number; maxEntries: number; maxBytes: number } | null;
  breaker: BreakerState;
  error?: string;
  /** Cluster or Sentinel: the nodes, which of them are reachable, the current primary. */
  topology?: Topology;
}

export interface ConnectResult {
  connected: boolean;
  transport: string;
  version: string;
  flushedVersions: string[];
  error?: string;
}

// Versioning and flush (issue 4)

/**
 * What a flush removes, from narrowest to widest. Every scope but `"database"` stays under this
 * environment's root (`[<prefix>:]tc:`), so keys tiercache did not write are never touched.
 * - `"stale-versions"`: entries of this namespace's registered versions older than the current one
 *   and the `keepVersions` before it (never a version first seen after the current one);
 * - `"version"`: entries of the current version of this namespace;
 * - `"namespace"`: everything under `tc:<namespace>:` (all versions, unversioned entries, counters, tags);
 * - `"environment"`: everything under `[<prefix>:]tc:` (all namespaces, the version registry);
 * - `"database"`: `FLUSHDB` — every key of the database, tiercache's or not.
 */
export type FlushScope = "stale-versions" | "version" | "namespace" | "environment" | "database";

/** Options of {@link Cache.flush}. */
export interface FlushOptions {
  /** Default `"stale-versions"`. */
  scope?: FlushScope;
  /** Count what would be removed, remove nothing (an estimate: SCAN may report a key twice). */
  dryRun?: boolean;
  /** Overrides the cache's `keepVersions` for this flush (`"stale-versions"` only). */
  keepVersions?: number;
  /** Called after each batch with the number of keys removed (or counted, in a dry run) so far. */
  onProgress?(removed: number): void;
}

/** What a flush did. */
export interface FlushResult {
  scope: FlushScope;
  /** Keys removed (counted, in a dry run). */
  removed: number;
  /** The versions whose entries were removed (`"stale-versions"` and `"version"` scopes). */
  versions?: string[];
}

/** Options of {@link Cache.deployHook}. */
export interface DeployHookOptions {
  /** Callers must send `Authorization: Bearer <secret>`; at least 16 characters. */
  secret: string;
  /** What the hook flushes (default `"stale-versions"`). */
  scope?: FlushScope;
}
