import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { route } from "../../src/http/route.js";
import { CacheError, createCache } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { background } from "../support/background.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Generous for a shared, busy 2-core machine; still far below the loaders' own sleeps. */
const MARGIN = 250;

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeAll(() => {
  process.on("unhandledRejection", onUnhandled);
});
afterAll(() => {
  process.off("unhandledRejection", onUnhandled);
});
afterEach(async () => {
  await sleep(20); // a rejection nobody handled is reported after a macrotask
  expect(unhandled).toEqual([]);
});

describe.each(["node-redis", "upstash"] as const)("loaderTimeout on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  it("past soft, the stale value is returned at once and the entry is refreshed in the background", async () => {
    const bg = background();
    const cache = cacheOn(backend, { ttl: 100, staleIfError: "1m", waitUntil: bg.waitUntil });
    await cache.getOrSet("profile", () => "old");
    await bg.settled();
    await sleep(150); // stale, past its (zero) stale-while-revalidate window
    let calls = 0;
    const slow = async () => {
      calls++;
      await sleep(700);
      return "new";
    };
    const started = performance.now();
    const value = await cache.getOrSet("profile", slow, { loaderTimeout: { soft: 100, hard: 5000 } });
    const elapsed = performance.now() - started;
    expect(value).toBe("old");
    expect(elapsed).toBeGreaterThanOrEqual(95);
    expect(elapsed).toBeLessThan(100 + MARGIN);
    // While it loads, later callers get the stale value without waiting and without another run.
    const again = performance.now();
    expect(await cache.getOrSet("profile", slow, { loaderTimeout: { soft: 100 } })).toBe("old");
    expect(performance.now() - again).toBeLessThan(MARGIN);
    await bg.settled();
    expect(calls).toBe(1);
    const other = cacheOn(backend, { prefix: cache.keys.prefix });
    expect(await other.get("profile")).toBe("new"); // the late value reached Redis
    expect(await cache.getOrSet("profile", async () => "never")).toBe("new");
    expect(cache.stats().staleServed).toBe(2);
    await Promise.all([cache.close(), other.close()]);
  });

  it("soft without a stale value waits for the loader (there is nothing else to return)", async () => {
    const cache = cacheOn(backend, { loaderTimeout: { soft: 50 } });
    const value = await cache.getOrSet("cold", async () => {
      await sleep(200);
      return "loaded";
    });
    expect(value).toBe("loaded");
    await cache.close();
  });

  it("past hard, LOADER_TIMEOUT; the next caller runs the loader again; the late value is still cached", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil, loaderTimeout: { hard: 150 } });
    let calls = 0;
    const slow = async () => {
      const n = ++calls;
      await sleep(600);
      return `load ${n}`;
    };
    const started = performance.now();
    const error = await cache.getOrSet("report", slow).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(CacheError);
    expect((error as CacheError).code).toBe("LOADER_TIMEOUT");
    expect(elapsed).toBeGreaterThanOrEqual(145);
    expect(elapsed).toBeLessThan(150 + MARGIN);
    // The single flight was released: this caller does not join the first run, it starts its own.
    expect(await cache.getOrSet("report", slow, { loaderTimeout: { hard: 5000 } })).toBe("load 2");
    expect(calls).toBe(2);
    await bg.settled();
    const other = cacheOn(backend, { prefix: cache.keys.prefix });
    expect(await other.get("report")).toMatch(/^load [12]$/);
    await Promise.all([cache.close(), other.close()]);
  });

  it("a lease holder past hard still writes its value within the lease: other instances get it", async () => {
    const bg = background();
    const a = cacheOn(backend, { waitUntil: bg.waitUntil, timeoutMs: 5000 });
    const b = cacheOn(backend, { prefix: a.keys.prefix, waitUntil: bg.waitUntil, timeoutMs: 5000 });
    const calls: string[] = [];
    const slow = (who: string) => async () => {
      calls.push(who);
      await sleep(400);
      return `from ${who}`;
    };
    const holder = a
      .getOrSet("leased", slow("a"), { lease: "3s", loaderTimeout: { hard: 100 } })
      .catch((e: unknown) => e);
    const lease = a.keys.lease((await a.keys.entry("leased")) as string);
    while (!(await backend.raw?.exists(lease))) await sleep(5); // a holds the lease
    const waiter = b.getOrSet("leased", slow("b"), { lease: "3s" });
    expect(await holder).toMatchObject({ code: "LOADER_TIMEOUT" });
    expect(await waiter).toBe("from a");
    expect(calls).toEqual(["a"]);
    await bg.settled();
    await Promise.all([a.close(), b.close()]);
  });

  it("a loader that fails after its hard timeout leaves no unhandled rejection and caches nothing", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil });
    const failing = async () => {
      await sleep(200);
      throw new Error("origin down");
    };
    await expect(cache.getOrSet("down", failing, { loaderTimeout: { hard: 50 } })).rejects.toMatchObject({
      code: "LOADER_TIMEOUT",
    });
    await bg.settled();
    await sleep(20);
    expect(await cache.get("down")).toBeUndefined();
    await cache.close();
  });

  it("a loader that fails before soft is the caller's error, as without a timeout", async () => {
    const cache = cacheOn(backend, { loaderTimeout: { soft: 100, hard: 1000 } });
    await expect(
      cache.getOrSet("boom", async () => {
        throw new Error("bad query");
      }),
    ).rejects.toThrow("bad query");
    await cache.close();
  });

  it("works through wrap", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil });
    const slowSquare = cache.wrap(
      async (n: number) => {
        await sleep(400);
        return n * n;
      },
      { key: (n) => `square:${n}`, loaderTimeout: { hard: 80 } },
    );
    await expect(slowSquare(3)).rejects.toMatchObject({ code: "LOADER_TIMEOUT" });
    await bg.settled();
    expect(await cache.get("square:3")).toBe(9);
    await cache.close();
  });

  it("works through route: STALE past soft, LOADER_TIMEOUT past hard, the handler run once each", async () => {
    const bg = background();
    const cache = cacheOn(backend, { waitUntil: bg.waitUntil, staleIfError: "1m" });
    let version = 0;
    let delay = 0;
    const handler = async () => {
      version++;
      const made = version;
      await sleep(delay);
      return new Response(`body ${made}`, { headers: { "cache-control": "max-age=0" } });
    };
    const get = route(cache, handler, { ttl: 100, loaderTimeout: { soft: 80, hard: 3000 } });
    const first = await get(new Request("https://app.test/page"));
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(await first.text()).toBe("body 1");
    await bg.settled();
    await sleep(150);
    delay = 500;
    const started = performance.now();
    const stale = await get(new Request("https://app.test/page"));
    expect(performance.now() - started).toBeLessThan(80 + MARGIN);
    expect(stale.headers.get("x-cache")).toBe("STALE");
    expect(await stale.text()).toBe("body 1");
    await bg.settled();
    expect(version).toBe(2);

    const hard = route(cache, handler, { loaderTimeout: { hard: 80 } });
    await expect(hard(new Request("https://app.test/cold"))).rejects.toMatchObject({
      code: "LOADER_TIMEOUT",
    });
    expect(version).toBe(3); // the handler was not run a second time to answer anyway
    await bg.settled();
    await cache.close();
  });
});

describe("loaderTimeout options", () => {
  it("a hard timeout not longer than soft is a CacheError at createCache and at the call", async () => {
    expect(() => createCache({ redis: false, env: {}, loaderTimeout: { soft: "2s", hard: "1s" } })).toThrow(
      CacheError,
    );
    const cache = createCache({ redis: false, env: {} });
    await expect(
      cache.getOrSet("k", () => 1, { loaderTimeout: { soft: 100, hard: 100 } }),
    ).rejects.toMatchObject({ code: "CONFIG" });
  });
});
