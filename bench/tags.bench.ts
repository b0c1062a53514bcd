/**
 * Redis commands per request with tags, counted by Redis itself (INFO commandstats), for tiercache
 * and bentocache in one run:
 *   node --import tsx bench/tags.bench.ts
 * Starts its own redis-server on a free loopback port and stops it at the end.
 */
import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisDriver } from "bentocache/drivers/redis";
import { createClient } from "redis";
import { createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { startRedisServer } from "../test/support/redis-server.js";

const server = await startRedisServer();
const admin = createClient({ url: server.url });
await admin.connect();

/** Commands Redis executed while `work` ran, e.g. "mget×1" (scripts count their inner calls too). */
async function commandsDuring(work: () => Promise<unknown>, took?: (ms: number) => void): Promise<string> {
  await new Promise((r) => setTimeout(r, 20)); // let background work of earlier steps settle
  await admin.configResetStat();
  const started = performance.now();
  await work();
  took?.(performance.now() - started);
  await new Promise((r) => setTimeout(r, 20));
  const info = await admin.info("commandstats");
  const calls = [...info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)]
    .filter(([, name]) => name !== "info" && name !== "config|resetstat")
    .map(([, name, n]) => `${name}×${n}`);
  return calls.length ? calls.join(", ") : "none";
}

const rows: string[] = [];
const row = (...cells: string[]) => rows.push(`| ${cells.join(" | ")} |`);
const tags = ["user:1", "team:7", "plan:pro"];
const value = { id: 1, name: "Ada" };
const loader = async () => value;

try {
  // tiercache: one writer instance, and readers that are fresh instances (empty L1).
  const writer = createCache({ redis: nodeRedis({ url: server.url }), env: {}, prefix: "bench" });
  await writer.getOrSet("tagged", loader, { tags, ttl: "1h" });
  await writer.getOrSet("tagged-2", loader, { tags, ttl: "1h" });
  const l1Reader = createCache({ redis: nodeRedis({ url: server.url }), env: {}, prefix: "bench" });
  await l1Reader.get("tagged");
  const l2Reader = createCache({
    redis: nodeRedis({ url: server.url }),
    env: {},
    prefix: "bench",
    l1: false,
  });
  await l2Reader.get("tagged"); // learns the epoch and the three tag marks
  const bulk = Array.from({ length: 10_000 }, (_, i) => ({ key: `bulk:${i}`, value: i, tags: ["bulk"] }));
  for (let i = 0; i < bulk.length; i += 1000) await writer.setMany(bulk.slice(i, i + 1000));

  // bentocache with the same layers (memory L1 + Redis L2), tags on every entry.
  const connection = { host: "127.0.0.1", port: server.port };
  const bento = () =>
    new BentoCache({
      default: "tiered",
      stores: {
        tiered: bentostore()
          .useL1Layer(memoryDriver({ maxItems: 10_000 }))
          .useL2Layer(redisDriver({ connection })),
      },
    });
  const bentoWriter = bento();
  await bentoWriter.getOrSet({ key: "tagged", factory: loader, tags, ttl: "1h" });
  const bentoReader = bento();
  await bentoReader.getOrSet({ key: "tagged", factory: loader, tags, ttl: "1h" });
  const bentoL2Reader = bento();
  for (let i = 0; i < 10_000; i += 500) {
    await Promise.all(
      bulk
        .slice(i, i + 500)
        .map((e) => bentoWriter.set({ key: e.key, value: e.value, tags: ["bulk"], ttl: "1h" })),
    );
  }

  rows.push("| request | tiercache | bentocache |", "|---|---|---|");
  row(
    "L1 hit of an entry with 3 tags",
    await commandsDuring(() => l1Reader.getOrSet("tagged", loader, { tags })),
    await commandsDuring(() => bentoReader.getOrSet({ key: "tagged", factory: loader, tags })),
  );
  row(
    "L2 hit of an entry with 3 tags (fresh L1)",
    await commandsDuring(() => l2Reader.get("tagged-2")),
    await commandsDuring(() => bentoL2Reader.getOrSet({ key: "tagged", factory: loader, tags })),
  );
  let tierMs = 0;
  let bentoMs = 0;
  const tierCommands = await commandsDuring(
    () => writer.invalidateTags(["bulk"]),
    (ms) => {
      tierMs = ms;
    },
  );
  const bentoCommands = await commandsDuring(
    () => bentoWriter.deleteByTag({ tags: ["bulk"] }),
    (ms) => {
      bentoMs = ms;
    },
  );
  row(
    "invalidate a tag on 10,000 entries",
    `${tierCommands} (${tierMs.toFixed(2)} ms)`,
    `${bentoCommands} (${bentoMs.toFixed(2)} ms)`,
  );
  row(
    "next read of one of those entries (fresh instance)",
    await commandsDuring(async () => {
      const fresh = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "bench",
        l1: false,
      });
      if ((await fresh.get("bulk:42")) !== undefined) throw new Error("invalidated entry served");
      await fresh.close();
    }),
    await commandsDuring(async () => {
      const fresh = bento();
      await fresh.getOrSet({ key: "bulk:42", factory: async () => 42, tags: ["bulk"] });
      await fresh.disconnect();
    }),
  );
  await Promise.all([writer.close(), l1Reader.close(), l2Reader.close()]);
  await Promise.all([bentoWriter.disconnect(), bentoReader.disconnect(), bentoL2Reader.disconnect()]);
} finally {
  admin.destroy();
  await server.stop();
}

console.log(`\n${rows.join("\n")}\n`);
