import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import { createCache } from "../../src/index.js";
import type { CacheReport } from "../../src/report.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { RedisArg, Transport } from "../../src/transports/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { start as startProxy } from "../support/fault-proxy.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { freePort } from "../support/redis-server.js";
import { runCli as cli } from "../support/run-cli.js";

const TOKEN = "stats-bridge-token-never-printed";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What each instance did, to compare with the aggregated analytics. */
interface Expected {
  l1: number;
  l2: number;
  misses: number;
  loads: number;
}

/**
 * Production (no prefix) with versions v1, v2, v3 of namespace "shop", and "preview" with v1; tags
 * invalidated, a counter, an unversioned entry, three instances pushing analytics, foreign keys.
 */
async function seed(backend: Backend): Promise<Expected> {
  const raw = backend.raw as NonNullable<Backend["raw"]>;
  await raw.flushDb();
  const entries: Record<string, number> = { v1: 3, v2: 2, v3: 4 };
  for (const [version, count] of Object.entries(entries)) {
    const cache = cacheOn(backend, {
      timeoutMs: 5000,
      keepVersions: 5,
      prefix: undefined,
      namespace: "shop",
      version,
    });
    await cache.connect();
    for (let i = 0; i < count; i++) await cache.set(`item:${i}`, { i, body: "x".repeat(200) });
    await cache.close();
    await sleep(3); // distinct first-seen times
  }
  const current = cacheOn(backend, {
    timeoutMs: 5000,
    keepVersions: 5,
    prefix: undefined,
    namespace: "shop",
    version: "v3",
  });
  await current.set("settings", 1, { versioned: false });
  await current.increment("visits");
  await current.invalidateTags(["product:1", "product:2"]);
  await current.close();
  const preview = cacheOn(backend, {
    timeoutMs: 5000,
    keepVersions: 5,
    prefix: "preview",
    namespace: "shop",
    version: "v1",
  });
  await preview.connect();
  await preview.set("item:0", 1);
  await preview.close();
  await raw.set("etc:passwd", "foreign");
  await raw.set("session:1", "foreign");

  const total: Expected = { l1: 0, l2: 0, misses: 0, loads: 0 };
  for (let n = 0; n < 3; n++) {
    const instance = cacheOn(backend, {
      timeoutMs: 5000,
      keepVersions: 5,
      prefix: undefined,
      namespace: "shop",
      version: "v3",
      analytics: true,
      analyticsMs: 1,
    });
    for (let i = 0; i < 4 + n; i++) {
      await instance.get(`item:${i}`); // l2 for 0–3, miss beyond
      await instance.get(`item:${i}`); // l1 when found
    }
    await instance.getOrSet(`loaded:${n}`, () => n);
    await sleep(5);
    const stats = instance.stats();
    await instance.close(); // pushes what is left
    total.l1 += stats.hits.l1;
    total.l2 += stats.hits.l2;
    total.misses += stats.misses;
    total.loads += stats.loads;
  }
  return total;
}

function checkReport(report: CacheReport, expected: Expected) {
  expect(report.truncated).toBe(false);
  expect(report.environments.map((e) => e.prefix)).toEqual([null, "preview"]);
  const [production, preview] = report.environments;
  const shop = production?.namespaces.find((ns) => ns.namespace === "shop");
  const items = (v: string) => shop?.versions.find((r) => r.version === v);
  // v3 also holds the three loaded keys.
  expect(shop?.versions.map((v) => [v.version, v.keys])).toEqual([
    ["v1", 3],
    ["v2", 2],
    ["v3", 4 + 3],
  ]);
  const firstSeen = shop?.versions.map((v) => v.firstSeen as number) ?? [];
  expect(firstSeen.every((ms) => ms > Date.now() - 600_000)).toBe(true);
  expect([...firstSeen].sort()).toEqual(firstSeen);
  expect(items("v1")?.approxBytes).toBeGreaterThan(3 * 200);
  expect(shop?.unversioned.keys).toBe(1);
  expect(shop?.counters).toBe(1);
  expect(shop?.tagMarks).toBe(2);
  expect(
    preview?.namespaces.map((ns) => [ns.namespace, ns.versions.map((v) => [v.version, v.keys])]),
  ).toEqual([["shop", [["v1", 1]]]]);
  const { hour, day } = shop?.analytics ?? {};
  expect(hour).toEqual({
    hits: { l1: expected.l1, l2: expected.l2 },
    staleServed: 0,
    misses: expected.misses,
    loads: expected.loads,
    errors: 0,
    hitRate: (expected.l1 + expected.l2) / (expected.l1 + expected.l2 + expected.misses),
  });
  expect(day).toEqual(hour);
  expect(items("v3")?.analytics?.hour).toEqual(hour);
}

