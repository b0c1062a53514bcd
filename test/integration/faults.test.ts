import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import { CacheError, createCache } from "../../src/index.js";
import { slotOf } from "../../src/slots.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import type { CacheOptions } from "../../src/types.js";
import { type FaultProxy, hangingListener, start as startProxy } from "../support/fault-proxy.js";
import { type RedisClusterHandle, startRedisCluster } from "../support/redis-cluster.js";
import { freePort, type RedisServerHandle, startRedisServer } from "../support/redis-server.js";

const TIMEOUT = 150;
/** Slack for a loaded 2-core machine; a missing deadline would take seconds, not this. */
const MARGIN = 250;

const silentLogger = { warn: () => {} };

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

/** Runs every read and write a request might make; none may throw, each within the deadline. */
async function exerciseFailOpen(transport: Transport, extra: CacheOptions = {}) {
  const cache = createCache({
    redis: transport,
    env: {},
    timeoutMs: TIMEOUT,
    logger: silentLogger,
    breaker: { failureThreshold: 1000, resetMs: 60_000 },
    ...extra,
  });
  const durations: number[] = [];
  const run = async <T>(work: () => Promise<T>) => {
    const { value, ms } = await timed(work);
    durations.push(ms);
    return value;
  };
  expect(await run(() => cache.get("k"))).toBeUndefined();
  await run(() => cache.set("k", 1));
  // The value just set is served from L1 even though Redis is unusable.
  expect(await run(() => cache.get("k"))).toBe(1);
  expect(await run(() => cache.getOrSet("loaded", async () => "from loader"))).toBe("from loader");
  expect(await run(() => cache.getMany(["a", "b"]))).toEqual([undefined, undefined]);
  await run(() => cache.delete("k"));
  await run(() => cache.exists("k"));
  await run(() => cache.invalidateTags(["t"]));
  await run(() => cache.increment("n"));
  expect((await run(() => cache.health())).healthy).toBe(false);
  for (const ms of durations) expect(ms).toBeLessThan(TIMEOUT + MARGIN);
  expect(cache.stats().errors).toBeGreaterThan(0);
  await cache.close();
}

