/**
 * L2 hits on a 3-primary Redis Cluster vs one node, in one run (issue 13):
 *   node --import tsx bench/cluster.bench.ts
 * Starts a local cluster (3 primaries + 3 replicas) and one redis-server on free loopback ports, and
 * stops them by PID at the end. For each: L2-hit throughput at 100 concurrent reads (L1 off), and
 * what one wave of 100 concurrent reads costs — Redis commands per node (INFO commandstats) and
 * socket writes per node (round trips).
 */
import { Socket } from "node:net";
import { createClient } from "redis";
import { createCache } from "../src/index.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import type { Transport } from "../src/transports/types.js";
import { startRedisCluster } from "../test/support/redis-cluster.js";
import { startRedisServer } from "../test/support/redis-server.js";

const CONCURRENCY = 100;
const KEYS = Array.from({ length: 1000 }, (_, i) => `user:${i}`);
const RUN_MS = 3000;
const value = { id: 42, name: "Ada Lovelace", roles: ["admin", "author"], updatedAt: "2024-01-01T00:00:00Z" };
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const single = await startRedisServer();
const cluster = await startRedisCluster();
// Interrupted (Ctrl-C, a timeout): the servers go with it, by PID.
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(
    signal,
    () => void Promise.all([cluster.stop(), single.stop()]).finally(() => process.exit(130)),
  );
const rows: string[] = [];

/**
 * The bench's own connections (HELLO, INFO, CONFIG RESETSTAT) and replication's REPLCONF ACKs are
 * not reads of the cache: left out of the count.
 */
const NOT_READS = new Set(["info", "config|resetstat", "hello", "client|setinfo", "replconf", "ping"]);

/** Commands each node ran since the last reset, without the bench's own and replication's. */
async function commandsPerNode(ports: number[]): Promise<number[]> {
  return Promise.all(
    ports.map(async (port) => {
      const client = createClient({ url: `redis://127.0.0.1:${port}` });
      await client.connect();
      const info = await client.info("commandstats");
      client.destroy();
      let calls = 0;
      for (const [, name, n] of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm))
        if (!NOT_READS.has(name as string)) calls += Number(n);
      return calls;
    }),
  );
}

async function resetStats(ports: number[]): Promise<void> {
  for (const port of ports) {
    const client = createClient({ url: `redis://127.0.0.1:${port}` });
    await client.connect();
    await client.configResetStat();
    client.destroy();
  }
}

async function measure(name: string, transport: () => Transport, ports: number[]): Promise<void> {
  const writer = createCache({
    redis: transport(),
    env: {},
    prefix: "bench",
    ttl: "1h",
    logger: { warn: () => {} },
  });
  for (let i = 0; i < KEYS.length; i += 100)
    await writer.setMany(KEYS.slice(i, i + 100).map((key) => ({ key, value })));
  await writer.close();
  const reader = createCache({
    redis: transport(),
    env: {},
    prefix: "bench",
    l1: false,
    logger: { warn: () => {} },
  });
  // Warm-up: connection, slot discovery, JIT.
  for (let i = 0; i < 50; i++) await Promise.all(KEYS.slice(0, CONCURRENCY).map((key) => reader.get(key)));

  let reads = 0;
  let wave = 0;
  const started = performance.now();
  while (performance.now() - started < RUN_MS) {
    const offset = (wave++ * CONCURRENCY) % KEYS.length;
    const values = await Promise.all(KEYS.slice(offset, offset + CONCURRENCY).map((key) => reader.get(key)));
    if (values.some((v) => v === undefined)) throw new Error(`${name}: an L2 miss`);
    reads += values.length;
  }
  const perSec = reads / ((performance.now() - started) / 1000);
  if (reader.stats().hits.l2 < reads) throw new Error(`${name}: not all reads were L2 hits`);

  // One wave of 100 concurrent reads: commands per node, socket writes (round trips) per node.
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the next read carries the epoch check too
  await resetStats(ports);
  const writes = new Map<number, number>();
  const original = { write: Socket.prototype._write, writev: Socket.prototype._writev };
  const note = (socket: Socket) =>
    writes.set(socket.remotePort ?? 0, (writes.get(socket.remotePort ?? 0) ?? 0) + 1);
  Socket.prototype._write = function (...args) {
    note(this);
    return original.write.apply(this, args);
  };
  Socket.prototype._writev = function (...args) {
    note(this);
    return (original.writev as NonNullable<typeof original.writev>).apply(this, args);
  };
  try {
    await Promise.all(KEYS.slice(0, CONCURRENCY).map((key) => reader.get(key)));
  } finally {
    Socket.prototype._write = original.write;
    Socket.prototype._writev = original.writev;
  }
  const commands = await commandsPerNode(ports);
  const roundTrips = ports.map((port) => writes.get(port) ?? 0);
  const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);
  rows.push(
    `| ${name} | ${ports.length} | ${fmt(perSec)} | ${sum(commands)} (${commands.join(" + ")}) | ${sum(roundTrips)} (${roundTrips.join(" + ")}) |`,
  );
  await reader.close();
}

try {
  await measure("one node", () => nodeRedis({ url: single.url }), [single.port]);
  await measure(
    "cluster",
    () => nodeRedis({ cluster: { rootNodes: cluster.addresses } }),
    await cluster.primaries(),
  );
  console.log(
    `L2 hits (L1 off), ${CONCURRENCY} concurrent reads of a ${JSON.stringify(value).length}-byte value, ${RUN_MS / 1000} s closed loop; Node ${process.version}\n`,
  );
  console.log(
    "| Redis | primaries | L2 hits/s | commands per 100 reads (per node) | socket writes per 100 reads (per node) |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const line of rows) console.log(line);
} finally {
  await cluster.stop();
  await single.stop();
}
