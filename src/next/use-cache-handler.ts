import { readAll, streamOf } from "./bytes.js";
import { cacheKey, SPACES } from "./keys.js";
import { type NextHandlerOptions, storeFor, warn } from "./shared.js";
import type { NextStore } from "./store.js";
import { expiration, verdict } from "./tags.js";
import type { Timestamp, UseCacheEntry, UseCacheHandler } from "./types.js";

/** A `'use cache'` entry as stored: its metadata and its bytes (the codec carries Uint8Array). */
interface Stored {
  bytes: Uint8Array;
  tags: string[];
  stale: number;
  timestamp: number;
  expire: number;
  revalidate: number;
}

/** Next 16's handler, plus Next 15's `expireTags` / variadic `getExpiration` so either calls it. */
export interface TiercacheUseCacheHandler extends UseCacheHandler {
  getExpiration(tags: string[]): Promise<Timestamp>;
  /** Next 15 passed the tags as arguments. */
  getExpiration(...tags: string[]): Promise<Timestamp>;
  /** Next 15 (`experimental.cacheHandlers`): a hard invalidation, as `updateTags(tags)`. */
  expireTags(...tags: string[]): Promise<void>;
}

/**
 * A `'use cache'` handler for Next 16's `cacheHandlers` (`cacheComponents: true`) on a tiercache
 * Cache: entries in L1 and Redis for as long as their `expire` (capped by `maxTtl`), served stale
 * past `revalidate` for Next to refresh; `updateTags` hard (`updateTag`, `revalidateTag(tag)`) or
 * stale-then-expired (`revalidateTag(tag, profile)`) on every instance within `syncMs`.
 *
 * @example
 * // cache-handler.mjs
 * import { createUseCacheHandler } from "tiercache/next";
 * export default createUseCacheHandler({ cache }); // or `tiercache/next/use-cache` for the env one
 */
export function createUseCacheHandler(options: NextHandlerOptions = {}): TiercacheUseCacheHandler {
  let store: NextStore | undefined;
  // Created on first use: importing the handler (as `next build` does) creates nothing, connects nothing.
  const storeOf = () => {
    store ??= storeFor(options);
    return store;
  };
  /** Sets in flight: a `get` of the same key waits for them (Next's contract), this process only. */
  const pending = new Map<string, Promise<void>>();

  const handler: TiercacheUseCacheHandler = {
    async get(key, softTags) {
      const inFlight = pending.get(key);
      if (inFlight) await inFlight;
      const soft = softTags ?? [];
      const found = await storeOf().read<Stored>(cacheKey(SPACES.useCache, key), soft);
      if (!found) return undefined;
      const { value: stored, marks } = found;
      const now = Date.now();
      // A negative `expire` is Next's eviction sentinel; past `expire` the entry is gone.
      if (stored.expire < 0 || now > stored.timestamp + stored.expire * 1000) return undefined;
      const state = verdict(marks, [...stored.tags, ...soft], stored.timestamp, now);
      if (state === "expired") return undefined;
      return {
        value: streamOf(stored.bytes),
        tags: [...stored.tags],
        stale: stored.stale,
        timestamp: stored.timestamp,
        expire: stored.expire,
        // Served once more while Next renders a fresh entry, as Next's own handler does for a stale tag.
        revalidate: state === "stale" ? -1 : stored.revalidate,
      };
    },

    async set(key, pendingEntry) {
      let release = () => {};
      const done = new Promise<void>((resolve) => {
        release = resolve;
      });
      pending.set(key, done);
      try {
        const entry: UseCacheEntry = await pendingEntry;
        // `expire: 0` is dynamic in production: Next never serves it, so it is not worth a write.
        if (entry.expire === 0 && !process.env.__NEXT_DEV_SERVER) {
          await entry.value.cancel();
          return;
        }
        const bytes = await readAll(entry.value);
        const stored: Stored = {
          bytes,
          tags: [...entry.tags],
          stale: entry.stale,
          timestamp: entry.timestamp,
          expire: entry.expire,
          revalidate: entry.revalidate,
        };
        await storeOf().write(
          cacheKey(SPACES.useCache, key),
          stored,
          entry.timestamp + entry.expire * 1000 - Date.now(),
          warn,
        );
      } catch {
        // The entry failed to render or its stream errored: nothing (partial) is stored, as in Next's handler.
      } finally {
        if (pending.get(key) === done) pending.delete(key);
        release();
      }
    },

    async refreshTags() {
      storeOf().tags.sync();
    },

    async getExpiration(...args: (string | string[])[]): Promise<Timestamp> {
      // Next 16 passes an array; Next 15 passed the tags as arguments.
      const tags = (Array.isArray(args[0]) ? args[0] : args) as string[];
      if (tags.length === 0) return 0;
      const marks = await storeOf().tags.load(tags);
      return expiration(marks, tags, Date.now());
    },

    async updateTags(tags, durations) {
      await storeOf().tags.update(tags, durations ? { expireSeconds: durations.expire } : undefined);
    },

    async expireTags(...tags) {
      await handler.updateTags(tags);
    },
  };
  return handler;
}
