import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import type { Cache } from "../../src/cache.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheEvent, CacheOptions } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { type FaultProxy, start as startProxy } from "../support/fault-proxy.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { type RedisServerHandle, startRedisServer } from "../support/redis-server.js";

type BridgeHandle = Awaited<ReturnType<typeof startBridge>>;
const BRIDGE_TOKEN = "test-token-hardening-coherence";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const SYNC_MS = 50;

/** A loader that waits until the test lets it finish, so an invalidation can land while it runs. */
function slowLoader<T>(value: T) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  return {
    loader: async () => {
      started();
      await released;
      return value;
    },
    running,
    release,
  };
}

/** Waits for `check` to hold, polling; fails with `what` after `ms`. */
async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Lets another instance's invalidation reach this instance's L1: past `syncMs`, then one request. */
async function sync(cache: Cache, key: string): Promise<void> {
  await sleep(SYNC_MS + 10);
  await cache.get(key);
  await sleep(100); // that request's background check, on a busy machine
}

describe.each(["node-redis", "upstash"] as const)("invalidation during a loader, on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  const pair = () => {
    const a = cacheOn(backend, { l1: { syncMs: SYNC_MS } });
    const b = cacheOn(backend, { prefix: a.keys.prefix, l1: { syncMs: SYNC_MS } });
    return { a, b };
  };

  type Invalidation = (cache: Cache) => Promise<unknown>;
  const cases: [string, Invalidation, unknown][] = [
    ["delete(key)", (cache) => cache.delete("k"), undefined],
    ["set(key, newer)", (cache) => cache.set("k", "newer", { tags: ["t"] }), "newer"],
    ["invalidateTags([its tag])", (cache) => cache.invalidateTags(["t"]), undefined],
  ];

  for (const [what, invalidate, expected] of cases) {
    it(`${what} on this instance wins over the loader's older value, in L1 and Redis`, async () => {
      const { a, b } = pair();
      const slow = slowLoader("old");
      const loading = a.getOrSet("k", slow.loader, { tags: ["t"] });
      await slow.running;
      await invalidate(a);
      slow.release();
      expect(await loading).toBe("old"); // the original caller may still get it
      expect(await a.get("k")).toBe(expected); // this instance's L1
      expect(await b.get("k")).toBe(expected); // Redis, as another instance reads it
      await Promise.all([a.close(), b.close()]);
    });

    it(`${what} on another instance wins over the loader's older value, in Redis and (within l1.syncMs) L1`, async () => {
      const { a, b } = pair();
      const slow = slowLoader("old");
      const loading = a.getOrSet("k", slow.loader, { tags: ["t"] });
      await slow.running;
      await invalidate(b);
      // A learns of it while its loader still runs (an epoch check riding on another read), so
      // nothing later would make it drop what the loader brings.
      await sleep(SYNC_MS + 10);
      await a.get("other");
      slow.release();
      expect(await loading).toBe("old");
      const c = cacheOn(backend, { prefix: a.keys.prefix, l1: false });
      expect(await c.get("k")).toBe(expected); // what Redis serves
      await sync(a, "k");
      expect(await a.get("k")).toBe(expected);
      await Promise.all([a.close(), b.close(), c.close()]);
    });
  }

  it("deletePattern and flush on this instance win over its loader too", async () => {
    const { a, b } = pair();
    for (const invalidate of [() => a.deletePattern("k*"), () => a.flush({ scope: "namespace" })]) {
      const slow = slowLoader("old");
      const loading = a.getOrSet("k", slow.loader);
      await slow.running;
      await invalidate();
      slow.release();
      expect(await loading).toBe("old");
      expect(await a.get("k")).toBeUndefined();
      expect(await b.get("k")).toBeUndefined();
    }
    await Promise.all([a.close(), b.close()]);
  });

  it("a compressed entry set elsewhere is dated too: the loader's write-back does not overwrite it", async () => {
    const { a, b } = pair();
    const big = "newer ".repeat(10_000); // compressed in Redis, headed by its creation time
    const slow = slowLoader("old");
    const loading = a.getOrSet("big", slow.loader);
    await slow.running;
    await b.set("big", big);
    expect(await backend.raw!.get(await a.keys.entry("big"))).toMatch(/^z:\d+:/);
    slow.release();
    expect(await loading).toBe("old");
    const c = cacheOn(backend, { prefix: a.keys.prefix, l1: false });
    expect(await c.get("big")).toBe(big);
    expect(await a.get("big")).toBe(big);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it("a lease holder's write-back (awaited, with the lease) loses to a delete elsewhere too", async () => {
    const { a, b } = pair();
    const slow = slowLoader("old");
    const loading = a.getOrSet("leased", slow.loader, { lease: true });
    await slow.running;
    await b.delete("leased");
    slow.release();
    expect(await loading).toBe("old");
    expect(await backend.raw!.get(await a.keys.lease(await a.keys.entry("leased")))).toBeNull();
    expect(await b.get("leased")).toBeUndefined();
    expect(await a.get("leased")).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });

  it("a delete leaves a tombstone that exists(), ttl() and delete()'s count do not see", async () => {
    const { a, b } = pair();
    await a.set("gone", 1);
    expect(await a.delete("gone")).toBe(1);
    expect(await backend.raw!.get(await a.keys.entry("gone"))).toMatch(/^~d:/);
    expect(await b.exists("gone")).toBe(0);
    expect(await b.ttl("gone")).toBe(-2);
    expect(await b.get("gone")).toBeUndefined();
    expect(await b.delete("gone")).toBe(0);
    // A set after the delete is newer than it: stored and served.
    await a.set("gone", 2);
    expect(await b.get("gone")).toBe(2);
    expect(await b.exists("gone")).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });

  it("a getOrSet miss still costs one read and one write command", async () => {
    const { a } = pair();
    const sent: string[] = [];
    const inner = backend.transport();
    if (!inner) throw new Error("no transport");
    const counted = cacheOn(backend, {
      prefix: a.keys.prefix,
      l1: { syncMs: 60_000 },
      redis: {
        kind: inner.kind,
        send: (command, signal) => {
          sent.push(String(command[0]));
          return inner.send(command, signal);
        },
        pipeline: (commands, signal) => {
          sent.push(...commands.map((command) => String(command[0])));
          return inner.pipeline(commands, signal);
        },
        close: () => inner.close(),
      },
    });
    await counted.get("warm"); // first contact: version registration and the epoch read
    await sleep(50);
    sent.length = 0;
    expect(await counted.getOrSet("miss", async () => "v")).toBe("v");
    expect(sent.filter((name) => name !== "HSETNX" && name !== "HGETALL")).toEqual(["GET", "EVAL"]);
    await Promise.all([a.close(), counted.close()]);
  });
});

