/**
 * Soak: 200 concurrent callers doing mixed getOrSet / set / delete / invalidateTags over 10,000 keys
 * on node-redis against a redis-server of its own, which is killed (SIGKILL, by its PID) and
 * restarted on the same port in the middle. Not part of `npm test`:
 *
 *   SOAK_SECONDS=60 node --import tsx bench/soak.ts      (SOAK_L1=<maxEntries>: L1 size, default 1,000)
 *
 * The invariant checked on every value returned ("wrong values"): each key has a counter in this
 * process; every write (a `set`, or a loader run) stamps its value with the next number, taken when
 * it starts, and every invalidation of the key (a `delete`, or an `invalidateTags` of its group)
 * takes a number too. When a write or invalidation completes, the key's floor rises to its number.
 * A call that starts after that must return a value stamped at or above the floor it saw when it
 * started (and stamped for its own key): anything older is a value that was overwritten or
 * invalidated before the call began — the cache serving it is a wrong value.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createClient } from "redis";
import { createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { type RedisServerHandle, startRedisServer } from "../test/support/redis-server.js";

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CALLERS = 200;
const KEYS = 10_000;
/** Keys per tag: `invalidateTags(["g7"])` invalidates keys 7, 107, 207… */
const GROUPS = 100;
const OUTAGE_MS = 3000;

type Value = { k: number; v: number };
type Phase = "before" | "outage" | "after";

const counter = new Int32Array(KEYS);
const floor = new Int32Array(KEYS);
type Writer = "loader" | "set";
/** Writes not returned yet, per key: their numbers, and whether a `set` or a getOrSet's loader made them. */
const inFlight = new Map<number, Map<number, Writer>>();
/**
 * Values ("key:number") whose call was still in flight when a later write or invalidation of their
 * key completed. Serving such a `set` value is legal (the two calls overlapped: either may take
 * effect last); serving such a loader value is the in-flight-loader race of issue 9, item 4.
 */
const overlapped = new Map<string, Writer>();
const begin = (key: number, v: number, writer: Writer) => {
  const running = inFlight.get(key) ?? new Map<number, Writer>();
  inFlight.set(key, running);
  running.set(v, writer);
};
const end = (key: number, v: number) => {
  const running = inFlight.get(key);
  running?.delete(v);
  if (running?.size === 0) inFlight.delete(key);
};
const raise = (key: number, n: number) => {
  if (n > (floor[key] ?? 0)) floor[key] = n;
  for (const [v, writer] of inFlight.get(key) ?? []) if (v < n) overlapped.set(`${key}:${v}`, writer);
};
const stamp = (key: number) => {
  counter[key] = (counter[key] ?? 0) + 1;
  return counter[key] as number;
};

const escaped: string[] = [];
process.on("unhandledRejection", (reason) => escaped.push(`unhandledRejection: ${String(reason)}`));
process.on("uncaughtException", (error) => escaped.push(`uncaughtException: ${error.message}`));

let server: RedisServerHandle = await startRedisServer();
const port = server.port;
const url = server.url;

async function connections(): Promise<number | string> {
  const admin = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 1000 } });
  admin.on("error", () => {});
  try {
    await admin.connect();
    const list = String(await admin.sendCommand(["CLIENT", "LIST"]));
    return list.trim().split("\n").length - 1;
  } catch (error) {
    return `unknown (${(error as Error).message})`;
  } finally {
    admin.destroy();
  }
}

let warnings = 0;
let breakerChanges = 0;
const cache = createCache({
  redis: nodeRedis({ url }),
  env: {},
  prefix: "soak",
  ...(process.env.SOAK_L1 ? { l1: { maxEntries: Number(process.env.SOAK_L1) } } : {}),
  ttl: "10m",
  logger: {
    warn: () => {
      warnings++;
    },
  },
  onEvent: (event) => {
    if (event.type === "breaker") breakerChanges++;
  },
});

const rssStart = process.memoryUsage().rss;
await cache.connect();
const connectionsBefore = await connections();

const latencies: Record<Phase, number[]> = { before: [], outage: [], after: [] };
const ops: Record<Phase, number> = { before: 0, outage: 0, after: 0 };
const phaseTime: Record<Phase, number> = { before: 0, outage: 0, after: 0 };
let phase: Phase = "before";
let phaseStarted = performance.now();
const enter = (next: Phase) => {
  phaseTime[phase] += performance.now() - phaseStarted;
  phase = next;
  phaseStarted = performance.now();
};
const wrong: string[] = [];
const wrongBy: Record<Phase, number> = { before: 0, outage: 0, after: 0 };
let loaderRaces = 0;
let joinedFlights = 0;
let legalOverlaps = 0;
let rejected = 0;