describe("Redis faults, failSilently on (default)", () => {
  let server: RedisServerHandle;
  let proxy: FaultProxy;
  let hanging: { port: number; close(): Promise<void> };
  beforeAll(async () => {
    server = await startRedisServer();
    proxy = await startProxy({ targetPort: server.port });
    hanging = await hangingListener();
  });
  afterAll(async () => {
    await proxy.close();
    await hanging.close();
    await server.stop();
  });

  it("port closed: nothing throws, every call returns fast, L1 and the loader still serve", async () => {
    const port = await freePort();
    await exerciseFailOpen(nodeRedis({ url: `redis://127.0.0.1:${port}` }));
    await exerciseFailOpen(upstash({ url: `http://127.0.0.1:${port}`, token: "t" }));
  });

  it("Redis hanging (accepts, never answers): every call returns within the deadline", async () => {
    await exerciseFailOpen(nodeRedis({ url: `redis://127.0.0.1:${hanging.port}` }));
    await exerciseFailOpen(upstash({ url: `http://127.0.0.1:${hanging.port}`, token: "t" }));
  });

  it("REST bridge up but its Redis stalling: the Upstash path also keeps its deadline", async () => {
    proxy.setMode("pass");
    const bridge = await startBridge({ redisUrl: `redis://127.0.0.1:${proxy.port}`, token: "t", port: 0 });
    try {
      proxy.setMode("delay", 2000);
      await exerciseFailOpen(upstash({ url: bridge.url, token: "t" }));
    } finally {
      proxy.setMode("pass");
      await bridge.close();
    }
  });

  it("an open breaker skips Redis: an operation adds well under 1 ms", async () => {
    const cache = createCache({
      redis: nodeRedis({ url: `redis://127.0.0.1:${hanging.port}` }),
      env: {},
      timeoutMs: 50,
      logger: silentLogger,
      breaker: { failureThreshold: 2, resetMs: 60_000 },
    });
    await cache.get("a");
    await cache.get("b");
    expect((await cache.health()).breaker).toBe("open");
    const n = 1000;
    const { ms } = await timed(async () => {
      for (let i = 0; i < n; i++) await cache.get(`miss:${i}`);
    });
    expect(ms / n).toBeLessThan(1);
    let loads = 0;
    expect(await cache.getOrSet("x", async () => ++loads)).toBe(1);
    await cache.close();
  });

  it("Redis killed mid-run and restarted: calls keep answering, then Redis serves again", async () => {
    const own = await startRedisServer();
    const cache = createCache({
      redis: nodeRedis({ url: own.url }),
      env: {},
      timeoutMs: TIMEOUT,
      logger: silentLogger,
      breaker: { failureThreshold: 3, resetMs: 200 },
    });
    await cache.set("before", "kept in L1");
    expect(await cache.get("before")).toBe("kept in L1");
    await own.stop();
    for (let i = 0; i < 20; i++) {
      const { value, ms } = await timed(() => cache.getOrSet(`during:${i}`, async () => i));
      expect(value).toBe(i);
      expect(ms).toBeLessThan(TIMEOUT + MARGIN);
    }
    expect(await cache.get("before")).toBe("kept in L1");
    const restarted = await startRedisServer({ port: own.port });
    try {
      const deadline = Date.now() + 10_000;
      let healthy = false;
      while (!healthy && Date.now() < deadline) {
        healthy = (await cache.health()).healthy;
        if (!healthy) await new Promise((r) => setTimeout(r, 100));
      }
      expect(healthy).toBe(true);
      await cache.set("after", "in Redis again");
      const other = createCache({ redis: nodeRedis({ url: own.url }), env: {}, logger: silentLogger });
      expect(await other.get("after")).toBe("in Redis again");
      await other.close();
    } finally {
      await cache.close();
      await restarted.stop();
    }
  });

  it("through the fault proxy: delay past the deadline, reset and garble all fail open", async () => {
    for (const fault of ["delay", "reset", "garble"] as const) {
      proxy.setMode("pass");
      const cache = createCache({
        redis: nodeRedis({ url: `redis://127.0.0.1:${proxy.port}` }),
        env: {},
        timeoutMs: TIMEOUT,
        logger: silentLogger,
      });
      await cache.set("p", "v");
      if (fault === "delay") proxy.setMode("delay", 1000);
      else proxy.setMode(fault);
      const reader = createCache({
        redis: nodeRedis({ url: `redis://127.0.0.1:${proxy.port}` }),
        env: {},
        timeoutMs: TIMEOUT,
        logger: silentLogger,
        prefix: cache.keys.prefix,
      });
      const { value, ms } = await timed(() => reader.getOrSet("p", async () => "loader"));
      expect(value).toBe("loader");
      expect(ms).toBeLessThan(TIMEOUT + MARGIN);
      await Promise.all([cache.close(), reader.close()]);
    }
    proxy.setMode("pass");
  });
});

describe("Redis faults, failSilently off", () => {
  it("the same faults throw a typed CacheError, promptly", async () => {
    const hanging = await hangingListener();
    const closed = await freePort();
    try {
      for (const transport of [
        nodeRedis({ url: `redis://127.0.0.1:${closed}` }),
        nodeRedis({ url: `redis://127.0.0.1:${hanging.port}` }),
        upstash({ url: `http://127.0.0.1:${hanging.port}`, token: "t" }),
      ]) {
        const cache = createCache({
          redis: transport,
          env: { CACHE_FAIL_SILENTLY: "false" },
          timeoutMs: TIMEOUT,
          logger: silentLogger,
        });
        const started = performance.now();
        const error = await cache.get("k").catch((e: unknown) => e);
        expect(performance.now() - started).toBeLessThan(TIMEOUT + MARGIN);
        expect(error).toBeInstanceOf(CacheError);
        expect(["TIMEOUT", "UNAVAILABLE"]).toContain((error as CacheError).code);
        await expect(cache.set("k", 1)).rejects.toBeInstanceOf(CacheError);
        await cache.close();
      }
    } finally {
      await hanging.close();
    }
  });
});

