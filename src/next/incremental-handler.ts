import { join } from "node:path";
import { withBuffers } from "./bytes.js";
import { cacheKey, SPACES } from "./keys.js";
import { type NextHandlerOptions, storeFor, warn } from "./shared.js";
import type { NextStore } from "./store.js";
import { type Marks, verdict } from "./tags.js";
import type {
  IncrementalCacheHandlerValue,
  IncrementalCacheValue,
  IncrementalGetContext,
  IncrementalHandlerContext,
  IncrementalSetContext,
  NextCacheControl,
} from "./types.js";

/** Where Next puts the tags of pages and route handlers (`NEXT_CACHE_TAGS_HEADER`). */
const TAGS_HEADER = "x-next-cache-tags";

/** An incremental cache entry as stored. */
interface Stored {
  value: IncrementalCacheValue | null;
  lastModified: number;
  cacheControl?: NextCacheControl;
  tags: string[];
}

/** The incremental cache handler class Next instantiates (`cacheHandler` in next.config). */
export interface IncrementalCacheHandlerClass {
  new (context?: IncrementalHandlerContext): IncrementalCacheHandler;
}

export interface IncrementalCacheHandler {
  get(key: string, context: IncrementalGetContext): Promise<IncrementalCacheHandlerValue | null>;
  set(key: string, data: IncrementalCacheValue | null, context: IncrementalSetContext): Promise<void>;
  revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void>;
  resetRequestCache(): void;
}

/**
 * The incremental cache handler (ISR pages, route handlers, `fetch`, `unstable_cache`; Next 15 and 16)
 * on a tiercache Cache. Next creates an instance per request, so everything lives in the Cache and the
 * store shared at module scope; the instance only holds the request's revalidated tags.
 *
 * @example
 * // next.config.mjs — the env-configured one:
 * export default { cacheHandler: import.meta.resolve("tiercache/next/incremental"), cacheMaxMemorySize: 0 };
 */
export function createIncrementalCacheHandler(
  options: NextHandlerOptions = {},
): IncrementalCacheHandlerClass {
  let store: NextStore | undefined;

  return class TiercacheIncrementalCache implements IncrementalCacheHandler {
    private readonly store: NextStore;
    private readonly revalidatedTags: readonly string[];

    constructor(context: IncrementalHandlerContext = {}) {
      // `serverDistDir` is `<distDir>/server`: the build id beside it versions the entries.
      store ??= storeFor(options, context.serverDistDir ? join(context.serverDistDir, "..") : undefined);
      this.store = store;
      this.revalidatedTags = context.revalidatedTags ?? [];
    }

    async get(key: string, context: IncrementalGetContext): Promise<IncrementalCacheHandlerValue | null> {
      const requestTags =
        context.kind === "FETCH" ? [...(context.tags ?? []), ...(context.softTags ?? [])] : [];
      // Tags revalidated by the request that carries them (minimal mode): never serve their old value.
      if (requestTags.some((tag) => this.revalidatedTags.includes(tag))) return null;
      const found = await this.store.read<Stored>(cacheKey(SPACES.incremental, key), requestTags);
      if (!found) return null;
      const { value: stored, marks } = found;
      const lastModified = servedLastModified(stored, context, marks, requestTags, Date.now());
      if (lastModified === undefined) return null;
      const answer: IncrementalCacheHandlerValue = { lastModified, value: withBuffers(stored.value) };
      if (stored.cacheControl) answer.cacheControl = { ...stored.cacheControl };
      return answer;
    }

    async set(
      key: string,
      data: IncrementalCacheValue | null,
      context: IncrementalSetContext,
    ): Promise<void> {
      const fetchCache = context.fetchCache === true;
      const tags = new Set(fetchCache ? (context.tags ?? []) : headerTags(data));
      if (data?.kind === "FETCH") for (const tag of data.tags ?? []) tags.add(tag);
      const cacheControl = fetchCache ? undefined : context.cacheControl;
      const stored: Stored = { value: data, lastModified: Date.now(), tags: [...tags] };
      if (cacheControl) stored.cacheControl = cacheControl;
      // Pages live until their `expire`; fetches and pages without one until `maxTtl`.
      const ttlMs =
        typeof cacheControl?.expire === "number" ? cacheControl.expire * 1000 : Number.POSITIVE_INFINITY;
      await this.store.write(cacheKey(SPACES.incremental, key), stored, ttlMs, warn);
    }

    async revalidateTag(tags: string | string[], durations?: { expire?: number }): Promise<void> {
      const list = typeof tags === "string" ? [tags] : tags;
      await this.store.tags.update(list, durations ? { expireSeconds: durations.expire } : undefined);
    }

    resetRequestCache(): void {
      // Called as each request starts: the moment to look (in the background) for tag updates elsewhere.
      this.store.tags.sync();
    }
  };
}

function headerTags(data: IncrementalCacheValue | null): string[] {
  if (!data || (data.kind !== "APP_PAGE" && data.kind !== "APP_ROUTE" && data.kind !== "PAGES")) return [];
  const header = data.headers?.[TAGS_HEADER];
  return typeof header === "string" && header !== "" ? header.split(",") : [];
}

/**
 * The `lastModified` to answer with, or undefined when a tag removed the entry. Next judges staleness
 * from `lastModified` and the revalidate time, and knows nothing of tags updated on another instance:
 * an entry a soft invalidation made stale is dated back past its revalidate time, so Next serves it
 * once and renders anew in the background — or, with no revalidate time to date it by, `-1`: a
 * blocking render, never a stale page that Next would otherwise keep serving.
 */
function servedLastModified(
  stored: Stored,
  context: IncrementalGetContext,
  marks: Map<string, Marks>,
  requestTags: readonly string[],
  now: number,
): number | undefined {
  const state = verdict(marks, [...stored.tags, ...requestTags], stored.lastModified, now);
  if (state === "expired") return undefined;
  if (state === "fresh") return stored.lastModified;
  const value = stored.value;
  const revalidate =
    context.kind === "FETCH"
      ? context.revalidate || (value?.kind === "FETCH" ? value.revalidate : undefined)
      : stored.cacheControl?.revalidate;
  const expire = stored.cacheControl?.expire;
  if (typeof revalidate !== "number" || revalidate <= 0 || (expire !== undefined && expire <= revalidate))
    return -1;
  return Math.min(stored.lastModified, now - revalidate * 1000 - 1);
}
