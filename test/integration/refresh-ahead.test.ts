import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError, createCache } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { background } from "../support/background.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(["node-redis", "upstash"] as const)("refreshAhead on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  it("hits past the threshold start exactly one background load; no caller waits; refreshed before expiry", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil, refreshAhead: 0.5 });
    let loads = 0;
    const loader = async () => {
      const n = ++loads;
      if (n > 1) await sleep(300); // a slow refresh: nobody may wait for it
      return `value ${n}`;
    };
    const before = Date.now();
    expect(await cache.getOrSet("hot", loader, { ttl: 1500 })).toBe("value 1");
    const written = Date.now(); // the entry was created between `before` and now
    await bg.settled();
    // Before the threshold: plain hits.
    expect(await cache.getOrSet("hot", loader, { ttl: 1500 })).toBe("value 1");
    expect(loads).toBe(1);
    await sleep(Math.max(0, written + 800 - Date.now()));
    const started = performance.now();
    const values = await Promise.all(
      Array.from({ length: 20 }, () => cache.getOrSet("hot", loader, { ttl: 1500 })),
    );
    expect(performance.now() - started).toBeLessThan(200);
    expect(values.every((value) => value === "value 1")).toBe(true);
    await bg.settled();
    expect(loads).toBe(2);
    expect(Date.now()).toBeLessThan(before + 1500); // refreshed while the first value was still fresh
    await sleep(Math.max(0, written + 1600 - Date.now())); // the first value's freshness is over
    expect(await cache.getOrSet("hot", loader, { ttl: 1500 })).toBe("value 2");
    const other = cacheOn(backend, { prefix: cache.keys.prefix });
    expect(await other.get("hot")).toBe("value 2");
    expect(loads).toBe(2);
    expect(cache.stats().misses).toBe(1);
    await Promise.all([cache.close(), other.close()]);
  });

  it("per call, and through the Redis read path (schema): one refresh per key", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil });
    const schema = {
      "~standard": { version: 1, vendor: "test", validate: (value: unknown) => ({ value }) },
    } as const;
    let loads = 0;
    const loader = async () => {
      loads++;
      await sleep(100);
      return loads;
    };
    await cache.getOrSet("k", loader, { ttl: 400, schema });
    await sleep(250);
    await Promise.all(
      Array.from({ length: 10 }, () => cache.getOrSet("k", loader, { ttl: 400, schema, refreshAhead: 0.5 })),
    );
    await bg.settled();
    expect(loads).toBe(2);
    // Without refreshAhead the same hit loads nothing.
    await sleep(250);
    await cache.getOrSet("k", loader, { ttl: 400, schema });
    await bg.settled();
    expect(loads).toBe(2);
    await cache.close();
  });

  it("across instances with lease: one load for many instances past the threshold", async () => {
    const bg = background();
    const first = cacheOn(backend, { waitUntil: bg.waitUntil, refreshAhead: 0.5 });
    const options = { ttl: 1000, lease: "2s" } as const;
    let loads = 0;
    const loader = async () => {
      loads++;
      await sleep(150);
      return `value ${loads}`;
    };
    await first.getOrSet("shared", loader, options);
    await bg.settled();
    const instances = [
      first,
      ...Array.from({ length: 9 }, () =>
        cacheOn(backend, { prefix: first.keys.prefix, waitUntil: bg.waitUntil, refreshAhead: 0.5 }),
      ),
    ];
    // Every instance holds the entry in its L1.
    await Promise.all(instances.map((cache) => cache.getOrSet("shared", loader, options)));
    expect(loads).toBe(1);
    await sleep(600);
    await Promise.all(instances.map((cache) => cache.getOrSet("shared", loader, options)));
    await bg.settled();
    expect(loads).toBe(2);
    // An instance whose L1 copy is still the old one takes the refreshed copy from Redis, no load.
    const late = instances[5] as (typeof instances)[number];
    await late.getOrSet("shared", loader, options);
    await bg.settled();
    expect(loads).toBe(2);
    await Promise.all(instances.map((cache) => cache.close()));
  });
});

describe("refreshAhead options", () => {
  it("a fraction outside 0…1 is a CacheError", async () => {
    expect(() => createCache({ redis: false, env: {}, refreshAhead: 1.5 })).toThrow(CacheError);
    const cache = createCache({ redis: false, env: {} });
    await cache.getOrSet("k", () => 1);
    await expect(cache.getOrSet("k", () => 1, { refreshAhead: -1 })).rejects.toMatchObject({
      code: "CONFIG",
    });
  });
});
