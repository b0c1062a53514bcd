import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { CacheError, type GetOrSetOptions, type LoaderContext } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(["l1", "node-redis", "upstash", "cluster"] as const)("Cache on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  it("get misses, then returns what set stored, with its types intact", async () => {
    const cache = cacheOn(backend);
    expect(await cache.get("user:1")).toBeUndefined();
    const value = { name: "Ada", at: new Date(1_700_000_000_000), ids: new Set([1, 2]), n: 10n };
    await cache.set("user:1", value);
    const back = await cache.get<typeof value>("user:1");
    expect(back).toEqual(value);
    expect(back?.at).toBeInstanceOf(Date);
    await cache.close();
  });

  it("round-trips awkward values and keys", async () => {
    const cache = cacheOn(backend);
    const keys = ["a*b?c[d]e\\f", "line\nbreak", "ключ🚀", "k".repeat(10_240), "with space: and colon"];
    const values: unknown[] = [null, 0, "", [undefined, 1], new Map([[1, { deep: [new Date(0)] }]])];
    for (const [i, key] of keys.entries()) await cache.set(key, values[i]);
    // A second instance has an empty L1, so on Redis backends the values come through Redis.
    const reader = backendName === "l1" ? cache : cacheOn(backend, { prefix: cache.keys.prefix });
    for (const [i, key] of keys.entries()) expect(await reader.get(key)).toEqual(values[i]);
    await cache.close();
    await reader.close();
  });

  it("getMany and setMany keep order and misses", async () => {
    const cache = cacheOn(backend);
    await cache.setMany([
      { key: "a", value: 1 },
      { key: "c", value: { three: 3 } },
    ]);
    expect(await cache.getMany(["a", "b", "c"])).toEqual([1, undefined, { three: 3 }]);
    await cache.close();
  });

  it("getOrSet loads once, then hits", async () => {
    const cache = cacheOn(backend);
    const loader = vi.fn(async () => ({ v: 1 }));
    expect(await cache.getOrSet("once", loader)).toEqual({ v: 1 });
    expect(await cache.getOrSet("once", loader)).toEqual({ v: 1 });
    expect(loader).toHaveBeenCalledTimes(1);
    expect(cache.stats()).toMatchObject({ loads: 1, misses: 1, hits: { l1: 1 } });
    await cache.close();
  });

  it("1,000 concurrent getOrSet on one cold key run the loader once", async () => {
    const cache = cacheOn(backend);
    let runs = 0;
    const results = await Promise.all(
      Array.from({ length: 1000 }, () =>
        cache.getOrSet("hot", async () => {
          runs++;
          await sleep(20);
          return "value";
        }),
      ),
    );
    expect(runs).toBe(1);
    expect(new Set(results)).toEqual(new Set(["value"]));
    await cache.close();
  });

  it("delete and exists count keys; ttl and expire manage freshness", async () => {
    const cache = cacheOn(backend);
    await cache.set("d1", 1, { ttl: "1m" });
    await cache.set("d2", 2, { ttl: 60_000 });
    expect(await cache.exists("d1", "d2", "nope")).toBe(2);
    expect(await cache.ttl("d1")).toBe(60);
    expect(await cache.ttl("nope")).toBe(-2);
    expect(await cache.expire("d1", "2h")).toBe(true);
    expect(await cache.ttl("d1")).toBe(7200);
    expect(await cache.expire("nope", "1s")).toBe(false);
    expect(await cache.delete("d1", "d2", "nope")).toBe(2);
    expect(await cache.get("d1")).toBeUndefined();
    expect(await cache.exists("d1")).toBe(0);
    await cache.close();
  });

  it("jitter shortens freshness by a random fraction, never lengthens it", async () => {
    const cache = cacheOn(backend, { jitter: 0.5 });
    const ttls = new Set<number>();
    for (let i = 0; i < 20; i++) {
      await cache.set(`j${i}`, i, { ttl: "1000s" });
      ttls.add(await cache.ttl(`j${i}`));
    }
    expect(ttls.size).toBeGreaterThan(1);
    for (const ttl of ttls) expect(ttl).toBeGreaterThanOrEqual(500);
    for (const ttl of ttls) expect(ttl).toBeLessThanOrEqual(1000);
    expect(() => cacheOn(backend, { jitter: 2 })).toThrow(/between 0 and 1/);
    await cache.close();
  });

  it("a fractional ttl works (PX is rounded up to whole milliseconds)", async () => {
    const cache = cacheOn(backend);
    await cache.set("frac", 1, { ttl: 60_000 / 7 });
    const reader = backendName === "l1" ? cache : cacheOn(backend, { prefix: cache.keys.prefix });
    expect(await reader.get("frac")).toBe(1);
    expect(cache.stats().errors).toBe(0);
    await cache.close();
    await reader.close();
  });

  it("a schema's transform runs on every read; the cached value stays the loader's", async () => {
    const cache = cacheOn(backend);
    const schema = z.string().transform((s) => s.length);
    const loader = vi.fn(async () => "abcd");
    // getOrSet's types tie the loader to the schema's output; a transforming schema needs a cast.
    const options = { schema } as unknown as GetOrSetOptions<string>;
    for (let i = 0; i < 3; i++) expect(await cache.getOrSet("shaped", loader, options)).toBe(4);
    expect(loader).toHaveBeenCalledTimes(1);
    expect(await cache.get("shaped")).toBe("abcd");
    await cache.close();
  });

  it("concurrent getOrSet with different schemas do not share one schema's output", async () => {
    const cache = cacheOn(backend);
    const asLength = z.string().transform((s) => s.length) as unknown as GetOrSetOptions<string>["schema"];
    const asUpper = z.string().transform((s) => s.toUpperCase());
    const loader = async () => {
      await sleep(10);
      return "abc";
    };
    const [a, b] = await Promise.all([
      cache.getOrSet("two-shapes", loader, { schema: asLength }),
      cache.getOrSet("two-shapes", loader, { schema: asUpper }),
    ]);
    expect([a, b]).toEqual([3, "ABC"]);
    await cache.close();
  });

  it("a value L1 will not hold does not leave the previous one served in its place", async () => {
    const cache = cacheOn(backend, { l1: { maxBytes: 1000 } });
    await cache.set("sized", "small");
    await cache.set("sized", "x".repeat(5000));
    expect(await cache.get("sized")).toBe(backendName === "l1" ? undefined : "x".repeat(5000));
    await cache.close();
  });

  it("entries expire after their ttl", async () => {
    const cache = cacheOn(backend);
    await cache.set("short", "x", { ttl: 40 });
    expect(await cache.get("short")).toBe("x");
    await sleep(80);
    expect(await cache.get("short")).toBeUndefined();
    await cache.close();
  });

  it("increment counts atomically and survives a version change", async () => {
    const v1 = cacheOn(backend, { version: "v1" });
    expect(await v1.increment("visits")).toBe(1);
    expect(await v1.increment("visits", 4)).toBe(5);
    await expect(v1.increment("visits", 1.5)).rejects.toThrow(TypeError);
    if (backendName !== "l1") {
      const v2 = cacheOn(backend, { version: "v2", prefix: v1.keys.prefix });
      expect(await v2.increment("visits")).toBe(6);
      await v2.close();
    }
    await v1.close();
  });

  it("a versioned entry is invisible to another version; an unversioned one is shared", async () => {
    if (backendName === "l1") return;
    const v1 = cacheOn(backend, { version: "v1" });
    const v2 = cacheOn(backend, { version: "v2", prefix: v1.keys.prefix });
    await v1.set("page", "rendered by v1");
    await v1.set("upstream", "fetched data", { versioned: false });
    expect(await v2.get("page")).toBeUndefined();
    expect(await v2.get("upstream", { versioned: false })).toBe("fetched data");
    await v1.close();
    await v2.close();
  });

  it("a schema mismatch is a miss that deletes the entry; the loader's value must pass it", async () => {
    const cache = cacheOn(backend);
    await cache.set("shape", { name: "old", age: "12" });
    const schema = z.object({ name: z.string(), age: z.number() });
    expect(await cache.get("shape", { schema })).toBeUndefined();
    expect(await cache.exists("shape")).toBe(0);
    const loaded = await cache.getOrSet("shape", async () => ({ name: "new", age: 12 }), { schema });
    expect(loaded).toEqual({ name: "new", age: 12 });
    const wrongShape = async () => ({ name: 1 }) as unknown as { name: string; age: number };
    await expect(cache.getOrSet("bad", wrongShape, { schema })).rejects.toMatchObject({
      code: "SCHEMA",
    });
    await cache.close();
  });

  it("serves stale while one refresh runs, and stale on loader error within staleIfError", async () => {
    const background: Promise<unknown>[] = [];
    const cache = cacheOn(backend, { waitUntil: (p) => background.push(p) });
    let version = 0;
    const loader = vi.fn(async () => ++version);
    const options = { ttl: 30, staleWhileRevalidate: "10s" };
    expect(await cache.getOrSet("swr", loader, options)).toBe(1);
    await Promise.all(background.splice(0));
    await sleep(50);
    const [a, b] = await Promise.all([
      cache.getOrSet("swr", loader, options),
      cache.getOrSet("swr", loader, options),
    ]);
    expect([a, b]).toEqual([1, 1]);
    expect(background.length).toBeGreaterThanOrEqual(1); // the one refresh went to waitUntil
    await Promise.all(background.splice(0));
    expect(loader).toHaveBeenCalledTimes(2);
    expect(await cache.getOrSet("swr", loader, options)).toBe(2);

    const failing = async () => {
      throw new Error("db down");
    };
    await cache.set("sie", "old", { ttl: 20, staleIfError: "10s" });
    await sleep(40);
    expect(await cache.getOrSet("sie", failing, { staleIfError: "10s" })).toBe("old");
    await expect(cache.getOrSet("sie", failing, { staleIfError: 1 })).rejects.toThrow("db down");
    await cache.close();
  });

  it("a loader can skip caching or set its own ttl", async () => {
    const cache = cacheOn(backend);
    const skipping = (ctx: LoaderContext) => {
      ctx.skipCache();
      return "once";
    };
    expect(await cache.getOrSet("skip", skipping)).toBe("once");
    expect(await cache.exists("skip")).toBe(0);
    await cache.getOrSet("own-ttl", (ctx) => {
      ctx.setTtl("2h");
      return "x";
    });
    expect(await cache.ttl("own-ttl")).toBe(7200);
    await cache.close();
  });

  it("unserializable values: set throws a clear error, getOrSet returns the value uncached", async () => {
    const cache = cacheOn(backend);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    await expect(cache.set("loop", loop)).rejects.toThrow(CacheError);
    expect(await cache.getOrSet("loop", () => loop)).toBe(loop);
    expect(await cache.exists("loop")).toBe(0);
    await cache.close();
  });

  it("enabled: false misses every read and always runs the loader", async () => {
    const cache = cacheOn(backend, { enabled: false });
    await cache.set("off", 1);
    expect(await cache.get("off")).toBeUndefined();
    const loader = vi.fn(() => 2);
    await cache.getOrSet("off", loader);
    await cache.getOrSet("off", loader);
    expect(loader).toHaveBeenCalledTimes(2);
    await cache.close();
  });

  it("reports health without secrets", async () => {
    const cache = cacheOn(backend);
    const health = await cache.health();
    expect(health.healthy).toBe(true);
    const kind = { l1: "none", "node-redis": "node-redis", upstash: "upstash", cluster: "node-redis" }[
      backendName
    ];
    expect(health.transport).toBe(kind);
    if (backendName !== "l1") {
      expect(health.latencyMs).toBeGreaterThanOrEqual(0);
      expect(health.redis?.version).toMatch(/^\d+\.\d+/);
      expect(await cache.connect()).toMatchObject({ connected: true, transport: kind });
    }
    if (backendName === "cluster") {
      // The three primaries, each reachable.
      expect(health.topology?.mode).toBe("cluster");
      const primaries = health.topology?.nodes.filter((node) => node.role === "primary") ?? [];
      expect(primaries.map((node) => node.reachable)).toEqual([true, true, true]);
    } else expect(health.topology).toBeUndefined();
    expect(JSON.stringify(health)).not.toContain("test-token");
    await cache.close();
  });

  // Skipped for the L1-only backend: these check what reaches Redis, and it has none.
  describe.skipIf(backendName === "l1")("through Redis", () => {
    it("a value set by one instance is read by another, and then lands in its L1", async () => {
      const writer = cacheOn(backend);
      const reader = cacheOn(backend, { prefix: writer.keys.prefix });
      await writer.set("shared", { from: "writer" }, { ttl: "1m" });
      expect(await reader.get("shared")).toEqual({ from: "writer" });
      expect(await reader.get("shared")).toEqual({ from: "writer" });
      expect(reader.stats().hits).toEqual({ l1: 1, l2: 1 });
      // Remaining freshness travels with the entry.
      expect(await reader.ttl("shared")).toBe(60);
      await writer.close();
      await reader.close();
    });

    it("a corrupted entry in Redis is a miss and is deleted", async () => {
      const cache = cacheOn(backend);
      const full = await cache.keys.entry("corrupt");
      await backend.raw!.set(full, "garbage{not json");
      expect(await cache.get("corrupt")).toBeUndefined();
      await sleep(50);
      expect(await backend.raw!.exists(full)).toBe(0);
      expect(await cache.getOrSet("corrupt", () => "reloaded")).toBe("reloaded");
      await cache.close();
    });

    it("large values are compressed in Redis and come back whole", async () => {
      const cache = cacheOn(backend);
      const big = { text: "lorem ipsum ".repeat(20_000) };
      await cache.set("big", big);
      const stored = await backend.raw!.get(await cache.keys.entry("big"));
      expect(stored?.startsWith("z:")).toBe(true);
      expect(stored!.length).toBeLessThan(JSON.stringify(big).length / 10);
      const reader = cacheOn(backend, { prefix: cache.keys.prefix });
      expect(await reader.get("big")).toEqual(big);
      await cache.close();
      await reader.close();
    });

    it("a value too large for Redis removes the previous one there instead of leaving it", async () => {
      const cache = cacheOn(backend);
      await cache.set("huge", "small");
      const random = new Uint8Array(900_000);
      for (let i = 0; i < random.length; i += 65_536) crypto.getRandomValues(random.subarray(i, i + 65_536));
      await cache.set("huge", random); // incompressible: over 1 MB once base64'd
      // A short-lived tombstone in its place (an older loader's write-back cannot bring it back).
      expect((await backend.raw!.get(await cache.keys.entry("huge")))?.startsWith("~d:")).toBe(true);
      expect(await cache.exists("huge")).toBe(0);
      const other = cacheOn(backend, { prefix: cache.keys.prefix });
      expect(await other.get("huge")).toBeUndefined();
      await Promise.all([cache.close(), other.close()]);
    });

    it("Redis keeps the entry until its stale window ends (PX)", async () => {
      const cache = cacheOn(backend);
      await cache.set("px", 1, { ttl: "10s", staleWhileRevalidate: "50s" });
      const pttl = await backend.raw!.pTTL(await cache.keys.entry("px"));
      expect(pttl).toBeGreaterThan(59_000);
      expect(pttl).toBeLessThanOrEqual(60_000);
      await cache.close();
    });
  });
});
