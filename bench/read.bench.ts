/**
 * The read path (issue 11), in one run, as ratios against the raw clients and @unkey/cache:
 *   node --import tsx bench/read.bench.ts          (BENCH_PART=l2|l1|rest|cost to run one part)
 * Starts its own redis-server and bridge (in its own process) on free loopback ports, stops both.
 */
import { loadavg } from "node:os";
import { createCache as createUnkey, DefaultStatefulContext, Namespace } from "@unkey/cache";
import { MemoryStore } from "@unkey/cache/stores";
import { Redis } from "@upstash/redis";
import { createClient } from "redis";
import { createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { upstash } from "../src/transports/upstash.js";
import { startRedisServer } from "../test/support/redis-server.js";
import { startBridgeProcess } from "./support/bridge-process.js";
import { alternate, alternateSync, fmt } from "./support/rounds.js";
import { NodeRedisStore } from "./support/unkey-node-redis-store.js";

const PART = process.env.BENCH_PART;
/** Alternating rounds per contender (the first warms up) and their length. */
const ROUNDS = {
  rounds: Number(process.env.BENCH_ROUNDS ?? 25),
  roundMs: Number(process.env.BENCH_ROUND_MS ?? 150),
};
const part = (name: string) => !PART || PART.split(",").includes(name);
const TOKEN = "bench-token-0123456789"; // the bridge takes 16 characters or more
const N = 100;
const HOUR = 3_600_000;
const quiet = { warn: () => {} };
/** ~200 bytes of JSON per value. */
const sample = (i: number) => ({
  id: i,
  name: "Ada Lovelace",
  email: "ada@example.com",
  roles: ["admin", "author"],
  plan: "pro",
  updatedAt: "2024-01-01T00:00:00Z",
  bio: "Analyst, metaphysician and founder of scientific computing.",
  key: `item:${i}`,
});
const keys = Array.from({ length: N }, (_, i) => `item:${i}`);
const mustNotLoad = async (): Promise<never> => {
  throw new Error("loader ran: the bench expects every key in Redis");
};
const out: string[] = [];
const line = (...text: string[]) => out.push(...text);
const row = (...cells: (string | number)[]) => out.push(`| ${cells.join(" | ")} |`);
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

line(`Load average (1 min) before the run: ${loadavg()[0]!.toFixed(2)}; Node ${process.version}.`, "");
const server = await startRedisServer();
// node-redis 6 gives every command a 5 s AbortSignal.timeout by default, ~6× slower at 100 concurrent GETs;
// every raw client here turns it off, as tiercache's transport does.
const raw = createClient({ url: server.url, commandOptions: { timeout: 0 } });
await raw.connect();
const unkeyCtx = new DefaultStatefulContext();

/**
 * BENCH_BASELINE=<a directory holding src/ of another commit, with package.json, tsconfig.json and a
 * node_modules link>: a cache of that code too, measured in the same rounds (before/after in one run).
 */
async function baselineCache(options: { l1?: false }, rest?: { url: string; token: string }) {
  const dir = process.env.BENCH_BASELINE;
  if (!dir) return undefined;
  const { createCache: create } = await import(`${dir}/src/index.js`);
  const redis = rest
    ? (await import(`${dir}/src/transports/upstash.js`)).upstash(rest)
    : (await import(`${dir}/src/transports/node-redis.js`)).nodeRedis({ url: server.url });
  return create({
    redis,
    env: {},
    prefix: "bench",
    ttl: "1h",
    logger: quiet,
    ...options,
  }) as ReturnType<typeof createCache>;
}

/** Counts what Redis itself saw while `work` ran (INFO commandstats), minus the counting commands. */
async function commands(work: () => Promise<unknown>): Promise<Map<string, number>> {
  await raw.configResetStat();
  await work();
  const stats = await raw.info("commandstats");
  return new Map(
    [...stats.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)]
      .filter(([, name]) => name !== "info" && name !== "config|resetstat" && name !== "config")
      .map(([, name, calls]) => [name!, Number(calls)]),
  );
}
const show = (counted: Map<string, number>) =>
  [...counted].map(([name, calls]) => `${name}×${calls}`).join(", ") || "none";