/** `running`: the loads of the key in flight when the call began (it may have joined one of them). */
const check = (key: number, seen: number, value: unknown, at: Phase, running: ReadonlySet<number>) => {
  const got = value as Value | undefined;
  if (got && got.k === key && got.v >= seen) return;
  const writer = got && got.k === key ? overlapped.get(`${key}:${got.v}`) : undefined;
  if (writer === "set") {
    legalOverlaps++;
    return;
  }
  wrongBy[at]++;
  if (writer === "loader") {
    loaderRaces++;
    if (got && running.has(got.v)) joinedFlights++;
  }
  if (wrong.length < 5) wrong.push(`k${key}: got ${JSON.stringify(got)}, floor was ${seen}`);
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function one(): Promise<void> {
  const key = Math.floor(Math.random() * KEYS);
  const name = `k${key}`;
  const tags = [`g${key % GROUPS}`];
  const roll = Math.random();
  const seen = floor[key] ?? 0;
  const at = phase;
  if (roll < 0.7) {
    let mine: number | undefined;
    const running = new Set(inFlight.get(key)?.keys() ?? []);
    try {
      const value = await cache.getOrSet(
        name,
        async () => {
          mine = stamp(key);
          begin(key, mine, "loader");
          if (Math.random() < 0.2) await sleep(2);
          return { k: key, v: mine } satisfies Value;
        },
        { tags },
      );
      check(key, seen, value, at, running);
    } finally {
      // In flight until the call that ran the loader returns (its write-back included).
      if (mine !== undefined) end(key, mine);
    }
  } else if (roll < 0.9) {
    const v = stamp(key);
    begin(key, v, "set");
    try {
      await cache.set(name, { k: key, v } satisfies Value, { tags });
    } finally {
      end(key, v);
    }
    raise(key, v);
  } else if (roll < 0.97) {
    const v = stamp(key);
    await cache.delete(name);
    raise(key, v);
  } else {
    const group = key % GROUPS;
    const members: [number, number][] = [];
    for (let k = group; k < KEYS; k += GROUPS) members.push([k, stamp(k)]);
    await cache.invalidateTags([`g${group}`]);
    for (const [k, v] of members) raise(k, v);
  }
}

const deadline = performance.now() + SECONDS * 1000;
async function caller(): Promise<void> {
  while (performance.now() < deadline) {
    const started = performance.now();
    const at = phase;
    try {
      await one();
    } catch (error) {
      rejected++;
      if (rejected <= 5) escaped.push(`rejected: ${(error as Error).message}`);
    }
    latencies[at].push(performance.now() - started);
    ops[at]++;
    // Yield to the event loop now and then, so the killer and timers get their turn.
    if (ops[at] % 50 === 0) await sleep(0);
  }
}

async function chaos(): Promise<{
  killedAt: number;
  restartedAt: number;
  connectionsDuring: number | string;
}> {
  await sleep(SECONDS * 400);
  const killedAt = (performance.now() - begun) / 1000;
  process.kill(server.pid, "SIGKILL");
  enter("outage");
  await sleep(OUTAGE_MS);
  server = await startRedisServer({ port });
  const restartedAt = (performance.now() - begun) / 1000;
  enter("after");
  return { killedAt, restartedAt, connectionsDuring: await connections() };
}

const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const begun = performance.now();
const [, timeline] = await Promise.all([Promise.all(Array.from({ length: CALLERS }, caller)), chaos()]);
enter("after");
const connectionsAfter = await connections();
await cache.close();
await sleep(200);
const connectionsClosed = await connections();
const rssEnd = process.memoryUsage().rss;
await server.stop();

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
};
const all = [...latencies.before, ...latencies.outage, ...latencies.after];
const total = ops.before + ops.outage + ops.after;
const seconds = (performance.now() - begun) / 1000;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const wrongCount = wrongBy.before + wrongBy.outage + wrongBy.after;

const lines = [
  `soak: ${SECONDS} s, ${CALLERS} callers, ${KEYS} keys (70% getOrSet, 20% set, 7% delete, 3% invalidateTags of 100 keys), node-redis`,
  `redis-server killed (SIGKILL) at ${timeline.killedAt.toFixed(1)} s, restarted on port ${port} at ${timeline.restartedAt.toFixed(1)} s`,
  "",
  "| phase | ops | ops/s | p50 | p99 | max |",
  "|---|---|---|---|---|---|",
  ...(["before", "outage", "after"] as Phase[]).map(
    (p) =>
      `| ${p} | ${ops[p]} | ${Math.round(ops[p] / (phaseTime[p] / 1000))} | ${ms(percentile(latencies[p], 50))} | ${ms(percentile(latencies[p], 99))} | ${ms(percentile(latencies[p], 100))} |`,
  ),
  `| all | ${total} | ${Math.round(total / seconds)} | ${ms(percentile(all, 50))} | ${ms(percentile(all, 99))} | ${ms(percentile(all, 100))} |`,
  "",
  `wrong values: ${wrongCount} (before ${wrongBy.before}, outage ${wrongBy.outage}, after ${wrongBy.after}; ${loaderRaces} of them a loader's value whose getOrSet was still in flight when a set/delete/invalidateTags of its key completed — issue 9 item 4 — and ${joinedFlights} of those received by joining that getOrSet's single flight, begun before the invalidation)`,
  `not counted: ${legalOverlaps} reads of a set() value whose call overlapped the newer write (either may take effect last)`,
  ...(wrongCount > 0 ? [`  first: ${wrong.join("; ")}`] : []),
  `escaped exceptions: ${escaped.length + Math.max(0, rejected - 5)}${escaped.length > 0 ? ` (${escaped.slice(0, 5).join("; ")})` : ""}`,
  `RSS: ${mb(rssStart)} at start, ${mb(rssEnd)} at end`,
  `Redis connections: ${connectionsBefore} before, ${timeline.connectionsDuring} right after the restart, ${connectionsAfter} at the end, ${connectionsClosed} after close()`,
  `log lines (warn): ${warnings}; breaker changes: ${breakerChanges}`,
  `event-loop delay (what latencies over timeoutMs are made of on a busy machine): p99 ${ms(loopDelay.percentile(99) / 1e6)}, max ${ms(loopDelay.max / 1e6)}`,
];
console.log(lines.join("\n"));
process.exit(wrongCount > 0 || escaped.length > 0 ? 1 : 0);
