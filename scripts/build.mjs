/**
 * Builds dist/: one ES module per public entry plus shared chunks (esbuild), and .d.ts files (tsc).
 * Bundling matters for cold starts: loading ~100 small files (zod alone is dozens) costs a fresh Node
 * process far more than parsing one file; it also keeps zod out of the user's install.
 */
import { rm } from "node:fs/promises";
import { build } from "esbuild";

/**
 * The core's import of the TCP loader becomes `#tcp` (package.json `imports`), which picks tcp.js
 * under the `node` condition and tcp-edge.js for Workers, Edge and browsers: see src/transports/tcp.ts.
 * In the source tree (tests, tsx) it stays the Node file.
 * @type {import("esbuild").Plugin}
 */
const tcpBySubpathImport = {
  name: "tcp-by-subpath-import",
  setup(b) {
    b.onResolve({ filter: /^\.\/tcp\.js$/ }, (args) =>
      args.importer.endsWith("from-env.ts") ? { path: "#tcp", external: true } : undefined,
    );
  },
};

/** `node scripts/build.mjs [outdir]`: the packaging tests build into a directory of their own. */
const outdir = process.argv[2] ?? "dist";

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: [
    "src/index.ts",
    "src/transports/upstash.ts",
    "src/transports/node-redis.ts",
    "src/otel.ts",
    "src/transports/tcp.ts",
    "src/transports/tcp-edge.ts",
    "src/bridge/index.ts",
    "src/cli.ts",
    "src/next/index.ts",
    "src/next/use-cache.ts",
    "src/next/incremental.ts",
  ],
  outdir,
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
  external: ["node:*", "redis", "@upstash/redis", "@opentelemetry/api", "lru-cache"],
  plugins: [tcpBySubpathImport],
  logLevel: "warning",
});
