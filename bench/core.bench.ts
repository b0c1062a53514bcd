/**
 * Core speed, in one run, as ratios against raw clients and a peer (bentocache):
 *   npm run bench:core        (= node --import tsx bench/core.bench.ts)
 * Starts its own redis-server on a free loopback port and stops it at the end.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { gzipSync } from "node:zlib";
import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisDriver } from "bentocache/drivers/redis";
import { build } from "esbuild";
import { LRUCache } from "lru-cache";
import { createClient } from "redis";
import { Bench } from "tinybench";
import { createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { startRedisServer } from "../test/support/redis-server.js";

const server = await startRedisServer();
const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(" | ")} |`);
/** Sustained rate, runs over total time: the mean of per-run rates would overweight the fast runs. */
const opsPerSec = (bench: Bench, name: string) => {
  const task = bench.tasks.find((t) => t.name === name);
  const result = task?.result as { period?: number } | undefined;
  return result?.period ? 1000 / result.period : Number.NaN;
};
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

try {
  const raw = createClient({ url: server.url });
  await raw.connect();
  const value = {
    id: 42,
    name: "Ada Lovelace",
    roles: ["admin", "author"],
    updatedAt: "2024-01-01T00:00:00Z",
  };

  // --- L1 hits -------------------------------------------------------------------------------
  // Quiet: a loop of awaited L1 hits starves I/O, so the once-a-second background epoch check can
  // time out; its warning lines would be console I/O inside the measurement.
  const quiet = { warn: () => {} };
  const tiered = createCache({
    redis: nodeRedis({ url: server.url }),
    env: {},
    prefix: "bench",
    ttl: "1h",
    logger: quiet,
  });
  await tiered.set("user:42", value);
  const lru = new LRUCache<string, object>({ max: 1000 });
  lru.set("user:42", value);
  const bento = new BentoCache({
    default: "tiered",
    stores: {
      tiered: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 1000 }))
        .useL2Layer(redisDriver({ connection: { host: "127.0.0.1", port: server.port } })),
    },
  });
  await bento.set({ key: "user:42", value, ttl: "1h" });
  const loader = async () => value;

  const l1 = new Bench({ time: 1500, warmupTime: 300 });
  l1.add("raw lru-cache.get", () => {
    lru.get("user:42");
  })
    // The floor of any promise-returning API: the same lookup, awaited.
    .add("await lru-cache.get (async floor)", async () => {
      await lru.get("user:42");
    })
    .add("tiercache get (L1 hit)", async () => {
      await tiered.get("user:42");
    })
    .add("tiercache getOrSet (L1 hit)", async () => {
      await tiered.getOrSet("user:42", loader);
    })
    .add("bentocache get (L1 hit)", async () => {
      await bento.get({ key: "user:42" });
    })
    .add("bentocache getOrSet (L1 hit)", async () => {
      await bento.getOrSet({ key: "user:42", factory: loader, ttl: "1h" });
    });
  await l1.run();
  const lruOps = opsPerSec(l1, "raw lru-cache.get");
  rows.push(
    "### L1 hit",
    "",
    "| operation | ops/s | vs raw lru-cache.get | vs bentocache |",
    "|---|---:|---:|---:|",
  );
  for (const [name, peer] of [
    ["raw lru-cache.get", ""],
    ["await lru-cache.get (async floor)", ""],
    ["tiercache get (L1 hit)", "bentocache get (L1 hit)"],
    ["tiercache getOrSet (L1 hit)", "bentocache getOrSet (L1 hit)"],
    ["bentocache get (L1 hit)", ""],
    ["bentocache getOrSet (L1 hit)", ""],
  ] as const) {
    const ops = opsPerSec(l1, name);
    row(
      name,
      fmt(ops),
      `${(lruOps / ops).toFixed(1)}× slower`,
      peer ? `${(ops / opsPerSec(l1, peer)).toFixed(2)}× faster` : "",
    );
  }

  // --- L2 hits: 100 concurrent reads of distinct keys ----------------------------------------
  const keys = Array.from({ length: 100 }, (_, i) => `item:${i}`);
  const l2Only = createCache({
    redis: nodeRedis({ url: server.url }),
    env: {},
    prefix: "bench",
    l1: false,
    ttl: "1h",
  });
  await l2Only.setMany(keys.map((key) => ({ key, value: { ...value, key } })));
  const rawKeys = await Promise.all(keys.map((key) => l2Only.keys.entry(key) as string));
  const bentoL2 = new BentoCache({
    default: "l2",
    stores: {
      l2: bentostore().useL2Layer(redisDriver({ connection: { host: "127.0.0.1", port: server.port } })),
    },
  });
  await Promise.all(keys.map((key) => bentoL2.set({ key, value: { ...value, key }, ttl: "1h" })));

  // Each operation is network-bound and the machine's two cores are shared with redis-server, so the
  // contenders run in alternating rounds (drift and GC hit all alike) and the median round counts.
  const contenders: [string, () => Promise<unknown>][] = [
    ["raw node-redis: 100 concurrent GET", () => Promise.all(rawKeys.map((key) => raw.get(key)))],
    ["tiercache (L1 off): 100 concurrent get", () => Promise.all(keys.map((key) => l2Only.get(key)))],
    ["bentocache (L2 only): 100 concurrent get", () => Promise.all(keys.map((key) => bentoL2.get({ key })))],
  ];
  const rounds = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
  for (let round = 0; round < 7; round++) {
    for (const [name, batch] of contenders) {
      const started = performance.now();
      let batches = 0;
      while (performance.now() - started < 400) {
        await batch();
        batches++;
      }
      if (round > 0) rounds.get(name)!.push(batches / ((performance.now() - started) / 1000)); // round 0 warms up
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const rawOps = median(rounds.get(contenders[0]![0])!);
  rows.push("", "### L2 hit over TCP (one op = 100 concurrent reads of distinct keys)", "");
  rows.push("Median of 6 alternating 400 ms rounds (after one warm-up round).", "");
  rows.push("| operation | batches/s | reads/s | vs raw node-redis |", "|---|---:|---:|---:|");
  for (const [name] of contenders) {
    const ops = median(rounds.get(name)!);
    row(name, fmt(ops), fmt(ops * 100), `${(ops / rawOps).toFixed(2)}×`);
  }

  const commandsPer100 = async (read: () => Promise<unknown>) => {
    await raw.configResetStat();
    await read();
    const stats = await raw.info("commandstats");
    const calls = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)]
      .filter(([, name]) => name !== "info" && name !== "config")
      .map(([, name, calls]) => `${name}×${calls}`);
    return calls.join(", ");
  };
  rows.push("", "### Redis commands per 100 concurrent reads", "");
  rows.push("| client | commands |", "|---|---|");
  row("raw node-redis", await commandsPer100(() => Promise.all(rawKeys.map((key) => raw.get(key)))));
  row("tiercache (L1 off)", await commandsPer100(() => Promise.all(keys.map((key) => l2Only.get(key)))));
  row(
    "bentocache (L2 only)",
    await commandsPer100(() => Promise.all(keys.map((key) => bentoL2.get({ key })))),
  );

  await Promise.all([tiered.close(), l2Only.close(), bento.disconnect(), bentoL2.disconnect()]);
  raw.destroy();

  // --- Cold start and bundle size --------------------------------------------------------------
  execFileSync("npm", ["run", "build", "--silent"], { stdio: "ignore" });
  const importMs = (code: string) => {
    const samples: number[] = [];
    for (let i = 0; i < 11; i++) {
      const out = spawnSync(
        process.execPath,
        ["--input-type=module", "-e", `const t=performance.now();${code};console.log(performance.now()-t)`],
        { encoding: "utf8" },
      );
      samples.push(Number(out.stdout.trim()));
    }
    return samples.sort((a, b) => a - b)[5]!.toFixed(1);
  };
  rows.push("", "### Cold start: median of 11 fresh `node` processes, time to import", "");
  rows.push("| import | ms |", "|---|---:|");
  row("`tiercache` (core)", importMs(`await import("./dist/index.js")`));
  row(
    "`tiercache` + `tiercache/redis`",
    importMs(`await import("./dist/index.js");await import("./dist/transports/node-redis.js")`),
  );
  row(
    "`tiercache` + `tiercache/upstash`",
    importMs(`await import("./dist/index.js");await import("./dist/transports/upstash.js")`),
  );

  const bundle = await build({
    entryPoints: ["src/index.ts"],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    external: ["@upstash/redis"],
    metafile: true,
    write: false,
  });
  const code = bundle.outputFiles[0]!.contents;
  const output = Object.values(bundle.metafile.outputs)[0]!;
  const byPackage = new Map<string, number>();
  for (const [path, info] of Object.entries(output.inputs)) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1] ?? "tiercache (src)";
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + info.bytesInOutput);
  }
  rows.push("", "### Core bundle for workerd (esbuild, minified, `@upstash/redis` external)", "");
  rows.push(`Total: ${fmt(code.length)} B minified, **${fmt(gzipSync(code).length)} B gzipped**.`, "");
  rows.push("| part | minified bytes |", "|---|---:|");
  for (const [pkg, bytes] of [...byPackage].sort((a, b) => b[1] - a[1])) row(pkg, fmt(bytes));
} finally {
  await server.stop();
}

console.log(`\n${rows.join("\n")}\n`);