describe.each(["node-redis", "upstash"] as const)("cache.report() on %s", (backendName) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });

  it("counts per prefix, namespace and version, the registry, tag marks and every instance's analytics", async () => {
    const expected = await seed(backend);
    expect(expected.l1).toBeGreaterThan(0);
    const reporter = cacheOn(backend, { timeoutMs: 5000, prefix: undefined });
    const progress: number[] = [];
    const report = await reporter.report({ onProgress: (n) => progress.push(n) });
    checkReport(report, expected);
    expect(progress.at(-1)).toBe(report.scannedKeys);
    expect(report.sampledKeys).toBeGreaterThan(0);
    // Bounded: a tiny maxKeys stops early and says so.
    const partial = await reporter.report({ maxKeys: 1, sampleSize: 0 });
    expect(partial.sampledKeys).toBe(0);
    expect(partial.scannedKeys).toBeLessThan(report.scannedKeys + 1);
    await reporter.close();
  });
});

describe("analytics push", () => {
  let redisUrl: string;
  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
  });

  it("one pipeline per analyticsMs at most, off the request path, nothing when idle", async () => {
    const tcp = nodeRedis({ url: redisUrl });
    const pipelines: (readonly (readonly RedisArg[])[])[] = [];
    const recording: Transport = {
      ...tcp,
      kind: tcp.kind,
      send: (command, signal) => tcp.send(command, signal),
      pipeline: (commands, signal) => {
        if (commands.some((c) => c[0] === "HINCRBY")) pipelines.push(commands);
        return tcp.pipeline(commands, signal);
      },
      close: () => tcp.close(),
    };
    const cache = createCache({
      redis: recording,
      env: {},
      prefix: "push",
      analytics: true,
      analyticsMs: 200,
    });
    await cache.set("a", 1);
    for (let i = 0; i < 50; i++) await cache.get("a");
    expect(pipelines).toHaveLength(0); // not due yet: nothing sent during the first 200 ms
    await sleep(250);
    const handed: Promise<unknown>[] = [];
    await cache.get("a", { waitUntil: (promise) => handed.push(promise) }); // due: one push starts, in the background
    // Handed to the read's waitUntil, not awaited by it: settled, it has sent the pipeline.
    await Promise.all(handed);
    expect(pipelines).toHaveLength(1);
    for (let i = 0; i < 50; i++) await cache.get("a");
    await sleep(50);
    expect(pipelines).toHaveLength(1);
    // One HINCRBY per counter that moved (the reads so far: hits, whatever tier), one EXPIRE for the new slot.
    const reads = (commands: readonly (readonly RedisArg[])[] | undefined) =>
      (commands ?? []).filter((c) => c[0] === "HINCRBY").reduce((n, c) => n + Number(c[3]), 0);
    expect(pipelines[0]?.at(-1)?.[0]).toBe("EXPIRE");
    expect(pipelines[0]?.filter((c) => c[0] === "EXPIRE")).toHaveLength(1);
    expect(pipelines[0]?.[0]).toEqual([
      "HINCRBY",
      expect.stringMatching(/^push:tc:default:~a:\d+$/),
      expect.stringMatching(/^1:l[12]$/),
      expect.any(Number),
    ]);
    expect(reads(pipelines[0])).toBe(50); // counted when the push started: the reads before the due one
    await sleep(250);
    await cache.close(); // the 50 later hits
    expect(pipelines).toHaveLength(2);
    expect(pipelines[1]?.some((c) => c[0] === "EXPIRE")).toBe(false); // same slot: no second EXPIRE
    expect(reads(pipelines[1])).toBe(51);
    const idle = pipelines.length;
    await cache.close();
    expect(pipelines).toHaveLength(idle);
  });

  it("analytics off: nothing is pushed", async () => {
    const raw = createCache({ redis: nodeRedis({ url: redisUrl }), env: {}, prefix: "off" });
    await raw.set("a", 1);
    await raw.get("a");
    await raw.close();
    const report = await createCache({ redis: nodeRedis({ url: redisUrl }), env: {} }).report();
    const off = report.environments.find((e) => e.prefix === "off");
    expect(off?.namespaces[0]?.analytics).toBeUndefined();
    expect(off?.namespaces[0]?.internal).toBe(0);
  });
});

