/**
 * Run as a child process (`node --import tsx test/support/env-roundtrip.ts`): a cache configured
 * from `process.env` alone writes and reads one value through L2 and prints what it saw as JSON.
 * For what only a fresh process can set up, such as `NODE_EXTRA_CA_CERTS`.
 */
import { createCache } from "../../src/index.js";

const lines: string[] = [];
const cache = createCache({
  prefix: "env-rt",
  timeoutMs: 3000,
  logger: { warn: (m: string) => lines.push(m) },
});
await cache.set("k", "through L2");
const reader = createCache({
  prefix: "env-rt",
  l1: false,
  timeoutMs: 3000,
  logger: { warn: (m: string) => lines.push(m) },
});
const value = await reader.getOrSet("k", async () => "from loader");
const health = await reader.health();
await Promise.all([cache.close(), reader.close()]);
process.stdout.write(
  JSON.stringify({
    value,
    healthy: health.healthy,
    mode: health.topology?.mode ?? null,
    error: health.error,
    lines,
  }),
);
