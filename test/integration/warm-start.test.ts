import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { type Cache, CacheError, createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheEvent, CacheOptions } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { background } from "../support/background.js";
import { commandCalls, countedRedis } from "../support/command-stats.js";
import { countingTransport } from "../support/counting-transport.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const User = z.object({ name: z.string() });
/** How v1 writes an entry that is past its freshness by the time v2 reads it (after PAST_FRESH_WAIT). */
const PAST_FRESH = { schema: User, ttl: "200ms", staleWhileRevalidate: "1m" } as const;
const PAST_FRESH_WAIT = 300;

/** The times at the head of an entry as Redis stores it: `[1,created,fresh,stale,…`. */
function timesOf(stored: string | null | undefined): { created: number; fresh: number; stale: number } {
  const [, created, fresh, stale] = /^\[1,(\d+),(\d+),(\d+),/.exec(stored ?? "") ?? [];
  if (!created) throw new Error(`not an entry: ${stored}`);
  return { created: Number(created), fresh: Number(fresh), stale: Number(stale) };
}

/**
 * A transport of `backend` that holds every EVAL (a write-back, an adoption) until `release()`:
 * a test can act between a read and the write it leads to.
 */
function gatedTransport(backend: Backend) {
  const inner = backend.transport();
  if (!inner) throw new Error("needs Redis");
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let held = 0;
  const hold = async (commands: readonly (readonly (string | number)[])[]) => {
    if (commands.some((command) => String(command[0]).toUpperCase() === "EVAL")) {
      held++;
      await gate;
    }
  };
  const transport: Transport = {
    kind: inner.kind,
    send: async (command, signal) => {
      await hold([command]);
      return inner.send(command, signal);
    },
    pipeline: async (commands, signal) => {
      await hold(commands);
      return inner.pipeline(commands, signal);
    },
    close: () => inner.close(),
  };
  return { transport, release: () => release(), held: () => held };
}

let environments = 0;

describe.each(["node-redis", "upstash"] as const)("warmStart on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  /** Two deploys of one app on one Redis: `v1` registered (and warm) first, then `v2`. */
  async function deploys(v2Options: CacheOptions = {}) {
    const prefix = `warm${++environments}`;
    const bg = background();
    const v1 = cacheOn(backend, { prefix, version: "v1", waitUntil: bg.waitUntil });
    await v1.connect();
    await sleep(5); // first seen strictly later
    const counted = countingTransport(backend);
    const events: CacheEvent[] = [];
    const v2 = cacheOn(backend, {
      prefix,
      version: "v2",
      warmStart: true,
      redis: counted.transport,
      waitUntil: bg.waitUntil,
      onEvent: (event) => events.push(event),
      ...v2Options,
    });
    await v2.connect(); // first contact: the registry is read once, in the background of a real app
    counted.sent.length = 0;
    counted.reads.length = 0;
    return { prefix, v1, v2, bg, counted, events };
  }

  it("a v1 entry past its freshness is served as stale in one MGET, refreshed once, then v2's own value", async () => {
    const { v1, v2, bg, counted, events } = await deploys({ staleWhileRevalidate: "1m" });
    await v1.getOrSet("user:1", () => ({ name: "Ada (v1)" }), PAST_FRESH);
    await bg.settled();
    await sleep(PAST_FRESH_WAIT);
    let loads = 0;
    const loader = async () => {
      loads++;
      await sleep(30);
      return { name: "Ada (v2)" };
    };
    expect(await v2.getOrSet("user:1", loader, { schema: User })).toEqual({ name: "Ada (v1)" });
    // One command on the read's path: both versions' keys (and the epoch) in one MGET.
    expect(counted.sent).toEqual(["MGET"]);
    expect(counted.reads[0]).toEqual(
      expect.arrayContaining([
        await v2.keys.entry("user:1"),
        (await v2.keys.entry("user:1")).replace(":v2:", ":v1:"),
      ]),
    );
    // While the refresh runs, this instance serves the warm value again without asking Redis.
    expect(await v2.getOrSet("user:1", loader, { schema: User })).toEqual({ name: "Ada (v1)" });
    expect(counted.sent).toEqual(["MGET"]);
    expect(events.filter((e) => e.type === "warm")).toEqual([
      { type: "warm", key: "user:1" },
      { type: "warm", key: "user:1" },
    ]);
    expect(v2.stats().warm).toBe(2);
    expect(v2.stats().misses).toBe(0);
    await bg.settled();
    expect(loads).toBe(1);
    expect(await v2.getOrSet("user:1", loader, { schema: User })).toEqual({ name: "Ada (v2)" });
    expect(loads).toBe(1);
    expect(v2.stats().warm).toBe(2);
    // v1 keeps its own entry (rollback).
    expect(await backend.raw?.get((await v1.keys.entry("user:1")) as string)).toContain("Ada (v1)");
    await Promise.all([v1.close(), v2.close()]);
  });

  it("works through wrap", async () => {
    const { v1, v2, bg } = await deploys();
    let version = "v1";
    let calls = 0;
    const fetchUser = async (id: number) => {
      calls++;
      return { name: `user ${id} (${version})` };
    };
    await v1.wrap(fetchUser, { key: "user:{0}", schema: User })(7);
    await v1.wrap(fetchUser, { key: "user:{0}", ...PAST_FRESH })(8);
    await bg.settled();
    await sleep(PAST_FRESH_WAIT);
    version = "v2";
    calls = 0;
    const wrapped = v2.wrap(fetchUser, { key: "user:{0}", schema: User, staleWhileRevalidate: "1m" });
    // 7 is still fresh: adopted, no call. 8 is past its freshness: served stale, refreshed once.
    expect(await wrapped(7)).toEqual({ name: "user 7 (v1)" });
    expect(await wrapped(8)).toEqual({ name: "user 8 (v1)" });
    await bg.settled();
    expect(await wrapped(7)).toEqual({ name: "user 7 (v1)" });
    expect(await wrapped(8)).toEqual({ name: "user 8 (v2)" });
    expect(calls).toBe(1);
    expect(v2.stats().warm).toBe(2);
    await Promise.all([v1.close(), v2.close()]);
  });

  it("a fresh v1 entry is adopted: served with no load, stored under v2's key with v1's times and expiry", async () => {
    const { v1, v2, bg, counted, events } = await deploys();
    await v1.getOrSet("user:1", () => ({ name: "Ada (v1)" }), { schema: User, ttl: "1m" });
    await bg.settled();
    const v1Key = (await v1.keys.entry("user:1")) as string;
    const v2Key = (await v2.keys.entry("user:1")) as string;
    const stored = await backend.raw?.get(v1Key);
    await sleep(300); // a write made now would expire 300 ms later than v1's entry
    let loads = 0;
    const loader = async () => {
      loads++;
      return { name: "Ada (v2)" };
    };
    expect(await v2.getOrSet("user:1", loader, { schema: User })).toEqual({ name: "Ada (v1)" });
    await bg.settled();
    expect(loads).toBe(0);
    // One read, one write (the adoption), no load.
    expect(counted.sent).toEqual(["MGET", "EVAL"]);
    // The very same entry (value, tags, created/fresh/stale times) under v2's key, expiring with v1's.
    expect(await backend.raw?.get(v2Key)).toBe(stored);
    const [v1Ttl, v2Ttl] = [await backend.raw?.pTTL(v1Key), await backend.raw?.pTTL(v2Key)];
    expect(v2Ttl).toBeLessThanOrEqual((v1Ttl as number) + 50);
    expect(v2Ttl).toBeLessThan(60_000 - 200);
    expect(v2Ttl).toBeGreaterThan(55_000);
    // From now on an ordinary v2 entry: an L1 hit here, a Redis hit for an instance without warmStart.
    expect(await v2.getOrSet("user:1", loader, { schema: User })).toEqual({ name: "Ada (v1)" });
    expect(v2.stats()).toMatchObject({ warm: 1, hits: { l1: 1, l2: 0 }, misses: 0, loads: 0 });
    expect(events.filter((e) => e.type === "warm")).toEqual([{ type: "warm", key: "user:1" }]);
    const plain = cacheOn(backend, { prefix: v2.keys.prefix, version: "v2" });
    expect(await plain.get("user:1")).toEqual({ name: "Ada (v1)" });
    expect(loads).toBe(0);
    // v1 keeps its own entry (rollback).
    expect(await backend.raw?.get(v1Key)).toBe(stored);
    await Promise.all([v1.close(), v2.close(), plain.close()]);
  });

  it("an adopted entry keeps v1's tags: a tag invalidation after the adoption removes it", async () => {
    const { prefix, v1, v2, bg } = await deploys();
    const opts = { schema: User, tags: ["team:1"] };
    await v1.getOrSet("member", () => ({ name: "old" }), opts);
    await bg.settled();
    let loads = 0;
    const fresh = async () => ({ name: `new ${++loads}` });
    expect(await v2.getOrSet("member", fresh, opts)).toEqual({ name: "old" });
    await bg.settled();
    expect(loads).toBe(0);
    // Past the clock-skew allowance: a reload's write-back may then replace the entry (tombstone.ts).
    await sleep(150);
    await v2.invalidateTags(["team:1"]);
    await sleep(5); // a load starting in the invalidation's millisecond is not cached
    // Neither the adopting instance nor a cold one serves it (nor v1's copy) any more.
    expect(await v2.getOrSet("member", fresh, opts)).toEqual({ name: "new 1" });
    await bg.settled();
    const cold = cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil });
    await cold.connect();
    expect(await cold.getOrSet("member", fresh, opts)).toEqual({ name: "new 1" });
    expect(loads).toBe(1);
    await bg.settled();
    await Promise.all([v1.close(), v2.close(), cold.close()]);
  });

  it("a delete landing between the warm read and its adoption wins: nothing comes back", async () => {
    const { prefix, v1, bg } = await deploys();
    await v1.getOrSet("gone", () => ({ name: "old" }), { schema: User });
    await bg.settled();
    const gated = gatedTransport(backend);
    const v2 = cacheOn(backend, {
      prefix,
      version: "v2",
      warmStart: true,
      redis: gated.transport,
      waitUntil: bg.waitUntil,
    });
    await v2.connect();
    let loads = 0;
    const loader = async () => ({ name: `new ${++loads}` });
    expect(await v2.getOrSet("gone", loader, { schema: User })).toEqual({ name: "old" });
    expect(loads).toBe(0);
    expect(gated.held()).toBe(1); // the adoption's write, not sent yet
    const webhook = cacheOn(backend, { prefix, version: "v2", warmStart: true });
    await webhook.delete("gone");
    gated.release();
    await bg.settled();
    const v2Key = (await v2.keys.entry("gone")) as string;
    expect(await backend.raw?.get(v2Key)).toMatch(/^~d:/); // the delete's tombstone, not the entry
    expect(await backend.raw?.get((await v1.keys.entry("gone")) as string)).not.toContain("old");
    // The adopting instance dropped its own copy when Redis refused the write.
    expect(await v2.getOrSet("gone", loader, { schema: User })).toEqual({ name: "new 1" });
    await bg.settled();
    await Promise.all([v1.close(), v2.close(), webhook.close()]);
  });

  it("an adopted entry is reloaded once, when its own freshness ends", async () => {
    const { v1, v2, bg } = await deploys();
    await v1.getOrSet("user:3", () => ({ name: "v1" }), { schema: User, ttl: "1500ms" });
    await bg.settled();
    const { fresh } = timesOf(await backend.raw?.get((await v1.keys.entry("user:3")) as string));
    let loads = 0;
    const loader = async () => ({ name: `v2 load ${++loads}` });
    expect(await v2.getOrSet("user:3", loader, { schema: User })).toEqual({ name: "v1" });
    await bg.settled();
    expect(timesOf(await backend.raw?.get((await v2.keys.entry("user:3")) as string)).fresh).toBe(fresh);
    expect(await v2.getOrSet("user:3", loader, { schema: User })).toEqual({ name: "v1" });
    expect(loads).toBe(0);
    await sleep(Math.max(0, fresh + 50 - Date.now()));
    for (let i = 0; i < 3; i++)
      expect(await v2.getOrSet("user:3", loader, { schema: User })).toEqual({ name: "v2 load 1" });
    await bg.settled();
    expect(loads).toBe(1);
    expect(v2.stats().warm).toBe(1);
    await Promise.all([v1.close(), v2.close()]);
  });

  it("an adopted entry is refreshed ahead as v1's would have been: past the threshold only", async () => {
    const { v1, v2, bg } = await deploys();
    for (const key of ["due", "early"])
      await v1.getOrSet(key, () => ({ name: "v1" }), { schema: User, ttl: "2s" });
    await bg.settled();
    const { created } = timesOf(await backend.raw?.get((await v1.keys.entry("due")) as string));
    await sleep(Math.max(0, created + 1200 - Date.now())); // 60 % of the freshness gone
    const loads: string[] = [];
    const loader = (key: string) => async () => {
      loads.push(key);
      return { name: "v2" };
    };
    expect(await v2.getOrSet("due", loader("due"), { schema: User, refreshAhead: 0.5 })).toEqual({
      name: "v1",
    });
    expect(await v2.getOrSet("early", loader("early"), { schema: User, refreshAhead: 0.9 })).toEqual({
      name: "v1",
    });
    await bg.settled();
    expect(loads).toEqual(["due"]);
    expect(await v2.getOrSet("due", loader("due"), { schema: User, refreshAhead: 0.5 })).toEqual({
      name: "v2",
    });
    expect(await v2.getOrSet("early", loader("early"), { schema: User, refreshAhead: 0.9 })).toEqual({
      name: "v1",
    });
    expect(loads).toEqual(["due"]);
    await Promise.all([v1.close(), v2.close()]);
  });

  it("a value that fails v2's schema (its shape changed) is a plain miss, and v1's entry stays", async () => {
    const { v1, v2, bg } = await deploys();
    await v1.getOrSet("user:2", () => ({ fullName: "Grace" }));
    await bg.settled();
    let loads = 0;
    const value = await v2.getOrSet("user:2", async () => ({ name: `Grace ${++loads}` }), { schema: User });
    expect(value).toEqual({ name: "Grace 1" });
    expect(v2.stats().warm).toBe(0);
    expect(v2.stats().misses).toBe(1);
    await bg.settled();
    expect(await v1.get("user:2")).toEqual({ fullName: "Grace" });
    await Promise.all([v1.close(), v2.close()]);
  });

  it("a v1 entry invalidated by tag, before or after the deploy, is not served", async () => {
    const { v1, v2, bg } = await deploys();
    const opts = { schema: User, tags: ["team:1"] };
    await v1.getOrSet("before", () => ({ name: "old" }), opts);
    await v1.getOrSet("after", () => ({ name: "old" }), opts);
    await v1.getOrSet("other", () => ({ name: "old" }), { schema: User, tags: ["team:2"] });
    await bg.settled();
    await sleep(5);
    await v1.invalidateTags(["team:1"]); // before v2 reads
    const fresh = async () => ({ name: "new" });
    expect(await v2.getOrSet("before", fresh, opts)).toEqual({ name: "new" });
    await v1.getOrSet("after", () => ({ name: "old again" }), opts);
    await bg.settled();
    await sleep(5);
    await v2.invalidateTags(["team:1"]); // by the new deploy
    expect(await v2.getOrSet("after", fresh, opts)).toEqual({ name: "new" });
    expect(await v2.getOrSet("other", fresh, { schema: User, tags: ["team:2"] })).toEqual({ name: "old" });
    expect(v2.stats().warm).toBe(1);
    await bg.settled();
    await Promise.all([v1.close(), v2.close()]);
  });

  it("a key deleted in v2 does not come back from v1", async () => {
    const { v1, v2, bg } = await deploys();
    await v1.getOrSet("gone", () => ({ name: "old" }), { schema: User });
    await bg.settled();
    await v2.delete("gone");
    const v1Again = cacheOn(backend, { prefix: v1.keys.prefix, version: "v1" });
    expect(await v1Again.get("gone")).toBeUndefined();
    expect(await v2.getOrSet("gone", async () => ({ name: "new" }), { schema: User })).toEqual({
      name: "new",
    });
    expect(v2.stats().warm).toBe(0);
    await bg.settled();
    await Promise.all([v1.close(), v2.close(), v1Again.close()]);
  });

  it("a delete by a cold instance (its first operation) still removes v1's copy", async () => {
    const { prefix, v1, v2, bg } = await deploys();
    await v1.getOrSet("hook", () => ({ name: "old" }), { schema: User });
    await bg.settled();
    const webhook = cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil });
    await webhook.delete("hook");
    await bg.settled();
    // The v2 tombstone expires within a minute: what remains must not be v1's old value.
    expect(await backend.raw?.get((await v1.keys.entry("hook")) as string)).not.toContain("old");
    await Promise.all([v1.close(), v2.close(), webhook.close()]);
  });

  it("never from a newer version (rollback), another prefix, or for unversioned keys", async () => {
    const { prefix, v1, v2, bg } = await deploys();
    await v2.getOrSet("shared", () => ({ name: "v2's" }), { schema: User, warmStart: false });
    await bg.settled();
    // Rollback: an instance of v1 cold-starts after v2 registered.
    const rolledBack = cacheOn(backend, { prefix, version: "v1", warmStart: true, waitUntil: bg.waitUntil });
    await rolledBack.connect();
    expect(await rolledBack.getOrSet("shared", async () => ({ name: "v1's" }), { schema: User })).toEqual({
      name: "v1's",
    });
    expect(rolledBack.stats().warm).toBe(0);
    // Another environment prefix with the same versions: nothing of this one is visible.
    const staging = cacheOn(backend, { prefix: `${prefix}s`, version: "v1" });
    await staging.connect();
    await staging.getOrSet("env", () => ({ name: "staging" }));
    await sleep(5);
    const staging2 = cacheOn(backend, { prefix: `${prefix}p`, version: "v2", warmStart: true });
    await staging2.connect();
    expect(await staging2.getOrSet("env", async () => ({ name: "own" }), { schema: User })).toEqual({
      name: "own",
    });
    expect(staging2.stats().warm).toBe(0);
    // Unversioned keys are shared by every version already: a miss there is a miss.
    let unversionedLoads = 0;
    await v2.getOrSet("u", async () => ({ name: `u${++unversionedLoads}` }), {
      schema: User,
      versioned: false,
    });
    expect(unversionedLoads).toBe(1);
    await bg.settled();
    await Promise.all([v1.close(), v2.close(), rolledBack.close(), staging.close(), staging2.close()]);
  });

  it.each([
    // e.g. `tiercache flush --scope version` with v1's env
    ["flushed by name", (v1: Cache) => v1.flush({ scope: "version" })],
    // v1 flushed by v2's stale-versions flush (and marked so in the registry)
    ["whose entries were flushed", (_v1: Cache, v2: Cache) => v2.flush({ keepVersions: 0 })],
  ] as const)("never from a version %s", async (_, flush) => {
    const { prefix, v1, v2, bg } = await deploys();
    await flush(v1, v2);
    await v1.getOrSet("late", () => ({ name: "written by v1 after the flush" }), { schema: User });
    await bg.settled();
    const next = cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil });
    await next.connect();
    expect(await next.getOrSet("late", async () => ({ name: "v2" }), { schema: User })).toEqual({
      name: "v2",
    });
    expect(next.stats().warm).toBe(0);
    await bg.settled();
    await Promise.all([v1.close(), v2.close(), next.close()]);
  });

  it("50 cold instances of v2 with lease, v1's entries past their freshness: served warm, the database hit once per key", async () => {
    const prefix = `warm${++environments}`;
    const bg = background();
    const v1 = cacheOn(backend, { prefix, version: "v1", waitUntil: bg.waitUntil });
    const keys = ["a", "b", "c"];
    for (const key of keys) await v1.getOrSet(key, () => ({ name: `${key} v1` }), PAST_FRESH);
    await bg.settled();
    await sleep(PAST_FRESH_WAIT);
    const instances = Array.from({ length: 50 }, () =>
      // A generous deadline: 50 instances connecting at once on a busy machine are slow, and a lease
      // command that times out lets its instance load (fail-open) — not what this test is about.
      cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil, timeoutMs: 5000 }),
    );
    await Promise.all(instances.map((cache) => cache.connect()));
    const loads = new Map<string, number>();
    const loader = (key: string) => async () => {
      loads.set(key, (loads.get(key) ?? 0) + 1);
      await sleep(300);
      return { name: `${key} v2` };
    };
    const served = await Promise.all(
      instances.flatMap((cache) =>
        keys.map((key) =>
          cache.getOrSet(key, loader(key), { schema: User, lease: "5s", staleWhileRevalidate: "1m" }),
        ),
      ),
    );
    // v1's value, or v2's for a request that came after the refresh landed: never a load of its own.
    expect(served.every((value) => /^[abc] v[12]$/.test(value.name))).toBe(true);
    expect(instances.reduce((sum, cache) => sum + cache.stats().warm, 0)).toBeGreaterThan(0);
    await bg.settled();
    expect(Object.fromEntries(loads)).toEqual({ a: 1, b: 1, c: 1 });
    const late = cacheOn(backend, { prefix, version: "v2" });
    expect(await late.get("a")).toEqual({ name: "a v2" });
    await Promise.all([v1.close(), late.close(), ...instances.map((cache) => cache.close())]);
  });

  it("50 cold instances of v2, v1's entries fresh: every instance served v1's value, no load at all", async () => {
    const prefix = `warm${++environments}`;
    const bg = background();
    const v1 = cacheOn(backend, { prefix, version: "v1", waitUntil: bg.waitUntil });
    const keys = ["a", "b", "c"];
    for (const key of keys) await v1.getOrSet(key, () => ({ name: `${key} v1` }), { schema: User });
    await bg.settled();
    await sleep(5);
    const instances = Array.from({ length: 50 }, () =>
      cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil, timeoutMs: 5000 }),
    );
    await Promise.all(instances.map((cache) => cache.connect()));
    let loads = 0;
    const loader = (key: string) => async () => ({ name: `${key} v2 ${++loads}` });
    const served = await Promise.all(
      instances.flatMap((cache) =>
        keys.map((key) => cache.getOrSet(key, loader(key), { schema: User, lease: "5s" })),
      ),
    );
    await bg.settled();
    expect(served.map((value) => value.name)).toEqual(
      instances.flatMap(() => keys.map((key) => `${key} v1`)),
    );
    expect(loads).toBe(0);
    expect(instances.reduce((sum, cache) => sum + cache.stats().warm, 0)).toBe(150);
    const late = cacheOn(backend, { prefix, version: "v2" });
    expect(await late.get("a")).toEqual({ name: "a v1" });
    await Promise.all([v1.close(), late.close(), ...instances.map((cache) => cache.close())]);
  });

  it("50 cold instances whose first request comes before the registry is known: each waits for it and adopts, no load", async () => {
    const prefix = `warm${++environments}`;
    const bg = background();
    const v1 = cacheOn(backend, { prefix, version: "v1", waitUntil: bg.waitUntil });
    await v1.getOrSet("k", () => ({ name: "v1" }), { schema: User });
    await bg.settled();
    await sleep(5);
    let loads = 0;
    const instances = Array.from({ length: 50 }, () =>
      // A generous deadline: 50 instances connecting at once on a busy machine are slow, and a lease
      // command that times out lets its instance load (fail-open) — not what this test is about.
      cacheOn(backend, { prefix, version: "v2", warmStart: true, waitUntil: bg.waitUntil, timeoutMs: 5000 }),
    );
    // No connect(): each instance's first operation is this getOrSet, racing its registration.
    const served = await Promise.all(
      instances.map((cache) =>
        cache.getOrSet(
          "k",
          async () => {
            loads++;
            await sleep(300);
            return { name: "v2" };
          },
          { schema: User, lease: "5s" },
        ),
      ),
    );
    await bg.settled();
    expect(served.every((value) => value.name === "v1")).toBe(true);
    expect(loads).toBe(0);
    // Adopted, or already adopted by another instance by the time this one read: a hit of v2's own.
    const stats = instances.map((cache) => cache.stats());
    expect(stats.reduce((sum, s) => sum + s.warm + s.hits.l2, 0)).toBe(50);
    expect(stats.reduce((sum, s) => sum + s.warm, 0)).toBeGreaterThan(0);
    await Promise.all([v1.close(), ...instances.map((cache) => cache.close())]);
  });
});

