import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CacheOptions, createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import {
  type NodeProcess,
  type RedisClusterHandle,
  type RedisSentinelHandle,
  startProtectedServer,
  startRedisCluster,
  startRedisSentinel,
} from "../support/redis-cluster.js";
import { makeTestCerts, type TestCerts } from "../support/tls-certs.js";

const run = promisify(execFile);
const PASSWORD = "tls-and-a-Pa55word";

/** A cache from these options writes and reads through L2 (no loader), and is healthy. */
async function roundTrips(options: CacheOptions): Promise<void> {
  const writer = createCache({ prefix: "tls", timeoutMs: 3000, logger: { warn: () => {} }, ...options });
  await writer.set("k", "over TLS");
  const reader = createCache({
    prefix: "tls",
    l1: false,
    timeoutMs: 3000,
    logger: { warn: () => {} },
    ...options,
  });
  expect(await reader.getOrSet("k", async () => "from loader")).toBe("over TLS");
  const health = await reader.health();
  expect(health.error).toBeUndefined();
  expect(health.healthy).toBe(true);
  await Promise.all([writer.close(), reader.close()]);
}

/** The same from the environment alone, in a fresh Node process that trusts the CA through NODE_EXTRA_CA_CERTS. */
async function roundTripsFromEnv(env: Record<string, string>, ca: string) {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "test/support/env-roundtrip.ts"], {
    env: { PATH: process.env.PATH, NODE_EXTRA_CA_CERTS: ca, ...env },
    timeout: 30_000,
  });
  return JSON.parse(stdout) as {
    value: string;
    healthy: boolean;
    mode: string | null;
    error?: string;
    lines: string[];
  };
}

describe("TLS (--tls-port only, --port 0) on one node, a cluster and a Sentinel set", () => {
  let certs: TestCerts;
  let single: NodeProcess & { stop(): Promise<void> };
  let cluster: RedisClusterHandle;
  let sentinel: RedisSentinelHandle;
  beforeAll(async () => {
    certs = await makeTestCerts();
    [single, cluster, sentinel] = await Promise.all([
      startProtectedServer({ tls: certs }),
      // TLS and a password on every node, cluster bus and replication over TLS too.
      startRedisCluster({ protection: { tls: certs, password: PASSWORD } }),
      startRedisSentinel({ protection: { tls: certs, password: PASSWORD } }),
    ]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([single?.stop(), cluster?.stop(), sentinel?.stop()]);
    await certs?.remove();
  });

  it("one node: nodeRedis({ tls: { ca } }) and rediss:// with tls: { ca }", async () => {
    await roundTrips({
      env: {},
      redis: nodeRedis({ host: "127.0.0.1", port: single.port, tls: { ca: certs.ca } }),
    });
    await roundTrips({
      env: {},
      redis: nodeRedis({ url: `rediss://127.0.0.1:${single.port}`, tls: { ca: certs.ca } }),
    });
  });

  it("one node from the environment: REDIS_TLS=true and rediss://, the CA in NODE_EXTRA_CA_CERTS", {
    timeout: 60_000,
  }, async () => {
    const byHost = await roundTripsFromEnv(
      { REDIS_HOST: "127.0.0.1", REDIS_PORT: String(single.port), REDIS_TLS: "true" },
      certs.caFile,
    );
    expect(byHost).toMatchObject({ value: "through L2", healthy: true });
    const byUrl = await roundTripsFromEnv({ REDIS_URL: `rediss://127.0.0.1:${single.port}` }, certs.caFile);
    expect(byUrl).toMatchObject({ value: "through L2", healthy: true });
    // Without the CA the certificate is refused: the loader's value, and the reason.
    const untrusted = await roundTripsFromEnv(
      { REDIS_URL: `rediss://127.0.0.1:${single.port}` },
      "/nonexistent",
    );
    expect(untrusted).toMatchObject({ value: "from loader", healthy: false });
    expect(untrusted.error).toMatch(/certificate/i);
  });

  it("the server's certificate is checked: an untrusted CA fails open with the reason", async () => {
    const untrusted = createCache({
      env: {},
      redis: nodeRedis({ host: "127.0.0.1", port: single.port, tls: true }),
      timeoutMs: 2000,
      logger: { warn: () => {} },
    });
    expect(await untrusted.getOrSet("k", async () => "from loader")).toBe("from loader");
    expect((await untrusted.health()).error).toMatch(/certificate/i);
    await untrusted.close();
  });

  it("a cluster: nodeRedis({ cluster, tls: { ca }, password }) reaches every primary", async () => {
    await roundTrips({
      env: {},
      redis: nodeRedis({
        cluster: { rootNodes: cluster.addresses },
        tls: { ca: certs.ca },
        password: PASSWORD,
      }),
    });
    const cache = createCache({
      env: {},
      redis: nodeRedis({
        cluster: { rootNodes: cluster.addresses },
        tls: { ca: certs.ca },
        password: PASSWORD,
      }),
      logger: { warn: () => {} },
    });
    const health = await cache.health();
    await cache.close();
    const primaries = health.topology?.nodes.filter((node) => node.role === "primary") ?? [];
    expect(primaries).toHaveLength(3);
    expect(primaries.every((node) => node.reachable)).toBe(true);
  });

  it("a cluster from the environment: REDIS_CLUSTER_NODES + REDIS_TLS=true + REDIS_PASSWORD", {
    timeout: 60_000,
  }, async () => {
    const seen = await roundTripsFromEnv(
      {
        REDIS_CLUSTER_NODES: cluster.addresses.slice(0, 2).join(","),
        REDIS_TLS: "true",
        REDIS_PASSWORD: PASSWORD,
      },
      certs.caFile,
    );
    expect(seen).toMatchObject({ value: "through L2", healthy: true, mode: "cluster" });
  });

  it("Sentinel: TLS to the Sentinels and to the primary, by option and from the environment", {
    timeout: 60_000,
  }, async () => {
    await roundTrips({
      env: {},
      redis: nodeRedis({
        sentinel: { name: sentinel.name, sentinelRootNodes: sentinel.sentinelAddresses },
        tls: { ca: certs.ca },
        password: PASSWORD,
      }),
    });
    const seen = await roundTripsFromEnv(
      {
        REDIS_SENTINELS: sentinel.sentinelAddresses.join(","),
        REDIS_SENTINEL_MASTER: sentinel.name,
        REDIS_TLS: "true",
        REDIS_PASSWORD: PASSWORD,
      },
      certs.caFile,
    );
    expect(seen).toMatchObject({ value: "through L2", healthy: true, mode: "sentinel" });
  });
});
