import { fileURLToPath } from "node:url";

/** Absolute paths: Next loads the handlers by path, from the app's own node_modules. */
const resolve = (id) => fileURLToPath(import.meta.resolve(id));

/** @type {import("next").NextConfig} */
export default {
  cacheComponents: true,
  // `'use cache'` (and `'use cache: remote'`) entries: L1 + Redis, tags across instances.
  cacheHandlers: {
    default: resolve("tiercache/next/use-cache"),
    remote: resolve("tiercache/next/use-cache"),
  },
  // Pages, route handlers and fetches (the incremental cache).
  cacheHandler: resolve("tiercache/next/incremental"),
  // tiercache's L1 is the in-memory tier.
  cacheMaxMemorySize: 0,
};
