/**
 * The shapes Next.js hands its cache handlers, written out here so that `tiercache/next` neither
 * imports `next` at runtime nor pins one version's internal type paths. They follow Next 16's
 * `server/lib/cache-handlers/types.ts` and `server/response-cache/types.ts`; the tests check them
 * against the `next` package installed as a dev dependency.
 */
import type { Buffer } from "node:buffer";

/** Milliseconds since the epoch. */
export type Timestamp = number;

/** One `'use cache'` entry (Next 16 `CacheEntry`). Durations are seconds. */
export interface UseCacheEntry {
  /** The serialized RSC payload; read once by `set`, a new stream from every `get`. */
  value: ReadableStream<Uint8Array>;
  /** The entry's own tags (`cacheTag`), without the implicit (soft) tags of the route. */
  tags: string[];
  /** For the client router only. */
  stale: number;
  /** When the entry was created. */
  timestamp: Timestamp;
  /** Past this the entry must not be served. */
  expire: number;
  /** Past this the entry is served while Next renders a fresh one; -1 forces that at once. */
  revalidate: number;
}

/** Next 16's `cacheHandlers` contract (`cacheComponents: true`). */
export interface UseCacheHandler {
  get(cacheKey: string, softTags: string[]): Promise<undefined | UseCacheEntry>;
  set(cacheKey: string, pendingEntry: Promise<UseCacheEntry>): Promise<void>;
  refreshTags(): Promise<void>;
  getExpiration(tags: string[]): Promise<Timestamp>;
  updateTags(tags: string[], durations?: { expire?: number }): Promise<void>;
}

/** `cacheControl` of a response entry: seconds, `false` for never. */
export interface NextCacheControl {
  revalidate: number | false;
  expire: number | undefined;
}

export type IncomingHeaders = Record<string, string | string[] | number | undefined>;

/** The values the incremental cache stores (`IncrementalCacheValue`), as far as a handler needs to know. */
export type IncrementalCacheValue =
  | {
      kind: "APP_PAGE";
      html: string;
      rscData: Buffer | undefined;
      headers: IncomingHeaders | undefined;
      postponed: string | undefined;
      status: number | undefined;
      segmentData: Map<string, Buffer> | undefined;
    }
  | {
      kind: "PAGES";
      html: string;
      pageData: object;
      headers: IncomingHeaders | undefined;
      status: number | undefined;
    }
  | { kind: "APP_ROUTE"; body: Buffer; status: number; headers: IncomingHeaders }
  | {
      kind: "FETCH";
      data: { headers: Record<string, string>; body: string; url: string; status?: number };
      tags?: string[];
      revalidate: number;
    }
  | { kind: "REDIRECT"; props: object }
  | {
      kind: "IMAGE";
      etag: string;
      upstreamEtag: string;
      buffer: Buffer;
      extension: string;
      revalidate?: number;
      isMiss?: boolean;
      isStale?: boolean;
    };

/** The second argument of `get`: which kind of entry, and for `fetch` its tags. */
export interface IncrementalGetContext {
  kind: "APP_PAGE" | "APP_ROUTE" | "PAGES" | "FETCH" | "IMAGE";
  revalidate?: number | false;
  fetchUrl?: string;
  fetchIdx?: number;
  tags?: string[];
  softTags?: string[];
  isRoutePPREnabled?: boolean;
  isFallback?: boolean;
}

/** The third argument of `set`. */
export interface IncrementalSetContext {
  fetchCache?: boolean;
  fetchUrl?: string;
  fetchIdx?: number;
  tags?: string[];
  isImplicitBuildTimeCache?: boolean;
  cacheControl?: NextCacheControl;
  isRoutePPREnabled?: boolean;
  isFallback?: boolean;
}

/** What `get` answers (`CacheHandlerValue`). `lastModified: -1` asks Next for a blocking revalidation. */
export interface IncrementalCacheHandlerValue {
  lastModified: number;
  value: IncrementalCacheValue | null;
  cacheControl?: NextCacheControl;
}

/** What Next passes to the handler's constructor (`CacheHandlerContext`), the parts used here. */
export interface IncrementalHandlerContext {
  serverDistDir?: string;
  dev?: boolean;
  revalidatedTags?: string[];
}
