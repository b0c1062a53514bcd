import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startBridge } from "../../src/bridge/server.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { start as startProxy } from "../support/fault-proxy.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { runCli as cli } from "../support/run-cli.js";

const PASSWORD = "pa55-w0rd-never-printed";
const TOKEN = "bridge-token-never-printed";

// Each test spawns Node with tsx a few times: slow on a loaded machine, hence the generous timeout.
describe("npx tiercache flush / health", { timeout: 120_000 }, () => {
  let redisUrl: string;
  let backend: Backend;
  let raw: NonNullable<Backend["raw"]>;
  const env = (vars: Record<string, string> = {}) => ({
    REDIS_URL: redisUrl,
    REDIS_CACHE_VERSION: "v2",
    ...vars,
  });

  /** Deploys v0 then v1 (each writes `page` and `other`) in production and in preview, plus a foreign key. */
  const seed = async () => {
    for (const prefix of [undefined, "preview"]) {
      for (const version of ["v0", "v1"]) {
        const cache = cacheOn(backend, { prefix, version, keepVersions: 5 });
        await cache.connect();
        await cache.set("page", version);
        await cache.set("other", version);
        await cache.close();
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
    }
    await raw.set("session:1", "foreign");
  };

  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
    backend = await openBackend("node-redis", redisUrl);
    raw = backend.raw!;
  });
  beforeEach(async () => {
    await raw.flushDb();
    await seed();
  });
  afterAll(async () => {
    await backend.close();
  });

  it("--dry-run counts stale keys, deletes and registers nothing", async () => {
    const before = (await raw.keys("*")).sort();
    const registry = await raw.hGetAll("tc:versions");
    const { code, stdout, stderr } = await cli(["flush", "--dry-run"], env());
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^Would flush 2 keys \(scope stale-versions\) in \d+ ms — versions v0$/);
    expect(stderr).toMatch(
      /scope stale-versions \(dry run\), environment production, namespace default, version v2/,
    );
    expect((await raw.keys("*")).sort()).toEqual(before);
    expect(await raw.hGetAll("tc:versions")).toEqual(registry);
  });

  it("flush removes the stale versions of this environment only, and prints one summary line", async () => {
    const { code, stdout } = await cli(["flush"], env());
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Flushed 2 keys \(scope stale-versions\) in \d+ ms — versions v0\n$/);
    expect(await raw.keys("tc:default:v0:*")).toEqual([]);
    expect(await raw.keys("preview:tc:default:v0:*")).toHaveLength(2);
    expect(await raw.keys("tc:default:v1:*")).toHaveLength(2);
    // Run again: nothing left to do.
    expect((await cli(["flush"], env())).stdout).toMatch(/^Flushed 0 keys \(scope stale-versions\)/);
  });

  it("--scope and --keep, with REDIS_ENV=preview, never touch production or foreign keys", async () => {
    const production = (await raw.keys("tc:*")).sort();
    const kept = await cli(["flush", "--keep", "0"], env({ REDIS_ENV: "preview" }));
    expect(kept.stdout).toMatch(/^Flushed 4 keys \(scope stale-versions\) in \d+ ms — versions v0, v1$/m);
    const all = await cli(["flush", "--scope=environment"], env({ REDIS_ENV: "preview" }));
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/^Flushed \d+ keys \(scope environment\) in \d+ ms$/m);
    expect(await raw.keys("preview:tc:*")).toEqual(["preview:tc:default:~e"]); // the epoch bump, for other instances' L1
    expect((await raw.keys("tc:*")).sort()).toEqual(production);
    expect(await raw.get("session:1")).toBe("foreign");
  });

  it("exits 2 on bad usage or configuration, before touching Redis", async () => {
    const before = (await raw.keys("*")).sort();
    const badScope = await cli(["flush", "--scope", "everything"], env());
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toMatch(/unknown --scope "everything"[\s\S]*usage: tiercache flush/);
    expect((await cli(["flush", "--keep", "-1"], env())).code).toBe(2);
    expect((await cli(["flush", "--nope"], env())).code).toBe(2);
    const badEnv = await cli(["flush"], env({ REDIS_CACHE_VERSION: "a:b" }));
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/REDIS_CACHE_VERSION/);
    const noRedis = await cli(["flush"], { REDIS_CACHE_VERSION: "v2" });
    expect(noRedis.code).toBe(2);
    expect(noRedis.stderr).toMatch(/no Redis configured/);
    expect((await raw.keys("*")).sort()).toEqual(before);
  });

  it("exits 1 when Redis cannot be reached, without printing the password", async () => {
    const result = await cli(["flush"], env({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:1/0` }));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/unreachable/);
    expect(result.stdout + result.stderr).not.toContain(PASSWORD);
  });

  it("prints progress lines during a long flush", async () => {
    const batch = raw.multi();
    for (let i = 0; i < 30_000; i++) batch.set(`tc:default:v0:k${i}`, "x");
    await batch.execAsPipeline();
    const url = new URL(redisUrl);
    const proxy = await startProxy({ targetPort: Number(url.port) });
    try {
      proxy.setMode("delay", 50); // each round trip ≥ 50 ms: 30 batches take more than a second
      const result = await cli(
        ["flush"],
        env({ REDIS_URL: `redis://127.0.0.1:${proxy.port}${url.pathname}` }),
      );
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/^ {2}… \d+ keys removed$/m);
      expect(result.stdout).toMatch(/^Flushed 30002 keys \(scope stale-versions\)/);
    } finally {
      await proxy.close();
    }
  });

  it("reads the Upstash variables too, and never prints the token", async () => {
    const bridge = await startBridge({ redisUrl, token: TOKEN, port: 0 });
    try {
      const vars = {
        UPSTASH_REDIS_REST_URL: bridge.url,
        UPSTASH_REDIS_REST_TOKEN: TOKEN,
        REDIS_CACHE_VERSION: "v2",
      };
      const result = await cli(["flush", "--scope", "version"], vars);
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/via upstash/);
      expect(result.stdout).toMatch(/^Flushed 0 keys \(scope version\) in \d+ ms — versions v2$/m);
      expect(result.stdout + result.stderr).not.toContain(TOKEN);
      const health = await cli(["health"], vars);
      expect(health.code).toBe(0);
      expect(JSON.parse(health.stdout)).toMatchObject({ healthy: true, transport: "upstash", version: "v2" });
      expect(health.stdout).not.toContain(TOKEN);
    } finally {
      await bridge.close();
    }
  });

  it("health exits 0 with the JSON report when healthy, 1 when Redis is unreachable", async () => {
    const healthy = await cli(["health"], env());
    expect(healthy.code).toBe(0);
    expect(JSON.parse(healthy.stdout)).toMatchObject({
      healthy: true,
      transport: "node-redis",
      version: "v2",
    });
    const down = await cli(["health"], env({ REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:1/0` }));
    expect(down.code).toBe(1);
    expect(JSON.parse(down.stdout)).toMatchObject({ healthy: false });
    expect(down.stdout + down.stderr).not.toContain(PASSWORD);
  });
});
