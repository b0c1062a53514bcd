import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    alias: {
      "tiercache/redis": fileURLToPath(new URL("./src/transports/node-redis.ts", import.meta.url)),
      "tiercache/upstash": fileURLToPath(new URL("./src/transports/upstash.ts", import.meta.url)),
    },
  },
  test: {
    globalSetup: ["test/global-setup.ts"],
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
