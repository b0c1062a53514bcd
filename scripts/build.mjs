/**
 * Builds dist/: one ES module per public entry plus shared chunks (esbuild), and .d.ts files (tsc).
 * Bundling matters for cold starts: loading ~100 small files (zod alone is dozens) costs a fresh Node
 * process far more than parsing one file; it also keeps zod out of the user's install.
 */
import { rm } from "node:fs/promises";
import { build } from "esbuild";

await rm("dist", { recursive: true, force: true });
await build({
  entryPoints: [
    "src/index.ts",
    "src/transports/upstash.ts",
    "src/transports/node-redis.ts",
    "src/bridge/index.ts",
    "src/cli.ts",
    "src/next/index.ts",
    "src/next/use-cache.ts",
    "src/next/incremental.ts",
  ],
  outdir: "dist",
  outbase: "src",
  entryNames: "[dir]/[name]",
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  // Web APIs only in the core; the Node-only entries import `node:` built-ins, left as they are.
  platform: "neutral",
  mainFields: ["module", "main"],
  target: "es2022",
  external: ["node:*", "redis", "@upstash/redis", "lru-cache"],
  logLevel: "warning",
});