describe("warmStart options", () => {
  it("without a schema, a warm start is refused with a clear CacheError at the call", async () => {
    const cache = createCache({ redis: false, env: {}, warmStart: true });
    const error = await cache.getOrSet("k", () => 1).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CacheError);
    expect((error as CacheError).code).toBe("CONFIG");
    expect((error as Error).message).toMatch(/warmStart needs a schema/);
    expect(await cache.getOrSet("k", () => 1, { warmStart: false })).toBe(1);
    const off = createCache({ redis: false, env: {} });
    await expect(off.getOrSet("k", () => 1, { warmStart: true })).rejects.toMatchObject({ code: "CONFIG" });
  });
});

describe("warmStart, counted by Redis itself", () => {
  const counted = countedRedis("warm-stats");

  for (const name of ["node-redis", "upstash"] as const) {
    it(`${name}: a warm-start read costs Redis one command (INFO commandstats)`, async () => {
      const transport = () =>
        name === "node-redis"
          ? nodeRedis({ url: counted.redisUrl })
          : upstash({ url: counted.bridgeUrl, token: "warm-stats" });
      const common = { env: {}, prefix: `stats-${name}`, logger: { warn: () => {} } };
      const bg = background();
      const v1 = createCache({ ...common, redis: transport(), version: "v1" });
      await v1.set("user:1", { name: "v1" }, { ttl: "200ms", staleWhileRevalidate: "1m" });
      await sleep(PAST_FRESH_WAIT);
      const v2 = createCache({
        ...common,
        redis: transport(),
        version: "v2",
        warmStart: true,
        staleWhileRevalidate: "1m",
        waitUntil: bg.waitUntil,
      });
      await v2.connect();
      await counted.admin.configResetStat();
      let release = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const value = await v2.getOrSet(
        "user:1",
        async () => {
          await gate;
          return { name: "v2" };
        },
        { schema: User },
      );
      expect(value).toEqual({ name: "v1" });
      expect(await commandCalls(counted.admin)).toEqual({ mget: 1 });
      release();
      await bg.settled();
      expect(await v2.getOrSet("user:1", async () => ({ name: "never" }), { schema: User })).toEqual({
        name: "v2",
      });
      await Promise.all([v1.close(), v2.close()]);
    });

    it(`${name}: an adoption costs Redis one read and one write (INFO commandstats)`, async () => {
      const transport = () =>
        name === "node-redis"
          ? nodeRedis({ url: counted.redisUrl })
          : upstash({ url: counted.bridgeUrl, token: "warm-stats" });
      const common = { env: {}, prefix: `adopt-${name}`, logger: { warn: () => {} } };
      const bg = background();
      const v1 = createCache({ ...common, redis: transport(), version: "v1" });
      await v1.set("user:1", { name: "v1" });
      await sleep(5);
      const v2 = createCache({
        ...common,
        redis: transport(),
        version: "v2",
        warmStart: true,
        waitUntil: bg.waitUntil,
      });
      await v2.connect();
      await counted.admin.configResetStat();
      let loads = 0;
      const loader = async () => ({ name: `v2 ${++loads}` });
      const value = await v2.getOrSet("user:1", loader, { schema: User });
      await bg.settled();
      expect(value).toEqual({ name: "v1" });
      // MGET; then EVAL, which reads the key's head and writes it.
      expect(await commandCalls(counted.admin)).toEqual({ mget: 1, eval: 1, getrange: 1, set: 1 });
      expect(loads).toBe(0);
      await Promise.all([v1.close(), v2.close()]);
    });
  }
});
