/**
 * `tiercache/next`: Next.js cache handlers on a tiercache Cache (Node only). The env-configured
 * handlers are the default exports of `tiercache/next/use-cache` and `tiercache/next/incremental`.
 */
export {
  createIncrementalCacheHandler,
  type IncrementalCacheHandler,
  type IncrementalCacheHandlerClass,
} from "./incremental-handler.js";
export { type NextHandlerOptions, nextCache } from "./shared.js";
export type * from "./types.js";
export { createUseCacheHandler, type TiercacheUseCacheHandler } from "./use-cache-handler.js";
