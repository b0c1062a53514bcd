/**
 * A deploy under load, with and without `warmStart` (issue 14):
 *   node --import tsx bench/deploy.bench.ts [--seconds 10] [--instances 10] [--db-ms 20] [--ttl 60]
 * 1,000 hot keys, 200 concurrent callers in a closed loop spread over `instances` cache instances
 * (each = one function instance: its own L1, its own connection). Version v1 has been serving for
 * a long time: its entries are seeded into Redis with ages spread uniformly over the TTL (`ttl`
 * seconds), so they expire and reload at a steady rate, as in production. After a warm-up on v1 the
 * version switches: v1's instances stop, as many cold instances of v2 take the callers over (their
 * first requests race their own registry read, as a real cold start does). Reported for the first
 * `seconds` after the switch: database loads (all; and those a caller waited for) and latency. The
 * "no deploy" row keeps v1 serving through the same window: the loads any window has anyway.
 * The "database" is a loader that sleeps `db-ms`. Starts its own redis-server on a free loopback
 * port over TCP (node-redis) and stops it at the end.
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { z } from "zod";
import { serializeEntry } from "../src/entry.js";
import { type Cache, createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import type { Transport } from "../src/transports/types.js";
import { startRedisServer } from "../test/support/redis-server.js";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    instances: { type: "string", default: "10" },
    "db-ms": { type: "string", default: "20" },
    ttl: { type: "string", default: "60" },
  },
});
const WINDOW_MS = Number(args.seconds) * 1000;
const INSTANCES = Number(args.instances);
const KEYS = 1000;
const CALLERS = 200;
const DB_MS = Number(args["db-ms"]);
const TTL_MS = Number(args.ttl) * 1000;
const WARMUP_MS = 3000;
const Item = z.object({ id: z.number(), name: z.string(), version: z.string() });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Mode {
  name: string;
  warmStart: boolean;
  lease: boolean;
  /** The new instances `await connect()` before serving (Next.js instrumentation): the registry is known. */
  connectFirst?: boolean;
  /** No version switch: v1 keeps serving (the baseline of expiry loads). */
  noDeploy?: boolean;
}

interface Outcome {
  loads: number;
  waitedLoads: number;
  requests: number;
  errors: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  worstSecondP99: number;
  warm: number;
}

