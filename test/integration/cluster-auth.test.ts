import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheError, type CacheOptions, createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import {
  type RedisClusterHandle,
  type RedisSentinelHandle,
  startRedisCluster,
  startRedisSentinel,
} from "../support/redis-cluster.js";

const PASSWORD = "cl-Pa55:w0rd/of-the-nodes";
const SENTINEL_PASSWORD = "se-Pa55-of-the-sentinels";
const WRONG = "wr0ng-Pa55-given-by-mistake";

/** A cache whose log lines and events are kept, to look for secrets in them. */
function logged(options: CacheOptions) {
  const lines: string[] = [];
  const cache = createCache({
    prefix: "auth",
    timeoutMs: 2000, // a cold connect on a loaded machine, several nodes
    ...options,
    logger: {
      warn: (message: string) => lines.push(message),
      error: (message: string) => lines.push(message),
      info: (message: string) => lines.push(message),
    },
    onEvent: (event) => lines.push(JSON.stringify(event, Object.getOwnPropertyNames(event))),
  });
  return { cache, lines };
}

/** Works end to end: a write and a read through L2 (no loader), healthy. */
async function roundTrips(options: CacheOptions): Promise<void> {
  const { cache, lines } = logged(options);
  await cache.set("k", { ok: 1 });
  const reader = createCache({ ...options, prefix: "auth", l1: false, logger: { warn: () => {} } });
  expect(await reader.getOrSet("k", async () => ({ ok: "loader" }))).toEqual({ ok: 1 });
  expect((await cache.health()).healthy).toBe(true);
  expect(lines.filter((line) => line.includes(PASSWORD) || line.includes(SENTINEL_PASSWORD))).toEqual([]);
  await Promise.all([cache.close(), reader.close()]);
}

/**
 * A wrong or missing password: calls fail open (the loader's value), the reason is logged and in
 * health(), and no secret shows up anywhere — nor in the error thrown with failSilently: false.
 */
async function refused(options: CacheOptions, secrets: string[]): Promise<string> {
  const { cache, lines } = logged(options);
  expect(await cache.getOrSet("k", async () => "from loader")).toBe("from loader");
  const health = await cache.health();
  expect(health.healthy).toBe(false);
  const strict = createCache({ ...options, failSilently: false, logger: { warn: () => {} } });
  const thrown = await strict.get("k").then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(thrown).toBeInstanceOf(CacheError);
  const texts = [
    ...lines,
    JSON.stringify(health),
    String((thrown as Error).message),
    String((thrown as Error).stack),
    String(((thrown as Error).cause as Error | undefined)?.message),
  ];
  for (const secret of secrets) for (const text of texts) expect(text).not.toContain(secret);
  await Promise.all([cache.close(), strict.close()]);
  return [health.error, ...lines].join("\n");
}

describe("a cluster whose nodes require a password (requirepass + masterauth)", () => {
  let cluster: RedisClusterHandle;
  beforeAll(async () => {
    cluster = await startRedisCluster({ protection: { password: PASSWORD } });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("REDIS_CLUSTER_NODES + REDIS_PASSWORD: every node authenticates", async () => {
    await roundTrips({
      env: { REDIS_CLUSTER_NODES: cluster.addresses.slice(0, 2).join(","), REDIS_PASSWORD: PASSWORD },
    });
  });

  it("nodeRedis({ cluster, password }) and nodeRedis({ cluster: { password } })", async () => {
    await roundTrips({
      env: {},
      redis: nodeRedis({ cluster: { rootNodes: cluster.addresses }, password: PASSWORD }),
    });
    await roundTrips({
      env: {},
      redis: nodeRedis({ cluster: { rootNodes: cluster.addresses, password: PASSWORD } }),
    });
  });

  it("a wrong password fails open with WRONGPASS logged, and neither password shows anywhere", async () => {
    const reason = await refused(
      { env: { REDIS_CLUSTER_NODES: cluster.addresses[0] as string, REDIS_PASSWORD: WRONG } },
      [WRONG, PASSWORD],
    );
    expect(reason).toMatch(/WRONGPASS/);
  });

  it("no password fails open with NOAUTH logged", async () => {
    const reason = await refused({ env: { REDIS_CLUSTER_NODES: cluster.addresses[0] as string } }, [
      PASSWORD,
    ]);
    expect(reason).toMatch(/NOAUTH/);
  });
});

describe("Sentinel with password-protected data nodes (sentinel auth-pass) and Sentinels (requirepass)", () => {
  let sentinel: RedisSentinelHandle;
  beforeAll(async () => {
    sentinel = await startRedisSentinel({
      protection: { password: PASSWORD },
      sentinelPassword: SENTINEL_PASSWORD,
    });
  }, 60_000);
  afterAll(async () => {
    await sentinel?.stop();
  });
  const env = () => ({
    REDIS_SENTINELS: sentinel.sentinelAddresses.join(","),
    REDIS_SENTINEL_MASTER: sentinel.name,
  });

  it("REDIS_SENTINELS + REDIS_SENTINEL_MASTER + REDIS_PASSWORD + REDIS_SENTINEL_PASSWORD", async () => {
    await roundTrips({
      env: { ...env(), REDIS_PASSWORD: PASSWORD, REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD },
    });
  });

  it("nodeRedis({ sentinel: { …, sentinelPassword }, password })", async () => {
    await roundTrips({
      env: {},
      redis: nodeRedis({
        sentinel: {
          name: sentinel.name,
          sentinelRootNodes: sentinel.sentinelAddresses,
          sentinelPassword: SENTINEL_PASSWORD,
        },
        password: PASSWORD,
      }),
    });
  });

  it("a wrong data-node password fails open, logged, never shown", async () => {
    // Sentinel's client retries its connect a few times before it rejects with the reason.
    const { cache, lines } = logged({ env: { ...env(), REDIS_PASSWORD: WRONG } });
    const until = Date.now() + 10_000;
    while (!lines.some((line) => line.includes("WRONGPASS")) && Date.now() < until)
      expect(await cache.getOrSet("k", async () => "from loader")).toBe("from loader");
    await cache.close();
    const reason = await refused(
      { env: { ...env(), REDIS_PASSWORD: WRONG, REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD } },
      [WRONG, PASSWORD, SENTINEL_PASSWORD],
    );
    expect(reason).toMatch(/WRONGPASS/);
  });

  it("a wrong or missing Sentinel password fails open, logged, never shown", async () => {
    const reason = await refused(
      { env: { ...env(), REDIS_PASSWORD: PASSWORD, REDIS_SENTINEL_PASSWORD: WRONG } },
      [WRONG, PASSWORD, SENTINEL_PASSWORD],
    );
    expect(reason).toMatch(/WRONGPASS|NOAUTH|sentinel/i);
    const missing = await refused({ env: { ...env(), REDIS_PASSWORD: PASSWORD } }, [
      PASSWORD,
      SENTINEL_PASSWORD,
    ]);
    expect(missing).toMatch(/NOAUTH|sentinel/i);
  });
});
