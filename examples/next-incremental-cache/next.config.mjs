import { fileURLToPath } from "node:url";

/** @type {import("next").NextConfig} */
export default {
  // ISR pages, route handlers, `fetch` and `unstable_cache`: L1 + Redis, tags across instances.
  cacheHandler: fileURLToPath(import.meta.resolve("tiercache/next/incremental")),
  // tiercache's L1 is the in-memory tier.
  cacheMaxMemorySize: 0,
};
