import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, startBridge } from "../../src/bridge/index.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { bundleForWorkerd } from "../support/workerd-bundle.js";

/**
 * The example Worker (examples/worker) bundled as wrangler would and run inside workerd through
 * miniflare, talking to real Redis through the bridge with the real `@upstash/redis` client.
 */
const root = fileURLToPath(new URL("../../", import.meta.url));
const TOKEN = "route-worker-test-token";
const COMPATIBILITY_DATE = "2026-04-01";

/**
 * Wraps the example's `fetch` to watch its `ctx.waitUntil` (still forwarding to the real one), and
 * serves `/__wait-until`: how many promises were handed over, once they have all settled.
 */
const ENTRY = `
import worker from "./examples/worker/src/index.ts";
const scheduled = [];
export default {
  async fetch(req, env, ctx) {
    if (new URL(req.url).pathname === "/__wait-until") {
      const settled = await Promise.allSettled(scheduled);
      return Response.json({ scheduled: scheduled.length, rejected: settled.filter((s) => s.status === "rejected").length });
    }
    const spy = {
      waitUntil(promise) { scheduled.push(promise); ctx.waitUntil(promise); },
      passThroughOnException() { ctx.passThroughOnException(); },
    };
    return worker.fetch(req, env, spy);
  },
};
`;

const bundleWorker = () => bundleForWorkerd(ENTRY, "worker-entry.js");

describe("examples/worker in workerd, on Redis through the bridge", () => {
  let script: string;
  let bridge: Bridge;
  let raw: ReturnType<typeof createClient>;
  const workers: Miniflare[] = [];

  /** A Worker instance: a new Miniflare is a fresh isolate, so its L1 starts empty. */
  async function instance(): Promise<Miniflare> {
    const mf = new Miniflare({
      // Listed rather than `modules: true`: miniflare's module scan refuses the SDK's deliberate
      // non-literal `import()` of optional peers (wrangler lists modules the same way).
      modules: [{ type: "ESModule", path: `${root}worker.mjs`, contents: script }],
      compatibilityDate: COMPATIBILITY_DATE,
      bindings: { UPSTASH_REDIS_REST_URL: bridge.url, UPSTASH_REDIS_REST_TOKEN: TOKEN },
    });
    workers.push(mf);
    await mf.ready;
    return mf;
  }

  const scheduled = async (mf: Miniflare) =>
    (await (await mf.dispatchFetch("http://worker.test/__wait-until")).json()) as {
      scheduled: number;
      rejected: number;
    };

  beforeAll(async () => {
    const redisUrl = await isolatedRedisUrl();
    [script, bridge] = await Promise.all([
      bundleWorker(),
      startBridge({
        redisUrl,
        token: TOKEN,
        port: 0,
        logger: { info: () => {}, warn: () => {}, error: () => {} },
      }),
    ]);
    raw = createClient({ url: redisUrl });
    await raw.connect();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((mf) => mf.dispose()));
    await bridge?.close();
    raw?.destroy();
  });

  it("MISS, then HIT; the Redis write went through ctx.waitUntil; a fresh isolate gets an L2 HIT", async () => {
    const first = await instance();
    expect(await scheduled(first)).toEqual({ scheduled: 0, rejected: 0 });

    const miss = await first.dispatchFetch("http://worker.test/products?id=7");
    expect(miss.status).toBe(200);
    expect(miss.headers.get("x-cache")).toBe("MISS");
    const product = (await miss.json()) as { id: string; renderedAt: string };
    expect(product.id).toBe("7");

    // The response did not wait for Redis: the write (and the isolate's once-only version
    // registration) went to ctx.waitUntil, and the write landed.
    expect(await scheduled(first)).toEqual({ scheduled: 2, rejected: 0 });
    expect(await raw.keys("*route:worker.test/products?id=7")).toHaveLength(1);

    const hit = await first.dispatchFetch("http://worker.test/products?id=7");
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(await hit.json()).toEqual(product);

    const second = await instance();
    const l2 = await second.dispatchFetch("http://worker.test/products?id=7");
    expect(l2.headers.get("x-cache")).toBe("HIT");
    expect(Number(l2.headers.get("age"))).toBeGreaterThanOrEqual(0);
    expect(await l2.json()).toEqual(product);
  });

  it("a POST on one isolate invalidates the product for the other", async () => {
    const [a, b] = [await instance(), await instance()];
    await (await a.dispatchFetch("http://worker.test/products?id=9")).arrayBuffer();
    await scheduled(a);
    const cached = await b.dispatchFetch("http://worker.test/products?id=9");
    expect(cached.headers.get("x-cache")).toBe("HIT");
    await cached.arrayBuffer();
    const update = await b.dispatchFetch("http://worker.test/products?id=9", { method: "POST" });
    expect(update.status).toBe(204);
    // a holds the entry in its L1 and learns of the invalidation within l1.syncMs (1 s).
    let xCache: string | null = null;
    for (let attempt = 0; attempt < 40 && xCache !== "MISS"; attempt++) {
      const res = await a.dispatchFetch("http://worker.test/products?id=9");
      xCache = res.headers.get("x-cache");
      await res.arrayBuffer();
      if (xCache !== "MISS") await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(xCache).toBe("MISS");
  });

  it("serves the health report from inside workerd", async () => {
    const mf = await instance();
    const res = await mf.dispatchFetch("http://worker.test/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const report = (await res.json()) as Record<string, unknown>;
    expect(report).toMatchObject({ healthy: true, transport: "upstash" });
    expect(JSON.stringify(report)).not.toContain(TOKEN);
  });
});
