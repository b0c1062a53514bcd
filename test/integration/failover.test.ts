import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cache, createCache } from "../../src/index.js";
import { type NodeRedisOptions, nodeRedis } from "../../src/transports/node-redis.js";
import {
  type RedisClusterHandle,
  type RedisSentinelHandle,
  startRedisCluster,
  startRedisSentinel,
} from "../support/redis-cluster.js";

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const TIMEOUT = 250;
/** A loaded 2-core machine may run a call's continuation late; the deadline itself is TIMEOUT. */
const MARGIN = 300;
const KEYS = Array.from({ length: 200 }, (_, i) => `page:${i}`);
const expected = (key: string) => `value of ${key}`;

function instance(
  options: NodeRedisOptions,
  prefix: string,
  extra: Parameters<typeof createCache>[0] = {},
): Cache {
  return createCache({
    redis: nodeRedis(options),
    env: {},
    prefix,
    l1: false, // every read goes to Redis: what survives the failover is L2's doing
    timeoutMs: TIMEOUT,
    breaker: { failureThreshold: 5, resetMs: 200 },
    logger: { warn: () => {} },
    ...extra,
  });
}

/**
 * Reads every key through getOrSet in waves of 40 concurrent calls until stopped, recording what
 * escaped, what came back wrong and how long each call took.
 */
function underLoad(cache: Cache) {
  const seen = { calls: 0, escaped: 0, wrong: 0, slowest: 0 };
  let stopped = false;
  const done = (async () => {
    let wave = 0;
    while (!stopped) {
      const keys = KEYS.slice((wave * 40) % KEYS.length).slice(0, 40);
      wave++;
      await Promise.all(
        keys.map(async (key) => {
          const started = performance.now();
          try {
            const value = await cache.getOrSet(key, async () => expected(key), { ttl: "1h" });
            if (value !== expected(key)) seen.wrong++;
          } catch {
            seen.escaped++;
          }
          seen.calls++;
          seen.slowest = Math.max(seen.slowest, performance.now() - started);
        }),
      );
      await sleep(5);
    }
  })();
  return {
    seen,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** Polls until every key is an L2 hit again (no loader call), or fails after `timeoutMs`. */
async function hitsResume(cache: Cache, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    let loads = 0;
    await Promise.all(
      KEYS.map((key) =>
        cache.getOrSet(key, async () => {
          loads++;
          return expected(key);
        }),
      ),
    );
    if (loads === 0) return Date.now() - started;
    await sleep(200);
  }
  throw new Error(`L2 hits did not resume within ${timeoutMs} ms`);
}

describe("failover on a Redis Cluster: a primary is SIGKILLed under load", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("fails open within the deadline, serves no wrong value, and L2 hits resume after the promotion", {
    timeout: 60_000,
  }, async () => {
    const options = { cluster: { rootNodes: cluster.addresses } };
    const writer = instance(options, "fo");
    await writer.setMany(KEYS.map((key) => ({ key, value: expected(key), ttl: "1h" })));
    // Replicated before the kill, so the promoted replica has every entry.
    for (const port of await cluster.primaries())
      await run("redis-cli", ["-p", String(port), "WAIT", "1", "2000"]);
    await writer.close();

    const reader = instance(options, "fo");
    expect(await hitsResume(reader, 2000)).toBeLessThan(2000); // all hits before the fault
    const before = reader.stats().hits.l2;
    const load = underLoad(reader);
    await sleep(300);
    const [victimPort] = await cluster.primaries();
    const victim = cluster.nodes.find((node) => node.port === victimPort);
    await victim?.kill();
    const atKill = reader.stats().hits.l2;
    await sleep(500);
    const during = await reader.health();
    // Before any promotion: the two live primaries' keys are still L2 hits.
    const whileDown = reader.stats().hits.l2 - atKill;
    await cluster.settled(20_000);
    await sleep(500);
    await load.stop();

    expect(load.seen.calls).toBeGreaterThan(200);
    expect(load.seen.escaped).toBe(0);
    expect(load.seen.wrong).toBe(0);
    expect(load.seen.slowest).toBeLessThan(TIMEOUT + MARGIN);
    expect(whileDown).toBeGreaterThan(0);
    // While it was down, health() said which primary is unreachable.
    expect(during.topology?.nodes).toContainEqual({
      address: `127.0.0.1:${victimPort}`,
      role: "primary",
      reachable: false,
    });
    // Without a restart of the application, every key is an L2 hit again.
    await hitsResume(reader, 15_000);
    expect(reader.stats().hits.l2).toBeGreaterThan(before);
    const after = await reader.health();
    expect(after.healthy).toBe(true);
    const primaries = (after.topology?.nodes ?? []).filter((node) => node.role === "primary");
    expect(primaries.map((node) => node.address)).not.toContain(`127.0.0.1:${victimPort}`);
    expect(primaries.every((node) => node.reachable)).toBe(true);
    await reader.close();
  });
});

describe("failover under Sentinel: the primary is SIGKILLed under load", () => {
  let sentinel: RedisSentinelHandle;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  }, 60_000);
  afterAll(async () => {
    await sentinel?.stop();
  });

  it("REDIS_SENTINELS + REDIS_SENTINEL_MASTER configure it: values round-trip through the primary", async () => {
    const fromEnv = createCache({
      env: { REDIS_SENTINELS: sentinel.sentinelAddresses.join(","), REDIS_SENTINEL_MASTER: sentinel.name },
      prefix: "env",
      logger: { warn: () => {} },
    });
    await fromEnv.set("from-env", 42);
    const direct = createClient({ url: `redis://127.0.0.1:${sentinel.primary.port}` });
    await direct.connect();
    expect(await direct.exists(await fromEnv.keys.entry("from-env"))).toBe(1);
    direct.destroy();
    expect((await fromEnv.health()).topology?.primary).toBe(`127.0.0.1:${sentinel.primary.port}`);
    await fromEnv.close();
  });

  it("fails open within the deadline, serves no wrong value, and L2 hits resume on the elected replica", {
    timeout: 60_000,
  }, async () => {
    const options = { sentinel: { name: sentinel.name, sentinelRootNodes: sentinel.sentinelAddresses } };
    const writer = instance(options, "so");
    await writer.setMany(KEYS.map((key) => ({ key, value: expected(key), ttl: "1h" })));
    await run("redis-cli", ["-p", String(sentinel.primary.port), "WAIT", "1", "2000"]);
    await writer.close();

    const reader = instance(options, "so");
    await hitsResume(reader, 2000);
    const health = await reader.health();
    expect(health.topology).toMatchObject({
      mode: "sentinel",
      primary: `127.0.0.1:${sentinel.primary.port}`,
    });
    const load = underLoad(reader);
    await sleep(300);
    await sentinel.primary.kill();
    const deadline = Date.now() + 20_000;
    while ((await sentinel.currentPrimary()) !== sentinel.replica.port) {
      if (Date.now() > deadline) throw new Error("no replica was elected");
      await sleep(100);
    }
    await sleep(500);
    await load.stop();

    expect(load.seen.calls).toBeGreaterThan(200);
    expect(load.seen.escaped).toBe(0);
    expect(load.seen.wrong).toBe(0);
    expect(load.seen.slowest).toBeLessThan(TIMEOUT + MARGIN);
    await hitsResume(reader, 15_000);
    const after = await reader.health();
    expect(after.healthy).toBe(true);
    expect(after.topology).toMatchObject({ mode: "sentinel", primary: `127.0.0.1:${sentinel.replica.port}` });
    await reader.close();
  });
});
