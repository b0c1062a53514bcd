import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError, createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import { freePort, type RedisServerHandle, startRedisServer } from "../support/redis-server.js";

/** The batched read path (reads settled in the loop over one MGET's replies), on a real Redis. */
describe("batched reads", () => {
  let server: RedisServerHandle;
  let admin: ReturnType<typeof createClient>;
  let n = 0;
  const cacheOf = (options: Parameters<typeof createCache>[0] = {}) =>
    createCache({
      redis: nodeRedis({ url: server.url }),
      env: {},
      prefix: `rp${++n}`,
      logger: { warn: () => {} },
      ...options,
    });
  beforeAll(async () => {
    server = await startRedisServer();
    admin = createClient({ url: server.url });
    await admin.connect();
  });
  afterAll(async () => {
    admin.destroy();
    await server.stop();
  });

  it("100 concurrent getOrSet of keys in Redis: one MGET carrying the due epoch check, no loader", async () => {
    const cache = cacheOf({ l1: { syncMs: 5 } });
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    await cache.setMany(keys.map((key, i) => ({ key, value: { i } })));
    const reader = cacheOf({ prefix: `rp${n}`, l1: { syncMs: 5 } });
    await reader.get("warm-up");
    await new Promise((r) => setTimeout(r, 50));
    await admin.configResetStat();
    let loads = 0;
    const values = await Promise.all(keys.map((key) => reader.getOrSet(key, () => ++loads)));
    expect(values).toEqual(keys.map((_, i) => ({ i })));
    expect(loads).toBe(0);
    const stats = await admin.info("commandstats");
    expect(stats).toMatch(/cmdstat_mget:calls=1,/);
    expect(stats).not.toMatch(/cmdstat_get:/);
    expect(reader.stats().hits.l2).toBe(100);
    await Promise.all([cache.close(), reader.close()]);
  });

  it("an epoch move read in a batch's MGET drops L1 before the batch's values are served", async () => {
    const a = cacheOf({ l1: { syncMs: 20 } });
    const b = cacheOf({ prefix: `rp${n}` });
    await a.set("x", 1);
    expect(await a.get("x")).toBe(1); // from L1
    await b.delete("x"); // bumps the epoch
    await new Promise((r) => setTimeout(r, 40));
    await admin.configResetStat();
    expect(await a.get("z")).toBeUndefined(); // an L1 miss: one batch, the due epoch check in it
    const stats = await admin.info("commandstats");
    expect(stats).toMatch(/cmdstat_mget:calls=1,/);
    expect(stats).not.toMatch(/cmdstat_get:/);
    expect(await a.get("x")).toBeUndefined(); // L1 was dropped: Redis says x is gone
    await Promise.all([a.close(), b.close()]);
  });

  it("single-flight: concurrent callers share one read; landed flights never block later ones", async () => {
    const cache = cacheOf({ l1: false });
    let loads = 0;
    const keys = Array.from({ length: 1500 }, (_, i) => `m${i}`); // more than one sweep of landed entries
    for (let round = 1; round <= 2; round++) {
      const values = await Promise.all(
        keys.flatMap((key) => [
          cache.getOrSet(key, () => `${key}:${++loads}`),
          cache.getOrSet(key, () => "second"),
        ]),
      );
      for (let i = 0; i < keys.length; i++) expect(values[2 * i]).toBe(values[2 * i + 1]);
      expect(loads).toBe(keys.length * round);
      await cache.delete(...keys);
    }
    await cache.close();
  });

  it("a corrupt entry in a batch is deleted and reloaded; the batch's other reads are hits", async () => {
    const cache = cacheOf({ l1: false });
    await cache.setMany([
      { key: "good1", value: 1 },
      { key: "good2", value: 2 },
    ]);
    const full = (await cache.keys.entry("bad")) as string;
    await admin.set(full, "[1,2,3");
    const loaded: string[] = [];
    const values = await Promise.all(
      ["good1", "bad", "good2"].map((key) =>
        cache.getOrSet(key, () => {
          loaded.push(key);
          return `loaded ${key}`;
        }),
      ),
    );
    expect(values).toEqual([1, "loaded bad", 2]);
    expect(loaded).toEqual(["bad"]);
    await new Promise((r) => setTimeout(r, 50));
    expect(await admin.get(full)).not.toBe("[1,2,3");
    await cache.close();
  });

  it("a logger that throws on a hit fails only its own read, not the batch", async () => {
    const cache = cacheOf({ l1: false });
    await cache.setMany([
      { key: "a", value: 1 },
      { key: "b", value: 2 },
    ]);
    const reader = cacheOf({
      prefix: `rp${n}`,
      l1: false,
      logger: {
        warn: () => {},
        debug: (line: string) => {
          if (line.endsWith(" a")) throw new Error("logger broke");
        },
      },
    });
    const [a, b] = await Promise.allSettled([reader.get("a"), reader.get("b")]);
    expect(a).toMatchObject({ status: "rejected", reason: { message: "logger broke" } });
    expect(b).toEqual({ status: "fulfilled", value: 2 });
    await Promise.all([cache.close(), reader.close()]);
  });

  it("a failed batch: each caller gets the CacheError without failSilently, its loader's value with it", async () => {
    const url = `redis://127.0.0.1:${await freePort()}`; // nothing listens there
    const strict = createCache({
      redis: nodeRedis({ url }),
      env: {},
      failSilently: false,
      l1: false,
      logger: { warn: () => {} },
    });
    const results = await Promise.allSettled(["a", "b"].map((key) => strict.getOrSet(key, () => key)));
    for (const result of results) {
      expect(result.status).toBe("rejected");
      expect((result as PromiseRejectedResult).reason).toBeInstanceOf(CacheError);
    }
    const lenient = createCache({
      redis: nodeRedis({ url }),
      env: {},
      l1: false,
      logger: { warn: () => {} },
    });
    expect(await Promise.all(["a", "b"].map((key) => lenient.getOrSet(key, () => key)))).toEqual(["a", "b"]);
    await Promise.all([strict.close(), lenient.close()]);
  });

  it("a getOrSet hit settled in the batch's loop still starts its refreshAhead refresh", async () => {
    const cache = cacheOf({ l1: false, ttl: 400, refreshAhead: 0.5 });
    expect(await cache.getOrSet("r", () => "v1")).toBe("v1");
    await new Promise((r) => setTimeout(r, 250)); // past half of its freshness
    let refreshes = 0;
    const refresh = () => {
      refreshes++;
      return "v2";
    };
    expect(await cache.getOrSet("r", refresh)).toBe("v1"); // an L2 hit, served at once
    const until = Date.now() + 1000;
    while (Date.now() < until && (await admin.get((await cache.keys.entry("r")) as string))?.includes("v1"))
      await new Promise((r) => setTimeout(r, 10));
    expect(await cache.getOrSet("r", refresh)).toBe("v2"); // the first was still fresh for ~100 ms
    expect(refreshes).toBe(1);
    expect(cache.stats().hits.l2).toBe(2);
    await cache.close();
  });

  it("a getOrSet miss found in the batch's loop keeps its loaderTimeout", async () => {
    const cache = cacheOf({ l1: false, failSilently: false });
    const started = performance.now();
    const slow = () => new Promise<string>((r) => setTimeout(() => r("late"), 400));
    const outcome = await cache.getOrSet("slow", slow, { loaderTimeout: { hard: 50 } }).catch((e) => e);
    expect(outcome).toBeInstanceOf(CacheError);
    expect((outcome as CacheError).code).toBe("LOADER_TIMEOUT");
    expect(performance.now() - started).toBeLessThan(350);
    await new Promise((r) => setTimeout(r, 450)); // the load goes on, and its value is cached
    expect(await cache.get("slow")).toBe("late");
    await cache.close();
  });
});