try {
  // --- L2 hits over TCP ------------------------------------------------------------------------
  if (part("l2")) {
    const tc = createCache({
      redis: nodeRedis({ url: server.url }),
      env: {},
      prefix: "bench",
      l1: false,
      ttl: "1h",
      logger: quiet,
    });
    await tc.setMany(keys.map((key, i) => ({ key, value: sample(i) })));
    const fulls = keys.map((key) => tc.keys.entry(key) as string);
    const unkey = createUnkey({
      item: new Namespace<object>(unkeyCtx, {
        stores: [new NodeRedisStore(raw)],
        fresh: HOUR,
        stale: 2 * HOUR,
      }),
    });
    await Promise.all(keys.map((key, i) => unkey.item.set(key, sample(i))));
    const check = await Promise.all(keys.map((key) => unkey.item.swr(key, mustNotLoad)));
    if (check.some((r) => r.err || r.val === undefined))
      throw new Error("@unkey/cache did not read its values");

    const baseline = await baselineCache({ l1: false });
    const baselineRows = baseline
      ? ([
          [
            "baseline getOrSet (L1 off)",
            () => Promise.all(keys.map((key) => baseline.getOrSet(key, mustNotLoad))),
          ],
          ["baseline get (L1 off)", () => Promise.all(keys.map((key) => baseline.get(key)))],
        ] as const)
      : [];
    const contenders = [
      ...baselineRows,
      ["raw node-redis: one MGET of 100 keys", () => raw.mGet(fulls)],
      ["raw node-redis: 100 concurrent GET", () => Promise.all(fulls.map((k) => raw.get(k)))],
      [
        "raw node-redis: 100 concurrent GET + JSON.parse",
        () => Promise.all(fulls.map((k) => raw.get(k).then((t) => (t ? JSON.parse(t) : t)))),
      ],
      ["tiercache getOrSet (L1 off)", () => Promise.all(keys.map((key) => tc.getOrSet(key, mustNotLoad)))],
      ["tiercache get (L1 off)", () => Promise.all(keys.map((key) => tc.get(key)))],
      [
        "@unkey/cache swr (node-redis store)",
        () => Promise.all(keys.map((key) => unkey.item.swr(key, mustNotLoad))),
      ],
    ] as const;
    const rates = await alternate(contenders, ROUNDS);
    await baseline?.close();
    const rawGet = rates.get("raw node-redis: 100 concurrent GET")!.perSecond;
    const peer = rates.get("@unkey/cache swr (node-redis store)")!.perSecond;
    line("### L2 hit over TCP: 100 concurrent reads of distinct keys present in Redis (L1 off)", "");
    line(
      "| operation | reads/s | vs raw concurrent GET | vs @unkey/cache | client CPU per read |",
      "|---|---:|---:|---:|---:|",
    );
    for (const [name] of contenders) {
      const { perSecond, cpuMicros } = rates.get(name)!;
      row(
        name,
        fmt(perSecond * N),
        ratio(perSecond, rawGet),
        ratio(perSecond, peer),
        `${(cpuMicros / N).toFixed(2)} µs`,
      );
    }
    const perBatch = await commands(() => Promise.all(keys.map((key) => tc.getOrSet(key, mustNotLoad))));
    line("", `Redis commands per batch of 100 tiercache getOrSet: ${show(perBatch)}.`, "");
    await tc.close();
  }

  // --- L1 hits ---------------------------------------------------------------------------------
  if (part("l1")) {
    const tc = createCache({
      redis: nodeRedis({ url: server.url }),
      env: {},
      prefix: "bench",
      ttl: "1h",
      logger: quiet,
    });
    await tc.set("user:42", sample(42));
    const unkey = createUnkey({
      user: new Namespace<object>(unkeyCtx, {
        stores: [new MemoryStore({ persistentMap: new Map() }), new NodeRedisStore(raw)],
        fresh: HOUR,
        stale: 2 * HOUR,
      }),
    });
    await unkey.user.set("user:42", sample(42));
    const loader = async () => sample(42);
    const plain = new Map([["user:42", sample(42)]]);
    const baseline = await baselineCache({});
    await baseline?.get("user:42");
    const baselineRows = baseline
      ? ([
          ["baseline get", () => baseline.get("user:42")],
          ["baseline getOrSet", () => baseline.getOrSet("user:42", loader)],
        ] as const)
      : [];
    const contenders = [
      ...baselineRows,
      ["await Map.get (the floor of a promise API)", async () => plain.get("user:42")],
      ["tiercache get", () => tc.get("user:42")],
      ["tiercache getOrSet", () => tc.getOrSet("user:42", loader)],
      ["@unkey/cache get", () => unkey.user.get("user:42")],
      ["@unkey/cache swr", () => unkey.user.swr("user:42", loader)],
    ] as const;
    const rates = await alternateSync(contenders, ROUNDS);
    line("### L1 hit (one key, awaited, a macrotask turn every 1,000 calls)", "");
    line("| operation | ops/s | vs @unkey/cache | CPU per op |", "|---|---:|---:|---:|");
    const peerOf: Record<string, string> = {
      "tiercache get": "@unkey/cache get",
      "tiercache getOrSet": "@unkey/cache swr",
    };
    for (const [name] of contenders) {
      const peer = peerOf[name];
      const { perSecond, cpuMicros } = rates.get(name)!;
      row(
        name,
        fmt(perSecond),
        peer ? ratio(perSecond, rates.get(peer)!.perSecond) : "",
        `${(cpuMicros * 1000).toFixed(0)} ns`,
      );
    }
    line("");
    await Promise.all([tc.close(), baseline?.close()]);
  }

  // --- L2 hits over REST (the bridge) ----------------------------------------------------------
  if (part("rest")) {
    const bridge = await startBridgeProcess(server.url, TOKEN);
    const realFetch = globalThis.fetch;
    let requests = 0;
    globalThis.fetch = (...args: Parameters<typeof fetch>) => {
      requests++;
      return realFetch(...args);
    };
    try {
      const tcRest = createCache({
        redis: upstash({ url: bridge.url, token: TOKEN }),
        env: {},
        prefix: "bench",
        l1: false,
        ttl: "1h",
        logger: quiet,
      });
      const tcTcp = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "bench",
        l1: false,
        ttl: "1h",
        logger: quiet,
      });
      await tcTcp.setMany(keys.map((key, i) => ({ key, value: sample(i) })));
      const fulls = keys.map((key) => tcTcp.keys.entry(key) as string);
      const rest = new Redis({
        url: bridge.url,
        token: TOKEN,
        enableTelemetry: false,
        automaticDeserialization: false,
        enableAutoPipelining: false,
      });
      const unkeyRest = createUnkey({
        item: new Namespace<object>(unkeyCtx, {
          // @unkey/cache's own store, on @upstash/redis's defaults (auto-pipelining on).
          stores: [
            new (await import("@unkey/cache/stores")).UpstashRedisStore({
              redis: new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false }),
            }),
          ],
          fresh: HOUR,
          stale: 2 * HOUR,
        }),
      });
      await Promise.all(keys.map((key, i) => unkeyRest.item.set(key, sample(i))));
      await new Promise((r) => setTimeout(r, 200)); // its sets are fire-and-forget
      const baseline = await baselineCache({ l1: false }, { url: bridge.url, token: TOKEN });
      const baselineRows = baseline
        ? ([
            [
              "baseline getOrSet over REST (L1 off)",
              () => Promise.all(keys.map((key) => baseline.getOrSet(key, mustNotLoad))),
              N,
            ],
          ] as const)
        : [];
      const contenders = [
        ...baselineRows,
        ["raw node-redis: one GET (TCP, one key)", () => raw.get(fulls[0]!), 1],
        ["raw @upstash/redis: one GET (one request, one key)", () => rest.get(fulls[0]!), 1],
        ["raw @upstash/redis: one MGET of 100 keys", () => rest.mget(...fulls), N],
        [
          "tiercache getOrSet over REST (L1 off)",
          () => Promise.all(keys.map((key) => tcRest.getOrSet(key, mustNotLoad))),
          N,
        ],
        [
          "tiercache getOrSet over TCP (L1 off)",
          () => Promise.all(keys.map((key) => tcTcp.getOrSet(key, mustNotLoad))),
          N,
        ],
        [
          "@unkey/cache swr (UpstashRedisStore, auto-pipelining)",
          () => Promise.all(keys.map((key) => unkeyRest.item.swr(key, mustNotLoad))),
          N,
        ],
      ] as const;
      const rates = await alternate(
        contenders.map(([name, op]) => [name, op] as const),
        ROUNDS,
      );
      line("### L2 hit over REST: the same 100 concurrent reads through the bridge (separate process)", "");
      line("| operation | ops/s | reads/s | ms per op |", "|---|---:|---:|---:|");
      for (const [name, , reads] of contenders) {
        const rate = rates.get(name)!.perSecond;
        row(name, fmt(rate), fmt(rate * reads), (1000 / rate).toFixed(3));
      }
      const ms = (name: string) => 1000 / rates.get(name)!.perSecond;
      line(
        "",
        `Per-request overhead of REST over TCP: ${(ms("raw @upstash/redis: one GET (one request, one key)") - ms("raw node-redis: one GET (TCP, one key)")).toFixed(3)} ms for one GET; ` +
          `${(ms("tiercache getOrSet over REST (L1 off)") - ms("tiercache getOrSet over TCP (L1 off)")).toFixed(3)} ms for a batch of 100 tiercache reads (one request).`,
      );
      requests = 0;
      const perBatch = await commands(() =>
        Promise.all(keys.map((key) => tcRest.getOrSet(key, mustNotLoad))),
      );
      line(
        "",
        `Per batch of 100 tiercache getOrSet over REST: ${requests} HTTP request(s), Redis saw ${show(perBatch)}.`,
      );
      requests = 0;
      const unkeyBatch = await commands(() =>
        Promise.all(keys.map((key) => unkeyRest.item.swr(key, mustNotLoad))),
      );
      line(
        `Per batch of 100 @unkey/cache swr over REST: ${requests} HTTP request(s), Redis saw ${show(unkeyBatch)}.`,
        "",
      );
      await Promise.all([tcRest.close(), tcTcp.close(), baseline?.close()]);
    } finally {
      globalThis.fetch = realFetch;
      await bridge.stop();
    }
  }

  // --- Cost per instance -----------------------------------------------------------------------
  if (part("cost")) {
    line("### Redis commands per instance", "");
    line("| traffic | syncMs | commands | per second |", "|---|---:|---|---:|");
    for (const syncMs of [100, 1000, 10_000]) {
      const tc = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "cost",
        ttl: "1h",
        l1: { syncMs },
        logger: quiet,
      });
      await tc.set("user:42", sample(42));
      await tc.get("user:42"); // an L1 hit: its epoch check (the first) settles before the count starts
      await new Promise((r) => setTimeout(r, 50));
      const seconds = syncMs >= 10_000 ? 20 : 5;
      let hits = 0;
      const counted = await commands(async () => {
        const until = performance.now() + seconds * 1000;
        // A warm server: batches of L1 hits with I/O turns between them, as between requests.
        while (performance.now() < until) {
          for (let i = 0; i < 1000; i++) await tc.get("user:42");
          hits += 1000;
          await new Promise((r) => setTimeout(r, 1));
        }
      });
      const total = [...counted.values()].reduce((a, b) => a + b, 0);
      row(
        `L1 hits only (${fmt(hits / seconds)}/s for ${seconds} s)`,
        syncMs,
        show(counted),
        (total / seconds).toFixed(2),
      );
      await tc.close();
    }
    const cold = async (version: string) => {
      const tc = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "cost",
        version,
        ttl: "1h",
        logger: quiet,
      });
      const counted = await commands(async () => {
        await tc.getOrSet("user:42", async () => sample(42));
        await new Promise((r) => setTimeout(r, 100)); // registration and the write run in the background
      });
      await tc.close();
      return counted;
    };
    row(
      "cold start, first getOrSet (new version: registers, loads, writes)",
      1000,
      show(await cold("v2")),
      "",
    );
    row("cold start, first getOrSet (known version, value in Redis)", 1000, show(await cold("v2")), "");
    line("");
  }
} finally {
  raw.destroy();
  await server.stop();
}

console.log(`\n${out.join("\n")}\n`);
