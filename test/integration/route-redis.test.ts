import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { route } from "../../src/http/route.js";
import { createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

/** Two caches on one Redis = two function instances: each has its own L1, they share L2. */
describe("route on real Redis (node-redis)", () => {
  let redisUrl: string;
  let raw: ReturnType<typeof createClient>;
  const transports: Transport[] = [];

  function instance() {
    const transport = nodeRedis({ url: redisUrl });
    transports.push(transport);
    return createCache({ redis: transport, env: {}, prefix: "routes", logger: { warn: () => {} } });
  }

  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
    raw = createClient({ url: redisUrl });
    await raw.connect();
  });
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    raw.destroy();
  });

  it("a second instance, with an empty L1, gets the first one's response from Redis, bytes intact", async () => {
    const body = Uint8Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256);
    const handler = vi.fn(
      async () =>
        new Response(body, {
          headers: { "content-type": "application/octet-stream", "x-made-by": "handler" },
        }),
    );
    const first = route(instance(), handler, { ttl: "1m" });
    const second = route(instance(), handler, { ttl: "1m" });

    const miss = await first(new Request("https://app.test/blob?b=2&a=1"));
    expect(miss.headers.get("x-cache")).toBe("MISS");
    await miss.arrayBuffer();
    expect(await raw.keys("routes:tc:*route:app.test/blob?a=1&b=2")).toHaveLength(1);

    const hit = await second(new Request("https://app.test/blob?a=1&b=2"));
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(hit.headers.get("x-made-by")).toBe("handler");
    expect(hit.headers.get("etag")).toBe(miss.headers.get("etag"));
    expect(new Uint8Array(await hit.arrayBuffer())).toEqual(body);
    expect(handler).toHaveBeenCalledTimes(1);
  });

  it("a POST through one instance invalidates the route's tags for every instance", async () => {
    let version = 1;
    const handler = async (req: Request) => {
      if (req.method === "POST") {
        version++;
        return new Response(null, { status: 204 });
      }
      return Response.json({ version });
    };
    const options = { tags: ["todos"], ttl: "1m" };
    const a = route(instance(), handler, options);
    const b = route(instance(), handler, options);
    await a(new Request("https://app.test/todos"));
    expect((await b(new Request("https://app.test/todos"))).headers.get("x-cache")).toBe("HIT");
    await a(new Request("https://app.test/todos", { method: "POST", body: "{}" }));
    // b holds the entry in its L1; the tag's invalidation time in Redis still turns it into a miss
    // once b checks (within l1.syncMs), so ask until it does.
    await vi.waitFor(
      async () => {
        const after = await b(new Request("https://app.test/todos"));
        expect(await after.json()).toEqual({ version: 2 });
      },
      { timeout: 5000, interval: 100 },
    );
  });
});

describe("route HTTP semantics across instances on real Redis (node-redis)", () => {
  let redisUrl: string;
  const transports: Transport[] = [];

  function instance() {
    const transport = nodeRedis({ url: redisUrl });
    transports.push(transport);
    return createCache({
      redis: transport,
      env: {},
      prefix: "routes2",
      logger: { warn: () => {} },
      l1: { syncMs: 50 },
    });
  }

  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
  });
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
  });

  const lang = (l: string, init: RequestInit = {}) =>
    new Request("https://app.test/greeting", { ...init, headers: { "accept-language": l } });

  it("a fresh instance learns a URL's Vary from Redis and finds each variant; a POST elsewhere drops them all", async () => {
    let version = 1;
    const handler = vi.fn(async (req: Request) => {
      if (req.method === "POST") {
        version++;
        return new Response(null, { status: 204 });
      }
      return new Response(`${req.headers.get("accept-language")} v${version}`, {
        headers: { vary: "Accept-Language", "cache-control": "s-maxage=60" },
      });
    });
    const a = route(instance(), handler);
    await (await a(lang("en"))).text();
    await (await a(lang("fr"))).text();
    expect(handler).toHaveBeenCalledTimes(2);

    const b = route(instance(), handler);
    for (const l of ["fr", "en", "fr"]) {
      const res = await b(lang(l));
      expect([res.headers.get("x-cache"), await res.text()]).toEqual(["HIT", `${l} v1`]);
    }
    expect(handler).toHaveBeenCalledTimes(2);

    await a(lang("en", { method: "POST" }));
    for (const l of ["en", "fr"]) {
      await vi.waitFor(
        async () => {
          expect(await (await b(lang(l))).text()).toBe(`${l} v2`);
        },
        { timeout: 5000, interval: 50 },
      );
    }
  });

  it("the response's s-maxage and stale-while-revalidate set the Redis TTL", async () => {
    const raw = createClient({ url: redisUrl });
    await raw.connect();
    try {
      const serve = route(
        instance(),
        async () =>
          new Response("x", { headers: { "cache-control": "s-maxage=30, stale-while-revalidate=90" } }),
      );
      await (await serve(new Request("https://app.test/ttl"))).text();
      const [key] = await raw.keys("routes2:tc:*route:app.test/ttl");
      expect(key).toBeDefined();
      const pttl = await raw.pTTL(key as string);
      expect(pttl).toBeGreaterThan(110_000);
      expect(pttl).toBeLessThanOrEqual(120_000);
    } finally {
      raw.destroy();
    }
  });
});