describe("Redis Cluster faults: a fault proxy in front of every primary", () => {
  let cluster: RedisClusterHandle;
  let proxies: FaultProxy[] = [];
  /** The primary behind each proxy, in the same order. */
  let primaryPorts: number[] = [];
  let nodeAddressMap: Record<string, { host: string; port: number }> = {};
  beforeAll(async () => {
    cluster = await startRedisCluster();
    const ports = await cluster.primaries();
    primaryPorts = ports;
    proxies = await Promise.all(ports.map((targetPort) => startProxy({ targetPort })));
    nodeAddressMap = Object.fromEntries(
      ports.map((port, i) => [
        `127.0.0.1:${port}`,
        { host: "127.0.0.1", port: (proxies[i] as FaultProxy).port },
      ]),
    );
  }, 60_000);
  afterAll(async () => {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await cluster?.stop();
  });

  /** A cluster transport that reaches every primary through its proxy, connected while they pass. */
  const connectedThroughProxies = async () => {
    for (const proxy of proxies) proxy.setMode("pass");
    const transport = nodeRedis({
      cluster: { rootNodes: proxies.map((proxy) => `127.0.0.1:${proxy.port}`), nodeAddressMap },
    });
    await transport.send(["PING"]);
    // Every primary's client is up: one key per slot range reaches each.
    await transport.pipeline(Array.from({ length: 30 }, (_, i) => ["GET", `warm:${i}`]));
    return transport;
  };

  for (const fault of ["blackhole", "delay", "reset"] as const) {
    it(`${fault} on every primary: nothing throws and every call returns within the deadline`, async () => {
      const transport = await connectedThroughProxies();
      for (const proxy of proxies) {
        if (fault === "delay") proxy.setMode("delay", TIMEOUT * 4);
        else proxy.setMode(fault);
      }
      await exerciseFailOpen(transport);
    });
  }

  it("one primary refusing connections: a batch of concurrent reads still serves the others' keys", async () => {
    const transport = await connectedThroughProxies();
    // A generous deadline: this is about which keys are served, not how fast (a loaded machine).
    const cache = createCache({
      redis: transport,
      env: {},
      timeoutMs: 2000,
      l1: false,
      logger: silentLogger,
      breaker: { failureThreshold: 1000, resetMs: 60_000 },
    });
    const keys = Array.from({ length: 30 }, (_, i) => `batch-down:${i}`);
    await cache.setMany(keys.map((key) => ({ key, value: key })));
    // Which keys the primary behind proxy 0 owns, from the cluster's own slot map.
    const down = primaryPorts[0] as number;
    const fulls = await Promise.all(keys.map((key) => cache.keys.entry(key)));
    const onDown = new Set<string>();
    const ranges = (await transport.send(["CLUSTER", "SLOTS"])) as [number, number, [string, number]][];
    for (const [i, full] of fulls.entries()) {
      const slot = slotOf(full);
      const owner = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2][1];
      if (owner === down) onDown.add(keys[i] as string);
    }
    expect(onDown.size).toBeGreaterThan(0);
    expect(onDown.size).toBeLessThan(keys.length);
    (proxies[0] as FaultProxy).setMode("reset");
    await new Promise((resolve) => setTimeout(resolve, 50));
    const { value: values, ms } = await timed(() => Promise.all(keys.map((key) => cache.get(key))));
    expect(ms).toBeLessThan(2000);
    // In the same tick: every key of the two healthy primaries, none of the refusing one's.
    expect(keys.filter((key, i) => values[i] === key)).toEqual(keys.filter((key) => !onDown.has(key)));
    expect(values.filter((value) => value !== undefined && !keys.includes(value as string))).toEqual([]);
    await cache.close();
  });

  it("one primary hanging: calls still keep the deadline, and keys on the others still round-trip", async () => {
    const transport = await connectedThroughProxies();
    const cache = createCache({
      redis: transport,
      env: {},
      timeoutMs: TIMEOUT,
      l1: false,
      logger: silentLogger,
      breaker: { failureThreshold: 1000, resetMs: 60_000 },
    });
    (proxies[0] as FaultProxy).setMode("blackhole");
    const keys = Array.from({ length: 30 }, (_, i) => `one-down:${i}`);
    const written = await Promise.all(keys.map((key) => timed(() => cache.set(key, key))));
    for (const { ms } of written) expect(ms).toBeLessThan(TIMEOUT + MARGIN);
    // One read at a time (a batch waits for its slowest node): the keys on healthy primaries are hits.
    let hits = 0;
    for (const key of keys) {
      const { value, ms } = await timed(() => cache.get(key));
      expect(ms).toBeLessThan(TIMEOUT + MARGIN);
      if (value === key) hits++;
    }
    expect(hits).toBeGreaterThan(10);
    expect(hits).toBeLessThan(keys.length);
    await cache.close();
  });
});
