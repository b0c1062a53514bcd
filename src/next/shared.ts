import { readFileSync } from "node:fs";
import { join } from "node:path";
import { toMs } from "../duration.js";
import type { CacheOptions, Duration } from "../index.js";
import { type Cache, createCache } from "../index.js";
import { NextStore } from "./store.js";

/** Options of `createUseCacheHandler` and `createIncrementalCacheHandler`. */
export interface NextHandlerOptions {
  /**
   * The Cache entries go to. Default: one per process configured from env (shared by both handlers
   * and by {@link nextCache}); during `next build` it is L1-only, so a build never contacts Redis.
   */
  cache?: Cache;
  /** Options of a Cache created for this handler when `cache` is not given (instead of env only). */
  cacheOptions?: CacheOptions;
  /**
   * Longest an entry stays in Redis whatever its `expire` says (`cacheLife("max")` is ~136 years):
   * default 30 days. `false` keeps entries for as long as Next asks.
   */
  maxTtl?: Duration | false;
  /**
   * How often, at most, an instance checks for tag updates made on other instances (default
   * `cacheOptions.l1.syncMs`, else 1 s — the Cache's own default).
   */
  syncMs?: number;
}

const DEFAULT_MAX_TTL_MS = 30 * 24 * 3600 * 1000;
/**
 * "As long as Next asks" still needs a finite PX, within the longest duration the Cache accepts
 * (3650 days) once the tag marks' extra day is added; ten years is as good as none.
 */
const NO_CAP_MS = 3649 * 24 * 3600 * 1000;

const SHARED = Symbol.for("tiercache.next.cache");
const STORES = Symbol.for("tiercache.next.stores");
const CREATED = Symbol.for("tiercache.next.created");

type Globals = {
  [SHARED]?: Cache;
  [STORES]?: WeakMap<Cache, NextStore>;
  [CREATED]?: WeakMap<CacheOptions, Cache>;
};
// On globalThis, not in module scope: Next may load this module twice (server bundle and external
// require), and both copies must share one Cache — one connection, one L1.
const globals = globalThis as Globals;

/**
 * The process-wide Cache the env-configured handlers use; pass it to your own code to share its L1,
 * connection and tags with Next (`revalidateTag` then reaches your `cache.getOrSet(…, { tags })` too).
 * Created on first call: from env, versioned by `REDIS_CACHE_VERSION`, else `VERCEL_GIT_COMMIT_SHA`,
 * else Next's build id, so a new build never serves the previous one's pages.
 */
export function nextCache(distDir?: string): Cache {
  const existing = globals[SHARED];
  if (existing) return existing;
  const cache = createCache(envOptions(process.env, distDir));
  globals[SHARED] = cache;
  return cache;
}

/** What the env-configured Cache is created with (exported for tests). */
export function envOptions(env: NodeJS.ProcessEnv, distDir?: string): CacheOptions {
  const options: CacheOptions = { env };
  // `next build` imports the handlers and prerenders through them: L1 only, no connection attempt.
  if (env.NEXT_PHASE === "phase-production-build") options.redis = false;
  if (!env.REDIS_CACHE_VERSION && !env.VERCEL_GIT_COMMIT_SHA) {
    const buildId = readBuildId(distDir);
    if (buildId) options.version = buildId;
  }
  return options;
}

/** Next's build id from `<distDir>/BUILD_ID` (default `./.next`), made a valid version segment. */
export function readBuildId(distDir = join(process.cwd(), ".next")): string | undefined {
  try {
    const id = readFileSync(join(distDir, "BUILD_ID"), "utf8")
      .trim()
      .replace(/[^A-Za-z0-9_.-]/g, "_");
    return id ? id.slice(0, 64) : undefined;
  } catch {
    return undefined;
  }
}

/** The store of the Cache these options name; one per Cache, whoever asks first sets its limits. */
export function storeFor(options: NextHandlerOptions, distDir?: string): NextStore {
  const cache = options.cache ?? (options.cacheOptions ? cacheOf(options.cacheOptions) : nextCache(distDir));
  globals[STORES] ??= new WeakMap();
  const stores = globals[STORES];
  let store = stores.get(cache);
  if (!store) {
    const maxTtlMs =
      options.maxTtl === false
        ? NO_CAP_MS
        : options.maxTtl === undefined
          ? DEFAULT_MAX_TTL_MS
          : toMs(options.maxTtl, "maxTtl");
    const l1 = options.cacheOptions?.l1;
    const syncMs = options.syncMs ?? (l1 ? l1.syncMs : undefined) ?? 1000;
    store = new NextStore(cache, maxTtlMs, syncMs);
    stores.set(cache, store);
  }
  return store;
}

/** One Cache per options object, so both factories given the same options share it. */
function cacheOf(options: CacheOptions): Cache {
  globals[CREATED] ??= new WeakMap();
  let cache = globals[CREATED].get(options);
  if (!cache) {
    cache = createCache(options);
    globals[CREATED].set(options, cache);
  }
  return cache;
}

/** Warnings of the handlers: the Cache reports Redis trouble itself; these are about values. */
export function warn(message: string): void {
  console.warn(message);
}
