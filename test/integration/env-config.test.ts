import { beforeAll, describe, expect, it } from "vitest";
import { Cache } from "../../src/index.js";
import { start as startProxy } from "../support/fault-proxy.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

let redisUrl: string;
beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
});

/** A real Redis behind a proxy that counts the connections made to it. */
async function countedRedis() {
  const url = new URL(redisUrl);
  const proxy = await startProxy({ targetPort: Number(url.port) });
  return { proxy, url: `redis://127.0.0.1:${proxy.port}${url.pathname}` };
}

/** What a static server component does during `next build`, and what a health check does. */
async function prerender(cache: Cache): Promise<unknown> {
  const value = await cache.getOrSet("page:home", async () => "rendered at build time");
  await cache.set("other", 1, { tags: ["t"] });
  await cache.get("other");
  await cache.invalidateTags(["t"]);
  await cache.health();
  return value;
}

describe("next build (NEXT_PHASE=phase-production-build)", () => {
  const quiet = { warn: () => {} };

  it("does not contact Redis: L1 and loaders only", async () => {
    const { proxy, url } = await countedRedis();
    try {
      const cache = new Cache({
        env: { REDIS_URL: url, NEXT_PHASE: "phase-production-build" },
        logger: quiet,
      });
      expect(await prerender(cache)).toBe("rendered at build time");
      expect((await cache.health()).transport).toBe("none");
      await cache.close();
      expect(proxy.accepted).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it("uses Redis with CACHE_REDIS_DURING_BUILD=true, and after the build", async () => {
    const { proxy, url } = await countedRedis();
    try {
      const opted = new Cache({
        env: { REDIS_URL: url, NEXT_PHASE: "phase-production-build", CACHE_REDIS_DURING_BUILD: "true" },
        logger: quiet,
      });
      await prerender(opted);
      expect((await opted.health()).healthy).toBe(true);
      await opted.close();
      expect(proxy.accepted).toBeGreaterThan(0);
      const serving = new Cache({
        env: { REDIS_URL: url, NEXT_PHASE: "phase-production-server" },
        logger: quiet,
      });
      expect(await serving.get("page:home")).toBe("rendered at build time");
      await serving.close();
    } finally {
      await proxy.close();
    }
  });
});

describe("the L1-dropped debug line", () => {
  function debugLines() {
    const lines: string[] = [];
    return { lines, logger: { warn: () => {}, debug: (message: string) => lines.push(message) } };
  }

  it("is not logged by a fresh instance's first read, when L1 had nothing to drop", async () => {
    const { lines, logger } = debugLines();
    const writer = new Cache({
      env: { REDIS_URL: redisUrl },
      logger: { warn: () => {} },
      namespace: "dropped",
    });
    await writer.invalidateTags(["make-an-epoch"]);
    const fresh = new Cache({ env: { REDIS_URL: redisUrl }, logger, namespace: "dropped" });
    await fresh.get("first");
    expect(lines.filter((line) => line.includes("L1 dropped"))).toEqual([]);
    await Promise.all([writer.close(), fresh.close()]);
  });

  it("is logged when another instance's invalidation empties a filled L1", async () => {
    const { lines, logger } = debugLines();
    const options = { env: { REDIS_URL: redisUrl }, namespace: "dropped-2", l1: { syncMs: 1 } };
    const reader = new Cache({ ...options, logger });
    const other = new Cache({ ...options, logger: { warn: () => {} } });
    await reader.set("k", 1);
    await reader.get("missing"); // the first epoch read
    await other.invalidateTags(["anything"]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    await reader.get("missing-too");
    expect(lines.filter((line) => line.includes("L1 dropped"))).toHaveLength(1);
    await Promise.all([reader.close(), other.close()]);
  });
});