async function runMode(redisUrl: string, mode: Mode, prefix: string): Promise<Outcome> {
  const transports: Transport[] = [];
  const instance = (version: string): Cache => {
    const transport = nodeRedis({ url: redisUrl });
    transports.push(transport);
    return createCache({
      redis: transport,
      env: {},
      prefix,
      version,
      ttl: TTL_MS,
      warmStart: mode.warmStart,
      logger: { warn: () => {} },
    });
  };
  let switchedAt = Number.POSITIVE_INFINITY;
  let loads = 0;
  let waitedLoads = 0;
  const loader = (key: number, version: string) => async () => {
    if (performance.now() >= switchedAt) loads++;
    await sleep(DB_MS);
    return { id: key, name: `item ${key}`, version };
  };

  // v1 before the deploy, long in service: each entry written at a uniformly random point of the
  // last TTL (as the loader would have: same value, same layout), then steady traffic.
  let caches = Array.from({ length: INSTANCES }, () => instance("v1"));
  let version = "v1";
  await Promise.all(caches.map((cache) => cache.connect()));
  const seed = caches[0] as Cache;
  const seeding = transports[0] as Transport;
  const now = Date.now();
  const writes = await Promise.all(
    Array.from({ length: KEYS }, async (_, key) => {
      const created = now - Math.floor(Math.random() * TTL_MS);
      const fresh = created + TTL_MS;
      const value = { id: key, name: `item ${key}`, version: "v1" };
      const text = serializeEntry({ value, created, fresh, stale: fresh, tags: [] }, JSON.stringify(value));
      return ["SET", await seed.keys.entry(`item:${key}`), text, "PX", Math.max(1, fresh - now)];
    }),
  );
  await seeding.pipeline(writes);
  await sleep(10); // v2 is first seen strictly later

  const latencies: { at: number; ms: number }[] = [];
  let errors = 0;
  let stop = false;
  const caller = async (n: number) => {
    while (!stop) {
      // Each request arrives as its own event: L1 hits resolve without I/O and would starve the timers.
      await new Promise((resolve) => setImmediate(resolve));
      const cache = caches[n % caches.length] as Cache;
      const v = version;
      const key = Math.floor(Math.random() * KEYS);
      const started = performance.now();
      let loadedAt = Number.POSITIVE_INFINITY;
      const load = loader(key, v);
      try {
        await cache.getOrSet(
          `item:${key}`,
          async () => {
            const value = await load();
            loadedAt = performance.now();
            return value;
          },
          { schema: Item, lease: mode.lease },
        );
      } catch {
        errors++;
      }
      const ended = performance.now();
      // A load this call waited for (a background refresh finishes after the call resolved).
      if (loadedAt <= ended && started >= switchedAt) waitedLoads++;
      if (started >= switchedAt && ended <= switchedAt + WINDOW_MS)
        latencies.push({ at: started - switchedAt, ms: ended - started });
    }
  };
  const running = Array.from({ length: CALLERS }, (_, n) => caller(n));
  await sleep(WARMUP_MS);

  // The deploy: cold v2 instances take over every caller at once.
  const old = caches;
  const fresh = mode.noDeploy ? [] : Array.from({ length: INSTANCES }, () => instance("v2"));
  if (mode.connectFirst) await Promise.all(fresh.map((cache) => cache.connect()));
  if (!mode.noDeploy) {
    caches = fresh;
    version = "v2";
  }
  switchedAt = performance.now();
  await sleep(WINDOW_MS);
  stop = true;
  await Promise.all(running);
  const counted = loads;
  const warm = caches.reduce((sum, cache) => sum + cache.stats().warm, 0);
  await sleep(200);
  await Promise.all([...old, ...fresh].map((cache) => cache.close()));
  await Promise.all(transports.map((t) => t.close().catch(() => {})));

  const sorted = latencies.map((l) => l.ms).sort((a, b) => a - b);
  const pct = (list: number[], p: number) =>
    list[Math.min(list.length - 1, Math.floor(list.length * p))] ?? 0;
  let worstSecondP99 = 0;
  for (let s = 0; s * 1000 < WINDOW_MS; s++) {
    const second = latencies.filter((l) => l.at >= s * 1000 && l.at < (s + 1) * 1000).map((l) => l.ms);
    second.sort((a, b) => a - b);
    worstSecondP99 = Math.max(worstSecondP99, pct(second, 0.99));
  }
  return {
    loads: counted,
    waitedLoads,
    requests: latencies.length,
    errors,
    p50: pct(sorted, 0.5),
    p99: pct(sorted, 0.99),
    p999: pct(sorted, 0.999),
    max: sorted[sorted.length - 1] ?? 0,
    worstSecondP99,
    warm,
  };
}

const loadBefore = loadavg()[0] ?? 0;
const server = await startRedisServer();
const modes: Mode[] = [
  { name: "no deploy (v1 keeps serving), lease", warmStart: false, lease: true, noDeploy: true },
  { name: "warmStart off", warmStart: false, lease: false },
  { name: "warmStart off, lease", warmStart: false, lease: true },
  { name: "warmStart on", warmStart: true, lease: false },
  { name: "warmStart on, lease", warmStart: true, lease: true },
  { name: "warmStart on, lease, `connect()` at start-up", warmStart: true, lease: true, connectFirst: true },
];
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const ms = (n: number) => `${n.toFixed(1)} ms`;
const rows = [
  `| mode | DB loads, ${WINDOW_MS / 1000} s after the switch | of which a caller waited for | warm-start hits | requests | p50 | p99 | p99.9 | worst 1-s p99 | max | errors |`,
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
try {
  for (const [i, mode] of modes.entries()) {
    const r = await runMode(server.url, mode, `deploy${i}`);
    rows.push(
      `| ${mode.name} | ${fmt(r.loads)} | ${fmt(r.waitedLoads)} | ${fmt(r.warm)} | ${fmt(r.requests)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.p999)} | ${ms(r.worstSecondP99)} | ${ms(r.max)} | ${r.errors} |`,
    );
    console.error(rows[rows.length - 1]);
  }
} finally {
  await server.stop();
}
console.log(
  `${KEYS} keys, ${CALLERS} callers, ${INSTANCES} instances per version, TTL ${TTL_MS / 1000} s, DB ${DB_MS} ms, Node ${process.version}, load average (1 min) before ${loadBefore.toFixed(2)}, after ${(loadavg()[0] ?? 0).toFixed(2)}`,
);
console.log(rows.join("\n"));
