import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, startBridge } from "../../src/bridge/index.js";
import { isolatedRedisUrl } from "../support/redis-db.js";
import { bundleForWorkerd } from "../support/workerd-bundle.js";

const TOKEN = "upstash-fetch-worker-token";

/** tiercache's own REST client inside workerd, bundled as wrangler would (no @upstash/redis installed is needed). */
const WORKER = `
import { upstash } from "tiercache/upstash";

export default {
  async fetch(request, env) {
    const redis = upstash({ url: env.URL, token: env.TOKEN });
    try {
      await redis.send(["SET", "worker:k", "from workerd ✓"]);
      const get = await redis.send(["GET", "worker:k"]);
      const pipeline = await redis.pipeline([["GET", "worker:k"], ["PING"]]);
      return Response.json({ get, pipeline });
    } catch (error) {
      return Response.json({ error: String(error.message ?? error) }, { status: 500 });
    }
  },
};
`;

let bridge: Bridge;
const workers: Miniflare[] = [];

beforeAll(async () => {
  bridge = await startBridge({ redisUrl: await isolatedRedisUrl(), token: TOKEN });
}, 30_000);

afterAll(async () => {
  await Promise.all(workers.map((mf) => mf.dispose()));
  await bridge?.close();
});

describe("upstash() over fetch inside workerd", () => {
  // Before 2024-11-11 workerd rejects any fetch carrying a `cache` field; later dates accept no-store.
  for (const compatibilityDate of ["2024-09-23", "2026-04-01"]) {
    it(`speaks the REST protocol on compatibility date ${compatibilityDate}`, {
      timeout: 60_000,
    }, async () => {
      const mf = new Miniflare({
        modules: true,
        script: await bundleForWorkerd(WORKER, "worker.js"),
        compatibilityDate,
        bindings: { URL: bridge.url, TOKEN },
      });
      workers.push(mf);
      const res = await mf.dispatchFetch("http://worker/");
      const body = await res.json();
      expect(body).toEqual({ get: "from workerd ✓", pipeline: ["from workerd ✓", "PONG"] });
    });
  }
});
