import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { slotOf } from "../../src/slots.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { upstash } from "../../src/transports/upstash.js";
import { commandCalls, countedRedis } from "../support/command-stats.js";
import { type RedisClusterHandle, startRedisCluster } from "../support/redis-cluster.js";

describe("read batching, counted by Redis itself", () => {
  const counted = countedRedis("batch");

  const transports: Record<string, () => Transport> = {
    "node-redis": () => nodeRedis({ url: counted.redisUrl }),
    upstash: () => upstash({ url: counted.bridgeUrl, token: "batch" }),
  };

  for (const name of Object.keys(transports)) {
    it(`${name}: 100 concurrent gets of distinct keys reach Redis as one MGET`, async () => {
      const writer = createCache({ redis: transports[name]!(), env: {}, prefix: `b-${name}` });
      const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
      await writer.setMany(keys.map((key, i) => ({ key, value: i })));
      const reader = createCache({ redis: transports[name]!(), env: {}, prefix: `b-${name}`, l1: false });
      await reader.get("warm-up"); // connection set-up and once-per-instance bookkeeping happen here
      await new Promise((r) => setTimeout(r, 50));
      await counted.admin.configResetStat();
      const values = await Promise.all(keys.map((key) => reader.get(key)));
      expect(values).toEqual(keys.map((_, i) => i));
      const calls = await commandCalls(counted.admin);
      expect(calls).toEqual({ mget: 1 });
      await Promise.all([writer.close(), reader.close()]);
    });

    it(`${name}: a stampede of 1,000 getOrSet costs one loader run and two commands`, async () => {
      const cache = createCache({ redis: transports[name]!(), env: {}, prefix: `s-${name}` });
      await cache.get("warm-up");
      await new Promise((r) => setTimeout(r, 50));
      await counted.admin.configResetStat();
      let runs = 0;
      await Promise.all(Array.from({ length: 1000 }, () => cache.getOrSet("cold", async () => ++runs)));
      expect(runs).toBe(1);
      const calls = await commandCalls(counted.admin);
      // One read and one write sent: the write-back is a script (its GETRANGE and SET run inside it).
      expect(calls).toEqual({ get: 1, eval: 1, getrange: 1, set: 1 });
      await cache.close();
    });
  }
});

describe("read batching on a Redis Cluster, counted by each primary", () => {
  let cluster: RedisClusterHandle;
  let primaries: Awaited<ReturnType<typeof connect>>[] = [];
  const connect = async (port: number) => {
    const client = createClient({ url: `redis://127.0.0.1:${port}` });
    await client.connect();
    return client;
  };
  beforeAll(async () => {
    cluster = await startRedisCluster();
    primaries = await Promise.all((await cluster.primaries()).map(connect));
  }, 60_000);
  afterAll(async () => {
    for (const client of primaries) client.destroy();
    await cluster?.stop();
  });
  const transport = () => nodeRedis({ cluster: { rootNodes: cluster.addresses } });
  const resetAll = () => Promise.all(primaries.map((client) => client.configResetStat()));
  const callsPerNode = async () =>
    (await Promise.all(primaries.map(commandCalls))).map((calls) => {
      delete calls.cluster; // node-redis's slot discovery, if it ran meanwhile
      return calls;
    });

  it("100 concurrent gets are one read per slot, on the primary that owns it, and nothing else", async () => {
    const writer = createCache({ redis: transport(), env: {}, prefix: "bc", logger: { warn: () => {} } });
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    await writer.setMany(keys.map((key, i) => ({ key, value: i })));
    const reader = createCache({ redis: transport(), env: {}, prefix: "bc", l1: false });
    await reader.get("warm-up");
    await new Promise((r) => setTimeout(r, 50));
    await resetAll();
    const values = await Promise.all(keys.map((key) => reader.get(key)));
    expect(values).toEqual(keys.map((_, i) => i));
    const slots = new Set(await Promise.all(keys.map(async (key) => slotOf(await reader.keys.entry(key)))));
    const perNode = await callsPerNode();
    // Every primary, reads only: a GET per slot, or an MGET where keys share one.
    for (const calls of perNode) {
      expect(Object.keys(calls).length).toBeGreaterThan(0);
      for (const name of Object.keys(calls)) expect(["get", "mget"]).toContain(name);
    }
    expect(perNode.reduce((sum, calls) => sum + (calls.get ?? 0) + (calls.mget ?? 0), 0)).toBe(slots.size);
    await Promise.all([writer.close(), reader.close()]);
  });

  it("a stampede of 1,000 getOrSet costs one loader run and the same two commands, on one primary", async () => {
    const cache = createCache({ redis: transport(), env: {}, prefix: "sc" });
    await cache.get("warm-up");
    await new Promise((r) => setTimeout(r, 50));
    await resetAll();
    let runs = 0;
    await Promise.all(Array.from({ length: 1000 }, () => cache.getOrSet("cold", async () => ++runs)));
    expect(runs).toBe(1);
    const perNode = (await callsPerNode()).filter((calls) => Object.keys(calls).length > 0);
    expect(perNode).toEqual([{ get: 1, eval: 1, getrange: 1, set: 1 }]);
    await cache.close();
  });
});