describe.each(["node-redis", "upstash"] as const)("the epoch survives data loss, on %s", (backendName) => {
  let server: RedisServerHandle;
  let backend: Backend;
  beforeAll(async () => {
    server = await startRedisServer();
    backend = await openBackend(backendName, server.url);
    backend.raw?.on("error", () => {}); // it reconnects after the restart
  });
  afterAll(async () => {
    await backend.close();
    await server.stop();
  });

  /**
   * A has seen the epoch once and holds `k` in L1; Redis loses everything; B then invalidates once.
   * A counter restarts at the value A had seen, so A would keep serving `k` for its whole TTL.
   */
  async function afterDataLoss(lose: () => Promise<void>) {
    const options: CacheOptions = {
      l1: { syncMs: SYNC_MS },
      timeoutMs: 300,
      breaker: { failureThreshold: 5, resetMs: 50 },
    };
    const a = cacheOn(backend, options);
    const b = cacheOn(backend, { ...options, prefix: a.keys.prefix });
    await b.invalidateTags(["warm-up"]); // the epoch exists
    await sync(a, "k"); // A has seen it
    await a.set("k", "v1", { ttl: "1h" });
    await lose();
    await eventually(async () => (await b.ping().catch(() => -1)) >= 0, "Redis to answer again");
    await b.delete("k");
    await sync(a, "k");
    expect(await a.get("k")).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  }

  it("FLUSHALL: an invalidation after it still reaches every instance's L1", async () => {
    await afterDataLoss(async () => {
      await backend.raw!.flushAll();
    });
  });

  it("a restart of redis-server without persistence: an invalidation after it still reaches every L1", async () => {
    await afterDataLoss(async () => {
      const port = server.port;
      await server.stop();
      server = await startRedisServer({ port });
    });
  });

  it("flush scopes still make other instances drop their L1", async () => {
    const a = cacheOn(backend, { l1: { syncMs: SYNC_MS } });
    const b = cacheOn(backend, { prefix: a.keys.prefix, l1: { syncMs: SYNC_MS } });
    await b.invalidateTags(["warm-up"]);
    await sync(a, "k");
    await a.set("k", "v1");
    await b.flush({ scope: "namespace" });
    await sync(a, "k");
    expect(await a.get("k")).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });
});

