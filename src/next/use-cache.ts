/**
 * `tiercache/next/use-cache`: the `'use cache'` handler configured from env, for Next 16's
 * `cacheHandlers: { default: …, remote: … }`. One Cache per process (see `nextCache`).
 */
import { createUseCacheHandler } from "./use-cache-handler.js";

export default createUseCacheHandler();
