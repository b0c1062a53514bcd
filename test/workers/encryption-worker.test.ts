import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, startBridge } from "../../src/bridge/index.js";
import { createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { bundleForWorkerd } from "../support/workerd-bundle.js";

/**
 * Encryption inside workerd (Web Crypto there, not Node's), through the bridge with the real
 * `@upstash/redis` client; a Node cache on TCP with the same key reads what the Worker sealed.
 */
const root = fileURLToPath(new URL("../../", import.meta.url));
const TOKEN = "encryption-worker-test-token";
const KEY = randomBytes(32).toString("base64");
const SECRET = "sealed-in-workerd-0815";

const ENTRY = `
import { createCache } from "tiercache";
let cache;
export default {
  async fetch(req, env, ctx) {
    cache ??= createCache({ env, prefix: "wk", logger: { warn() {} } });
    const url = new URL(req.url);
    const key = url.searchParams.get("key");
    if (url.pathname === "/set") {
      await cache.set(key, await req.json());
      return Response.json({ ok: true });
    }
    const value = await cache.get(key, { waitUntil: (p) => ctx.waitUntil(p) });
    return Response.json({ value: value ?? null, stats: cache.stats() });
  },
};
`;

describe("encryption in workerd, on Redis through the bridge", () => {
  let bridge: Bridge;
  let raw: ReturnType<typeof createClient>;
  let redisUrl: string;
  let script: string;
  const workers: Miniflare[] = [];

  async function instance(): Promise<Miniflare> {
    const mf = new Miniflare({
      modules: [{ type: "ESModule", path: `${root}worker.mjs`, contents: script }],
      compatibilityDate: "2026-04-01",
      bindings: {
        UPSTASH_REDIS_REST_URL: bridge.url,
        UPSTASH_REDIS_REST_TOKEN: TOKEN,
        CACHE_ENCRYPTION_KEY: KEY,
        UPSTASH_DISABLE_TELEMETRY: "1",
      },
    });
    workers.push(mf);
    await mf.ready;
    return mf;
  }

  beforeAll(async () => {
    redisUrl = await isolatedRedisUrl();
    [script, bridge] = await Promise.all([
      bundleForWorkerd(ENTRY, "encryption-worker.js"),
      startBridge({ redisUrl, token: TOKEN, port: 0, logger: { info() {}, warn() {}, error() {} } }),
    ]);
    raw = createClient({ url: redisUrl });
    await raw.connect();
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((mf) => mf.dispose()));
    await bridge?.close();
    raw?.destroy();
  });

  it("seals in workerd, opens in another isolate and in Node; Redis holds no plaintext", async () => {
    const writer = await instance();
    const set = await writer.dispatchFetch("http://worker.test/set?key=profile", {
      method: "POST",
      body: JSON.stringify({ secret: SECRET }),
    });
    expect(set.status).toBe(200);
    const [full] = await raw.keys("wk:tc:*profile");
    const stored = (await raw.get(full as string)) as string;
    expect(stored).toMatch(/^\[2,/);
    expect(stored).not.toContain(SECRET);

    const reader = await instance();
    const read = (await (await reader.dispatchFetch("http://worker.test/get?key=profile")).json()) as {
      value: unknown;
      stats: { hits: { l2: number } };
    };
    expect(read.value).toEqual({ secret: SECRET });
    expect(read.stats.hits.l2).toBe(1);

    const node = createCache({
      env: { CACHE_ENCRYPTION_KEY: KEY },
      prefix: "wk",
      redis: nodeRedis({ url: redisUrl }),
    });
    expect(await node.get("profile")).toEqual({ secret: SECRET });
    await node.set("from-node", "sealed by Node");
    const back = (await (await reader.dispatchFetch("http://worker.test/get?key=from-node")).json()) as {
      value: unknown;
    };
    expect(back.value).toBe("sealed by Node");
    await node.close();
  });
});