describe.each(["node-redis", "upstash"] as const)(
  "invalidations while Redis is unreachable, on %s",
  (backendName) => {
    let server: RedisServerHandle;
    let proxy: FaultProxy;
    let direct: Backend;
    let bridge: BridgeHandle | undefined;
    const transports: Transport[] = [];
    /** A transport whose Redis is behind the proxy (for REST: the bridge's Redis is). */
    const proxied = (): Transport => {
      const transport = bridge
        ? upstash({ url: bridge.url, token: BRIDGE_TOKEN })
        : nodeRedis({ url: `redis://127.0.0.1:${proxy.port}` });
      transports.push(transport);
      return transport;
    };
    beforeAll(async () => {
      server = await startRedisServer();
      proxy = await startProxy({ targetPort: server.port });
      direct = await openBackend(backendName, server.url);
      if (backendName === "upstash")
        bridge = await startBridge({
          redisUrl: `redis://127.0.0.1:${proxy.port}`,
          token: BRIDGE_TOKEN,
          port: 0,
          logger: { info() {}, warn() {}, error() {} },
        });
    });
    beforeEach(() => {
      proxy.setMode("pass"); // whatever a failed test left behind
    });
    afterAll(async () => {
      await Promise.all(transports.map((transport) => transport.close()));
      await bridge?.close();
      await direct.close();
      await proxy.close();
      await server.stop();
    });

    it("are kept, not served, reported as deferred, and replayed once Redis answers", async () => {
      const events: CacheEvent[] = [];
      const a = cacheOn(direct, {
        redis: proxied(),
        l1: { syncMs: SYNC_MS },
        timeoutMs: 200,
        breaker: { failureThreshold: 2, resetMs: 100 },
        onEvent: (event) => {
          if (process.env.DEBUG_EVENTS) console.log(JSON.stringify(event));
          events.push(event);
        },
      });
      const b = cacheOn(direct, { prefix: a.keys.prefix, l1: { syncMs: SYNC_MS } });
      await eventually(async () => (await a.ping().catch(() => -1)) >= 0, "a first connection");
      events.length = 0;
      await a.set("k", "v1");
      await a.set("j", "v1", { tags: ["t"] });
      await b.set("s", "old");
      expect(await b.get("k")).toBe("v1");

      proxy.setMode("reset");
      expect(await a.delete("k")).toBe(1); // this instance's count: Redis did not answer
      expect(await a.invalidateTags(["t"])).toEqual({ deferred: true });
      await a.set("s", "new");
      const deferred = events.filter((event) => event.type === "deferred");
      expect(deferred.map((event) => event.type === "deferred" && event.operation)).toEqual([
        "delete",
        "invalidateTags",
        "set",
      ]);
      expect(await a.get("k")).toBeUndefined();
      expect(await a.get("j")).toBeUndefined();
      expect(await a.get("s")).toBe("new");
      // What is loaded after a deferred delete is newer than it: cached as usual, one loader run.
      await a.delete("m");
      let loads = 0;
      const loadM = () => a.getOrSet("m", async () => `m${++loads}`);
      expect([await loadM(), await loadM()]).toEqual(["m1", "m1"]);

      proxy.setMode("pass");
      await sleep(150); // past the breaker's resetMs
      // Redis still holds the old values until the replay lands: this instance must not read them back.
      expect(await a.get("k")).toBeUndefined();
      expect(await a.get("j")).toBeUndefined();
      // Requests keep coming (each is a contact that may start the replay); none may see the old values.
      await eventually(async () => {
        expect(await a.get("k")).toBeUndefined();
        expect(await a.get("j")).toBeUndefined();
        return events.some((event) => event.type === "replayed");
      }, "the replay");
      await sleep(100);
      expect(events.filter((event) => event.type === "replayed")).toHaveLength(1);

      // Every other instance sees them too: Redis no longer serves them, and L1 copies go within the bound.
      await sync(b, "k");
      expect(await b.get("k")).toBeUndefined();
      expect(await b.get("j")).toBeUndefined();
      expect(await b.get("s")).toBeUndefined(); // the failed set is replayed as a delete of the key
      expect(await a.get("k")).toBeUndefined();
      // Replayed as a delete: the new value lived in this instance's L1 only, which the replay's epoch
      // bump dropped; the old one is served nowhere.
      expect(await a.get("s")).toBeUndefined();
      await Promise.all([a.close(), b.close()]);
    });

    it("past the cap they degrade to a purge of the namespace on recovery, counters kept", async () => {
      const events: CacheEvent[] = [];
      const a = cacheOn(direct, {
        redis: proxied(),
        timeoutMs: 200,
        breaker: { failureThreshold: 2, resetMs: 100 },
        onEvent: (event) => events.push(event),
      });
      const b = cacheOn(direct, { prefix: a.keys.prefix, l1: false });
      await eventually(async () => (await a.ping().catch(() => -1)) >= 0, "a first connection");
      await b.set("kept-by-nobody", "old");
      await b.set("unversioned", "old", { versioned: false });
      expect(await b.increment("visits", 3)).toBe(3);
      proxy.setMode("reset");
      // Each key is deleted in both key spaces: 2 × 5,001 pending deletes, over MAX_PENDING (10,000).
      const many = Array.from({ length: 5_001 }, (_, i) => `bulk:${i}`);
      await a.delete(...many);
      // Which keys is no longer known: until the purge lands, nothing Redis holds from before is served.
      proxy.setMode("pass");
      await sleep(150);
      await eventually(async () => {
        expect(await a.get("kept-by-nobody")).toBeUndefined();
        return events.some((event) => event.type === "replayed");
      }, "the purge");
      expect(events.find((event) => event.type === "replayed")).toMatchObject({ purged: true });
      expect(await b.get("kept-by-nobody")).toBeUndefined();
      expect(await b.get("unversioned", { versioned: false })).toBeUndefined();
      expect(await b.increment("visits")).toBe(4);
      // Entries written after the purge are served again.
      await b.set("after", 1);
      expect(await a.get("after")).toBe(1);
      await Promise.all([a.close(), b.close()]);
    });

    it("with failSilently off the call throws, and the invalidation is still kept and replayed", async () => {
      const events: CacheEvent[] = [];
      const a = cacheOn(direct, {
        redis: proxied(),
        failSilently: false,
        timeoutMs: 200,
        breaker: { failureThreshold: 2, resetMs: 100 },
        onEvent: (event) => {
          if (process.env.DEBUG_EVENTS) console.log(JSON.stringify(event));
          events.push(event);
        },
      });
      const b = cacheOn(direct, { prefix: a.keys.prefix, l1: false });
      await eventually(async () => (await a.ping().catch(() => -1)) >= 0, "a first connection");
      await a.set("k", "v1");
      proxy.setMode("reset");
      await expect(a.delete("k")).rejects.toThrow();
      proxy.setMode("pass");
      await sleep(150);
      await eventually(async () => {
        // Thrown while Redis is still reconnecting (failSilently is off), but never the old value.
        expect(await a.get("k").catch(() => undefined)).toBeUndefined();
        return events.some((event) => event.type === "replayed");
      }, "the replay");
      expect(await b.get("k")).toBeUndefined();
      await Promise.all([a.close(), b.close()]);
    });
  },
);
