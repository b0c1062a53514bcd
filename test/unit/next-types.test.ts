import type { CacheHandlerV2 } from "next/dist/server/lib/cache-handlers/types.js";
import type {
  CacheHandlerContext,
  CacheHandlerValue,
  CacheHandler as NextIncrementalHandler,
} from "next/dist/server/lib/incremental-cache/index.js";
import { expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { createIncrementalCacheHandler, createUseCacheHandler } from "../../src/next/index.js";

type Ours = InstanceType<ReturnType<typeof createIncrementalCacheHandler>>;

it("the handlers fit Next's own types (next installed as a dev dependency)", async () => {
  const cache = createCache({ redis: false, env: {} });
  // Next 15's 'use cache' contract (Next 16's is the same with updateTags and an array to getExpiration).
  const useCache: CacheHandlerV2 = createUseCacheHandler({ cache });
  const Incremental = createIncrementalCacheHandler({ cache });
  // Everything Next passes is accepted as it is…
  const nextContext: CacheHandlerContext = { revalidatedTags: [], _requestHeaders: {} };
  const handler: Ours = new Incremental(nextContext);
  const get = (...args: Parameters<NextIncrementalHandler["get"]>) => handler.get(...args);
  const set = (...args: Parameters<NextIncrementalHandler["set"]>) => handler.set(...args);
  const revalidate = (...args: Parameters<NextIncrementalHandler["revalidateTag"]>) =>
    handler.revalidateTag(...args);
  // …and what it answers has the shape Next reads (its `kind` is Next's const enum, the same strings).
  const answer: Omit<CacheHandlerValue, "value"> | null = await handler.get("/x", {
    kind: "APP_PAGE",
    isFallback: false,
  });
  expect([typeof get, typeof set, typeof revalidate, answer]).toEqual([
    "function",
    "function",
    "function",
    null,
  ]);
  expect(typeof useCache.expireTags).toBe("function");
});
