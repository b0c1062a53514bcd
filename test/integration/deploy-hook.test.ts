import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Cache, CacheError, createCache } from "../../src/index.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const SECRET = "s3cret-deploy-hook-0123456789";
const URL_ = "https://app.example/api/cache/flush";

describe("deployHook", () => {
  let backend: Backend;
  let raw: NonNullable<Backend["raw"]>;
  /** A cold instance of the current deploy ("v2"): its first contact with Redis is the hook's flush. */
  let cache: Cache;
  const snapshot = async () => (await raw.keys("*")).sort();

  beforeAll(async () => {
    backend = await openBackend("node-redis", await isolatedRedisUrl());
    raw = backend.raw!;
  });
  beforeEach(async () => {
    await cache?.close();
    await raw.flushDb();
    // Two older deploys, then the current one: with keepVersions 1, "v0" is stale.
    for (const version of ["v0", "v1"]) {
      const old = cacheOn(backend, { prefix: undefined, version, keepVersions: 5 });
      await old.connect();
      await old.set("page", version);
      await old.set("other", version);
      await old.close();
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const current = cacheOn(backend, { prefix: undefined, version: "v2", keepVersions: 5 });
    await current.set("page", "v2");
    await current.close();
    await raw.set("session:1", "foreign");
    cache = cacheOn(backend, { prefix: undefined, version: "v2" });
  });
  afterAll(async () => {
    await cache?.close();
    await backend.close();
  });

  const post = (headers: Record<string, string> = {}, method = "POST") =>
    new Request(URL_, { method, headers });

  it.each([
    ["no Authorization header", {}],
    ["a wrong secret", { authorization: "Bearer wrong-secret-of-some-length" }],
    ["a wrong secret of the same length", { authorization: `Bearer ${SECRET.slice(0, -1)}x` }],
    ["a prefix of the secret", { authorization: `Bearer ${SECRET.slice(0, 16)}` }],
    ["the secret with another scheme", { authorization: `Basic ${SECRET}` }],
    ["the secret with text after it", { authorization: `Bearer ${SECRET}x` }],
  ])("answers 401 to %s, and deletes nothing", async (_label, headers) => {
    const before = await snapshot();
    const response = await cache.deployHook({ secret: SECRET })(post(headers));
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await response.json()).toEqual({ error: "unauthorized" });
    expect(await snapshot()).toEqual(before);
  });

  it("answers 405 to other methods, even with the right secret, and deletes nothing", async () => {
    const before = await snapshot();
    const response = await cache.deployHook({ secret: SECRET })(
      post({ authorization: `Bearer ${SECRET}` }, "GET"),
    );
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    expect(await snapshot()).toEqual(before);
  });

  it("with the right secret flushes stale versions and answers the count", async () => {
    const response = await cache.deployHook({ secret: SECRET })(post({ authorization: `Bearer ${SECRET}` }));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(await response.json()).toEqual({ scope: "stale-versions", removed: 2, versions: ["v0"] });
    expect(await raw.keys("tc:default:v0:*")).toEqual([]);
    expect(await raw.exists(["tc:default:v1:k:page", "tc:default:v2:k:page", "session:1"])).toBe(3);
  });

  it("flushes the scope it was created with; the scheme name is case-insensitive", async () => {
    const hook = cache.deployHook({ secret: SECRET, scope: "namespace" });
    const response = await hook(post({ authorization: `bearer ${SECRET}` }));
    expect(await response.json()).toEqual({ scope: "namespace", removed: 5 });
    expect(await raw.keys("tc:default:*")).toEqual(["tc:default:~e"]); // the epoch bump, for other instances' L1
    expect(await raw.get("session:1")).toBe("foreign");
  });

  it("answers 503 when Redis fails", async () => {
    const down = createCache({ env: { REDIS_URL: "redis://127.0.0.1:1" }, logger: { warn: () => {} } });
    const response = await down.deployHook({ secret: SECRET })(post({ authorization: `Bearer ${SECRET}` }));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ error: expect.stringMatching(/tiercache/) });
    await down.close();
  });

  it("refuses a missing or short secret when created", () => {
    expect(() => cache.deployHook({ secret: "" })).toThrow(CacheError);
    expect(() => cache.deployHook({ secret: "short" })).toThrow(/16 characters/);
    expect(() => cache.deployHook({ secret: undefined as unknown as string })).toThrow(CacheError);
  });
});