describe("npx tiercache stats", { timeout: 120_000 }, () => {
  let redisUrl: string;
  let backend: Backend;
  let expected: Expected;
  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
    backend = await openBackend("node-redis", redisUrl);
    expected = await seed(backend);
  });
  afterAll(async () => {
    await backend.close();
  });

  it("--json parses and matches what was written; exit 0", async () => {
    const { code, stdout } = await cli(["stats", "--json"], { REDIS_URL: redisUrl });
    expect(code).toBe(0);
    checkReport(JSON.parse(stdout) as CacheReport, expected);
  });

  it("a human table by default", async () => {
    const { code, stdout } = await cli(["stats"], { REDIS_URL: redisUrl });
    expect(code).toBe(0);
    expect(stdout).toMatch(/environment\s+namespace\s+version\s+keys\s+~memory\s+first seen/);
    expect(stdout).toMatch(/\(none\)\s+shop\s+v2\s+2\s+\S+ (B|KB)\s+\d{4}-\d\d-\d\dT/);
    expect(stdout).toMatch(/preview\s+shop\s+v1\s+1\b/);
    expect(stdout).toMatch(/\(none\)\s+shop\s+\(tag marks\)\s+2/);
    expect(stdout).toContain("last hour: ");
  });

  it("through the REST bridge too, without printing the token", async () => {
    const bridge = await startBridge({
      redisUrl,
      token: TOKEN,
      port: 0,
      logger: { info() {}, warn() {}, error() {} },
    });
    try {
      const { code, stdout, stderr } = await cli(["stats", "--json"], {
        UPSTASH_REDIS_REST_URL: bridge.url,
        UPSTASH_REDIS_REST_TOKEN: TOKEN,
      });
      expect(code).toBe(0);
      checkReport(JSON.parse(stdout) as CacheReport, expected);
      expect(stdout + stderr).not.toContain(TOKEN);
    } finally {
      await bridge.close();
    }
  });

  it("exit codes: 2 for bad usage or no Redis, 1 for an unreachable Redis", async () => {
    expect((await cli(["stats", "--bogus"], { REDIS_URL: redisUrl })).code).toBe(2);
    expect((await cli(["stats", "--max-keys", "zero"], { REDIS_URL: redisUrl })).code).toBe(2);
    const none = await cli(["stats"], {});
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no Redis configured");
    const down = await cli(["stats"], { REDIS_URL: `redis://:secret-pw@127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(1);
    expect(down.stderr).not.toContain("secret-pw");
  });
});

describe("npx tiercache stats on a slow, large database", { timeout: 120_000 }, () => {
  it("shows progress on stderr, the report on stdout", async () => {
    const redisUrl = await isolatedRedisUrl();
    const backend = await openBackend("node-redis", redisUrl);
    const raw = backend.raw as NonNullable<Backend["raw"]>;
    const cache = cacheOn(backend, { prefix: undefined, timeoutMs: 5000 });
    await cache.set("one", 1);
    await cache.close();
    const multi = raw.multi();
    for (let i = 0; i < 10_000; i++) multi.set(`tc:default:1:k:bulk:${i}`, "x");
    await multi.exec();
    const url = new URL(redisUrl);
    const proxy = await startProxy({ targetPort: Number(url.port) });
    proxy.setMode("delay", 150); // each SCAN batch takes > 150 ms: the scan takes over a second
    try {
      const { code, stdout, stderr } = await cli(["stats", "--json", "--sample", "5"], {
        REDIS_URL: `redis://127.0.0.1:${proxy.port}${url.pathname}`,
      });
      expect(code).toBe(0);
      expect(stderr).toMatch(/… [\d,]+ keys scanned/);
      const report = JSON.parse(stdout) as CacheReport;
      expect(report.environments[0]?.namespaces[0]?.versions[0]?.keys).toBe(10_001);
      expect(report.sampledKeys).toBeLessThanOrEqual(5);
    } finally {
      await proxy.close();
      await backend.close();
    }
  });
});
