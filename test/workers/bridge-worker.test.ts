import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Bridge, startBridge } from "../../src/bridge/index.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TOKEN = `worker-test-${randomUUID()}`;

/** A Worker that reads and writes through the real `@upstash/redis` Cloudflare client. */
const WORKER = `
import { Redis } from "@upstash/redis/cloudflare";

export default {
  async fetch(request, env) {
    const redis = new Redis({ url: env.BRIDGE_URL, token: env.BRIDGE_TOKEN, retry: false });
    const { pathname, searchParams } = new URL(request.url);
    const key = searchParams.get("key");
    try {
      switch (pathname) {
        case "/get":
          return Response.json({ value: await redis.get(key) });
        case "/set":
          return Response.json({ result: await redis.set(key, await request.json(), { ex: 600 }) });
        case "/batch": {
          const tx = redis.multi();
          tx.hset(key + ":hash", { from: "workerd", n: 1 });
          tx.incr(key + ":counter");
          tx.incr(key + ":counter");
          return Response.json({ results: await tx.exec() });
        }
        default:
          return new Response("not found", { status: 404 });
      }
    } catch (error) {
      return Response.json({ error: String(error.message ?? error) }, { status: 500 });
    }
  },
};
`;

let redisUrl: string;
let bridge: Bridge;
let tcp: ReturnType<typeof createClient>;
let mf: Miniflare;

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
  bridge = await startBridge({ redisUrl, token: TOKEN });
  tcp = createClient({ url: redisUrl });
  await tcp.connect();
  const bundle = await build({
    stdin: { contents: WORKER, resolveDir: ROOT, sourcefile: "worker.js", loader: "js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    write: false,
    logLevel: "silent",
  });
  mf = new Miniflare({
    modules: true,
    script: bundle.outputFiles[0]!.text,
    compatibilityDate: "2025-04-01",
    bindings: { BRIDGE_URL: bridge.url, BRIDGE_TOKEN: TOKEN, UPSTASH_DISABLE_TELEMETRY: "1" },
  });
  await mf.ready;
}, 30_000);

afterAll(async () => {
  await mf?.dispose();
  await bridge?.close();
  tcp?.destroy();
});

async function worker(path: string, init?: { method: string; body: string }): Promise<unknown> {
  const res = await mf.dispatchFetch(`http://worker${path}`, init);
  const body = await res.json();
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

describe("@upstash/redis inside workerd, through the bridge", () => {
  it("reads back what Node wrote over TCP", async () => {
    const values = {
      text: "written by node — 你好 🙂",
      json: { id: 42, tags: ["a", "b"], nested: { ok: true } },
    };
    const keys = { text: `w:${randomUUID()}`, json: `w:${randomUUID()}` };
    await tcp.set(keys.text, values.text);
    await tcp.set(keys.json, JSON.stringify(values.json));
    expect(await worker(`/get?key=${encodeURIComponent(keys.text)}`)).toEqual({ value: values.text });
    expect(await worker(`/get?key=${encodeURIComponent(keys.json)}`)).toEqual({ value: values.json });
    expect(await worker(`/get?key=${encodeURIComponent(`w:${randomUUID()}`)}`)).toEqual({ value: null });
  });

  it("writes what Node reads over TCP", async () => {
    const key = `w:${randomUUID()}`;
    const value = { from: "workerd", text: "ü 🙂", list: [1, 2, 3] };
    expect(
      await worker(`/set?key=${encodeURIComponent(key)}`, { method: "POST", body: JSON.stringify(value) }),
    ).toEqual({
      result: "OK",
    });
    expect(JSON.parse((await tcp.get(key))!)).toEqual(value);
    expect(await tcp.ttl(key)).toBeGreaterThan(500);

    expect(await worker(`/batch?key=${encodeURIComponent(key)}`)).toEqual({ results: [2, 1, 2] });
    expect(await tcp.hGetAll(`${key}:hash`)).toEqual({ from: "workerd", n: "1" });
    expect(await tcp.get(`${key}:counter`)).toBe("2");
  });
});
