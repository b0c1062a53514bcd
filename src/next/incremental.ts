/**
 * `tiercache/next/incremental`: the incremental cache handler class configured from env, for
 * next.config's `cacheHandler`. One Cache per process (see `nextCache`), however many instances Next makes.
 */
import { createIncrementalCacheHandler } from "./incremental-handler.js";

export default createIncrementalCacheHandler();
