import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { escapeGlob } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts the Redis commands a transport sends, by wrapping it (the commands still reach Redis). */
function counting(backend: Backend) {
  const sent: string[] = [];
  // The once-per-instance version registration (issue 4) is bookkeeping, not part of any read.
  const bookkeeping = new Set(["HSETNX", "HGETALL", "HGET", "HSET", "HDEL"]);
  const record = (name: unknown) => {
    const upper = String(name).toUpperCase();
    if (!bookkeeping.has(upper)) sent.push(upper);
  };
  const inner = backend.transport();
  if (!inner) throw new Error("needs Redis");
  return {
    sent,
    transport: {
      kind: inner.kind,
      slotted: inner.slotted,
      send: (command: readonly (string | number)[], signal?: AbortSignal) => {
        record(command[0]);
        return inner.send(command, signal);
      },
      pipeline: (commands: readonly (readonly (string | number)[])[], signal?: AbortSignal) => {
        for (const c of commands) record(c[0]);
        return inner.pipeline(commands, signal);
      },
      close: () => inner.close(),
    },
  };
}

describe.each(["node-redis", "upstash", "cluster"] as const)("read policy on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  it("an invalidation on A reaches B's L1 within l1.syncMs + one request, for one extra key in an MGET", async () => {
    const a = cacheOn(backend, { l1: { syncMs: 100 } });
    const counted = counting(backend);
    // B's background work (write-back, epoch checks) is collected so the test waits for it, not a guess.
    const background: Promise<unknown>[] = [];
    const settled = () => Promise.all(background.splice(0));
    const b = cacheOn(backend, {
      prefix: a.keys.prefix,
      redis: counted.transport,
      l1: { syncMs: 100 },
      waitUntil: (p) => background.push(p),
    });
    let version = 1;
    const load = () => b.getOrSet("profile", async () => `v${version}`, { tags: ["user:1"] });
    expect(await load()).toBe("v1");
    await settled();
    counted.sent.length = 0;
    expect(await load()).toBe("v1"); // L1 hit: no Redis command on its path
    expect(counted.sent).toEqual([]);

    version = 2;
    await a.invalidateTags(["user:1"]);
    expect(await load()).toBe("v1"); // within the bound, B may still serve its L1 copy
    await sleep(120);
    await load(); // this request's background check learns the new epoch
    await settled();
    expect(await load()).toBe("v2");
    // The whole exchange cost B a handful of reads: the background epoch GET(s), the value (with the
    // epoch riding along when due) and the tag mark — no pub/sub, no per-hit round trip.
    const reads = counted.sent.filter((c) => c !== "SET" && c !== "EVAL");
    expect(
      reads.every((c) => c === "GET" || c === "MGET"),
      reads.join(","),
    ).toBe(true);
    expect(reads.length).toBeLessThanOrEqual(4);
    await Promise.all([a.close(), b.close()]);
  });

  it("an instance that filled L1 before ever reading the epoch still sees a later delete", async () => {
    const background: Promise<unknown>[] = [];
    const a = cacheOn(backend, { l1: { syncMs: 50 }, waitUntil: (p) => background.push(p) });
    const b = cacheOn(backend, { prefix: a.keys.prefix, l1: { syncMs: 50 } });
    await a.set("k", "v1"); // L1 filled, no epoch read yet
    await b.delete("k");
    await sleep(60);
    await a.get("k"); // this request's background check learns the epoch
    await Promise.all(background);
    expect(await a.get("k")).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });

  it("a namespace flush elsewhere empties this instance's L1 within the bound", async () => {
    const a = cacheOn(backend, { l1: { syncMs: 50 } });
    const b = cacheOn(backend, { prefix: a.keys.prefix, l1: { syncMs: 50 } });
    await a.invalidateTags(["warm-up"]); // the epoch exists and A has seen it
    await a.set("k", "v1");
    await b.flush({ scope: "namespace" });
    await sleep(60);
    await a.get("k");
    await sleep(30);
    expect(await a.get("k")).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });

  it("a tag invalidated while the loader runs makes the loaded value a miss elsewhere", async () => {
    const loaderSide = cacheOn(backend);
    const writer = cacheOn(backend, { prefix: loaderSide.keys.prefix });
    const loaded = loaderSide.getOrSet(
      "racy",
      async () => {
        await writer.invalidateTags(["row:1"]); // the row changes after the loader read it
        await sleep(5);
        return "old row";
      },
      { tags: ["row:1"] },
    );
    expect(await loaded).toBe("old row");
    const fresh = cacheOn(backend, { prefix: loaderSide.keys.prefix });
    expect(await fresh.get("racy")).toBeUndefined();
    await Promise.all([loaderSide.close(), writer.close(), fresh.close()]);
  });

  it("Redis error replies do not open the circuit", async () => {
    const cache = cacheOn(backend, { breaker: { failureThreshold: 2, resetMs: 60_000 } });
    await backend.raw!.set(await cache.keys.counter("not-a-number"), "abc");
    for (let i = 0; i < 5; i++) await cache.increment("not-a-number");
    expect((await cache.health()).breaker).toBe("closed");
    await cache.set("still", "works");
    const other = cacheOn(backend, { prefix: cache.keys.prefix });
    expect(await other.get("still")).toBe("works");
    await Promise.all([cache.close(), other.close()]);
  });

  it("an entry with 3 tags is gone after any one is invalidated; written after, it is fresh", async () => {
    const writer = cacheOn(backend);
    const reader = cacheOn(backend, { prefix: writer.keys.prefix, l1: false });
    for (const tag of ["a", "b", "c"]) {
      await writer.set("multi", "old", { tags: ["a", "b", "c"] });
      expect(await reader.get("multi")).toBe("old");
      await sleep(2);
      await writer.invalidateTags([tag]);
      const fresh = cacheOn(backend, { prefix: writer.keys.prefix, l1: false });
      expect(await fresh.get("multi")).toBeUndefined();
      await fresh.close();
    }
    await sleep(2);
    await writer.set("multi", "new", { tags: ["a", "b", "c"] });
    const late = cacheOn(backend, { prefix: writer.keys.prefix });
    expect(await late.get("multi")).toBe("new");
    await Promise.all([writer.close(), reader.close(), late.close()]);
  });

  it("an L2 hit with 3 known tags costs one command; the first costs one more for the tag marks", async () => {
    const writer = cacheOn(backend);
    await writer.set("tagged", 1, { tags: ["x", "y", "z"] });
    await writer.set("tagged2", 2, { tags: ["x", "y", "z"] });
    const counted = counting(backend);
    const reader = cacheOn(backend, { prefix: writer.keys.prefix, redis: counted.transport, l1: false });
    expect(await reader.get("tagged")).toBe(1);
    // On a cluster the value and the epoch sit in two slots (a read each); the three marks share one.
    expect(counted.sent).toEqual(backendName === "cluster" ? ["GET", "GET", "MGET"] : ["MGET", "MGET"]);
    counted.sent.length = 0;
    expect(await reader.get("tagged2")).toBe(2);
    expect(counted.sent).toEqual(["GET"]);
    await Promise.all([writer.close(), reader.close()]);
  });

  it("invalidates 10,000 tagged entries in one call of O(tags) commands", async () => {
    const cache = cacheOn(backend, { l1: false });
    const entries = Array.from({ length: 10_000 }, (_, i) => ({
      key: `bulk:${i}`,
      value: i,
      tags: ["bulk"],
    }));
    for (let i = 0; i < entries.length; i += 1000) await cache.setMany(entries.slice(i, i + 1000));
    const counted = counting(backend);
    const invalidator = cacheOn(backend, { prefix: cache.keys.prefix, redis: counted.transport });
    const started = performance.now();
    await invalidator.invalidateTags(["bulk"]);
    const ms = performance.now() - started;
    expect(counted.sent).toEqual(["MSET", "SET"]);
    expect(ms).toBeLessThan(1000);
    const sample = await Promise.all([0, 4321, 9999].map((i) => cache.get(`bulk:${i}`)));
    expect(sample).toEqual([undefined, undefined, undefined]);
    await Promise.all([cache.close(), invalidator.close()]);
  });

  it("soft invalidation serves stale within staleWhileRevalidate while it refreshes", async () => {
    const cache = cacheOn(backend);
    let n = 0;
    const loader = vi.fn(async () => ++n);
    const opts = { tags: ["soft"], staleWhileRevalidate: "1m" };
    expect(await cache.getOrSet("soft-key", loader, opts)).toBe(1);
    await cache.invalidateTags(["soft"], { soft: true });
    expect(await cache.getOrSet("soft-key", loader, opts)).toBe(1);
    await sleep(50);
    expect(await cache.getOrSet("soft-key", loader, opts)).toBe(2);
    await cache.close();
  });

  it("20 cold instances missing one key with a lease run the loader at most twice", async () => {
    // A lease request that misses its deadline counts as not granted (fail-open: load yourself); this
    // test is about the lease, so 20 fresh connections on a busy machine get a generous deadline.
    const first = cacheOn(backend, { timeoutMs: 5000 });
    const instances = [
      first,
      ...Array.from({ length: 19 }, () => cacheOn(backend, { prefix: first.keys.prefix, timeoutMs: 5000 })),
    ];
    let runs = 0;
    const loader = async () => {
      runs++;
      await sleep(100);
      return "expensive";
    };
    const results = await Promise.all(instances.map((c) => c.getOrSet("leased", loader, { lease: "2s" })));
    expect(new Set(results)).toEqual(new Set(["expensive"]));
    expect(runs).toBeLessThanOrEqual(2);
    await Promise.all(instances.map((c) => c.close()));
  });

  it("a lease holder that hangs does not block the others past the lease", async () => {
    const holder = cacheOn(backend);
    const other = cacheOn(backend, { prefix: holder.keys.prefix });
    void holder.getOrSet("stuck", () => new Promise<string>(() => {}), { lease: 300 });
    await sleep(30);
    const started = performance.now();
    expect(await other.getOrSet("stuck", async () => "own", { lease: 300 })).toBe("own");
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(2000);
    await Promise.all([holder.close(), other.close()]);
  });

  it("a lease holder whose loader fails releases the lease: the others load at once", async () => {
    const holder = cacheOn(backend);
    const other = cacheOn(backend, { prefix: holder.keys.prefix });
    // Connected first (on a cluster that is slot discovery), so the holder surely takes the lease.
    await Promise.all([holder.get("warm"), other.get("warm")]);
    const failing = holder.getOrSet(
      "fails",
      async () => {
        await sleep(50);
        throw new Error("db down");
      },
      { lease: "5s" },
    );
    await sleep(10);
    const started = performance.now();
    const own = other.getOrSet("fails", async () => "own", { lease: "5s" });
    await expect(failing).rejects.toThrow("db down");
    expect(await own).toBe("own");
    expect(performance.now() - started).toBeLessThan(2000);
    await Promise.all([holder.close(), other.close()]);
  });

  it("deletePattern stays in its namespace, version and environment, and escapes user input", async () => {
    const mine = cacheOn(backend, { namespace: "ns1", version: "v1" });
    const prefix = mine.keys.prefix;
    const otherVersion = cacheOn(backend, { namespace: "ns1", version: "v2", prefix });
    const otherNamespace = cacheOn(backend, { namespace: "ns2", version: "v1", prefix });
    const otherEnv = cacheOn(backend, { namespace: "ns1", version: "v1", prefix: `${prefix}x` });
    for (const c of [mine, otherVersion, otherNamespace, otherEnv]) {
      await c.set("user:1:posts", 1);
      await c.set("user:2:posts", 2);
    }
    await mine.set("user:*:posts", "literal star");
    await backend.raw!.set("user:1:posts", "foreign");
    expect(await mine.deletePattern(`user:${escapeGlob("*")}:posts`)).toBe(1);
    expect(await mine.get("user:1:posts")).toBe(1);
    expect(await mine.deletePattern("user:*:posts")).toBe(2);
    expect(await mine.get("user:1:posts")).toBeUndefined();
    for (const c of [otherVersion, otherNamespace, otherEnv]) {
      const fresh = cacheOn(backend, {
        namespace: c.keys.namespace,
        version: c.version,
        prefix: c.keys.prefix,
      });
      expect(await fresh.getMany(["user:1:posts", "user:2:posts"])).toEqual([1, 2]);
      await fresh.close();
    }
    expect(await backend.raw!.get("user:1:posts")).toBe("foreign");
    await Promise.all([mine, otherVersion, otherNamespace, otherEnv].map((c) => c.close()));
  });

  it("a shape change after a deploy: the schema turns the old entry into a miss, reload replaces it", async () => {
    const { z } = await import("zod");
    const before = cacheOn(backend);
    await before.set("account", { name: "Ada" });
    const after = cacheOn(backend, { prefix: before.keys.prefix });
    const schema = z.object({ name: z.string(), plan: z.enum(["free", "pro"]) });
    const loader = vi.fn(async () => ({ name: "Ada", plan: "pro" as const }));
    expect(await after.getOrSet("account", loader, { schema })).toEqual({ name: "Ada", plan: "pro" });
    expect(loader).toHaveBeenCalledTimes(1);
    const third = cacheOn(backend, { prefix: before.keys.prefix });
    expect(await third.get("account", { schema })).toEqual({ name: "Ada", plan: "pro" });
    await Promise.all([before.close(), after.close(), third.close()]);
  });
});
