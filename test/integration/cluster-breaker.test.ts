import { createCluster } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cache, createCache } from "../../src/index.js";
import { slotOf } from "../../src/slots.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { BreakerState } from "../../src/types.js";
import { type RedisClusterHandle, startRedisCluster } from "../support/redis-cluster.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const TIMEOUT = 250;
/** A loaded 2-core machine may run a call's continuation late; the deadline itself is TIMEOUT. */
const MARGIN = 300;
const KEYS = Array.from({ length: 150 }, (_, i) => `item:${i}`);
const expected = (key: string) => `value of ${key}`;

/** Repeats `round` until one runs no loader, or fails after `timeoutMs`. */
async function allHits(round: () => Promise<{ loaded: Set<string> }>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { loaded } = await round();
    if (loaded.size === 0) return;
    if (Date.now() > deadline) throw new Error(`still loading ${loaded.size} keys after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * One primary frozen (SIGSTOP: its sockets stay open, nothing answers), no replica to take over and
 * a cluster-node-timeout long enough that the others never mark it failed: the cluster stays up for
 * every other slot, which is what a partitioned or stalled shard looks like from a client.
 */
describe("on a cluster with one primary frozen, the others keep serving L2 hits", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ replicas: 0, nodeTimeoutMs: 60_000 });
  }, 60_000);
  afterAll(async () => {
    for (const node of cluster?.nodes ?? []) node.thaw();
    await cluster?.stop();
  });

  it("opens no shared breaker: healthy primaries' keys hit L2, the frozen one's fall back within the deadline, and hit again once it thaws", {
    timeout: 60_000,
  }, async () => {
    const writer = createCache({
      redis: nodeRedis({ cluster: { rootNodes: cluster.addresses } }),
      env: {},
      prefix: "brk",
      logger: { warn: () => {} },
    });
    await writer.setMany(KEYS.map((key) => ({ key, value: expected(key), ttl: "1h" })));
    await writer.close();
    const breaker: BreakerState[] = [];
    const cache: Cache = createCache({
      redis: nodeRedis({ cluster: { rootNodes: cluster.addresses } }),
      env: {},
      prefix: "brk",
      l1: false, // every read goes to Redis
      timeoutMs: TIMEOUT,
      breaker: { failureThreshold: 5, resetMs: 2000 },
      logger: { warn: (m: string) => process.env.DEBUG_BRK && console.log(m) },
      onEvent: (event) => {
        if (event.type === "breaker") breaker.push(event.state);
      },
    });

    // Which primary owns each key, as the cluster says.
    const admin = createCluster({ rootNodes: [{ url: `redis://${cluster.addresses[0]}` }], RESP: 2 });
    admin.on("error", () => {});
    await admin.connect();
    const ownerPort = new Map<string, number>();
    for (const key of KEYS)
      ownerPort.set(key, admin.slots[slotOf(await cache.keys.entry(key))]?.master.port as number);
    admin.destroy();
    const victim = cluster.nodes[0] as (typeof cluster.nodes)[number];
    const onVictim = KEYS.filter((key) => ownerPort.get(key) === victim.port);
    const healthy = KEYS.filter((key) => ownerPort.get(key) !== victim.port);
    expect(onVictim.length).toBeGreaterThan(20);
    expect(healthy.length).toBeGreaterThan(60);

    /** One read of every key at once: which ones ran their loader, escaped, came back wrong, took long. */
    const round = async () => {
      const loaded = new Set<string>();
      const seen = { escaped: 0, wrong: 0, slowest: 0 };
      await Promise.all(
        KEYS.map(async (key) => {
          const started = performance.now();
          try {
            const value = await cache.getOrSet(
              key,
              async () => {
                loaded.add(key);
                return expected(key);
              },
              { ttl: "1h" },
            );
            if (value !== expected(key)) seen.wrong++;
          } catch {
            seen.escaped++;
          }
          seen.slowest = Math.max(seen.slowest, performance.now() - started);
        }),
      );
      return { loaded, ...seen };
    };

    // All L2 hits before the fault (once connected: a cold start may take longer than the deadline).
    await allHits(round, 5000);

    victim.freeze();
    const rounds: Awaited<ReturnType<typeof round>>[] = [];
    const frozenUntil = Date.now() + 3000;
    while (Date.now() < frozenUntil) {
      rounds.push(await round());
      await sleep(20);
    }
    const during = await cache.health();
    victim.thaw();

    expect(rounds.length).toBeGreaterThan(5);
    for (const r of rounds) {
      expect(r.escaped).toBe(0);
      expect(r.wrong).toBe(0);
      expect(r.slowest).toBeLessThan(TIMEOUT + MARGIN);
      // Every key of a healthy primary is an L2 hit in every round, the first included…
      expect(healthy.filter((key) => r.loaded.has(key))).toEqual([]);
      // …while the frozen primary's keys are served by their loaders.
      expect(onVictim.every((key) => r.loaded.has(key))).toBe(true);
    }
    // The circuit never opened: one node's failures are not all nodes'.
    expect(breaker).not.toContain("open");
    expect(during.topology?.nodes).toContainEqual({
      address: `127.0.0.1:${victim.port}`,
      role: "primary",
      reachable: false,
    });

    // Thawed: its keys are L2 hits again, without a restart.
    await allHits(round, 10_000);
    expect((await cache.health()).topology?.nodes.every((node) => node.reachable)).toBe(true);
    await cache.close();
  });
});
