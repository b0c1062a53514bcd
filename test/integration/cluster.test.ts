import { Socket } from "node:net";
import { createClient, createCluster } from "redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { slotOf } from "../../src/slots.js";
import { isTombstone } from "../../src/tombstone.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { RedisArg, Transport } from "../../src/transports/types.js";
import type { CacheOptions, FlushScope } from "../../src/types.js";
import { type RedisClusterHandle, startRedisCluster } from "../support/redis-cluster.js";

const connectNode = (port: number) => createClient({ url: `redis://127.0.0.1:${port}` });
const connectCluster = (addresses: string[]) =>
  createCluster({ rootNodes: addresses.map((a) => ({ url: `redis://${a}` })), RESP: 2 });

/** Every command a transport sends, by name (they still reach the cluster). */
function counting(inner: Transport) {
  const sent: (readonly RedisArg[])[] = [];
  const transport: Transport = {
    kind: inner.kind,
    slotted: inner.slotted,
    send: (command, signal) => {
      sent.push(command);
      return inner.send(command, signal);
    },
    pipeline: (commands, signal) => {
      sent.push(...commands);
      return inner.pipeline(commands, signal);
    },
    close: () => inner.close(),
    warmup: () => inner.warmup?.() ?? Promise.resolve(),
  };
  return { sent, transport };
}

describe("on a Redis Cluster (3 primaries + 3 replicas)", () => {
  let cluster: RedisClusterHandle;
  /** One plain client per primary, to see what each node holds. */
  let primaries: ReturnType<typeof connectNode>[] = [];
  /** A cluster-aware client, for keys tiercache did not write. */
  let rawCluster: ReturnType<typeof connectCluster>;
  const open: { close(): Promise<void> }[] = [];
  let prefixes = 0;

  const cache = (options: CacheOptions = {}) => {
    const transport = nodeRedis({ cluster: { rootNodes: cluster.addresses } });
    const created = createCache({
      redis: transport,
      env: {},
      prefix: `c${++prefixes}`,
      logger: { warn: () => {} },
      ...options,
    });
    open.push(created);
    return created;
  };
  const keysOn = async (pattern: string) => Promise.all(primaries.map((node) => node.keys(pattern)));

  beforeAll(async () => {
    cluster = await startRedisCluster();
    rawCluster = connectCluster(cluster.addresses);
    rawCluster.on("error", () => {});
    await rawCluster.connect();
    primaries = await Promise.all(
      (await cluster.primaries()).map(async (port) => {
        const client = connectNode(port);
        client.on("error", () => {});
        await client.connect();
        return client;
      }),
    );
  }, 60_000);
  beforeEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await Promise.all(primaries.map((node) => node.flushDb()));
  });
  afterAll(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    for (const node of primaries) node.destroy();
    rawCluster?.destroy();
    await cluster?.stop();
  });

  it("REDIS_CLUSTER_NODES alone configures it: values round-trip and health() lists the primaries", async () => {
    const fromEnv = createCache({
      env: { REDIS_CLUSTER_NODES: cluster.addresses.slice(0, 2).join(",") },
      prefix: `c${++prefixes}`,
      logger: { warn: () => {} },
    });
    open.push(fromEnv);
    await fromEnv.set("from-env", { ok: true });
    const reader = cache({ prefix: fromEnv.keys.prefix });
    expect(await reader.get("from-env")).toEqual({ ok: true });
    expect(fromEnv.keys.epoch).toMatch(/:~e:\{[^}]+\}$/);
    const health = await fromEnv.health();
    expect(health.topology?.mode).toBe("cluster");
    expect(
      health.topology?.nodes
        .filter((node) => node.role === "primary")
        .map((node) => node.address)
        .sort(),
    ).toEqual((await cluster.primaries()).map((port) => `127.0.0.1:${port}`).sort());
  });

  it("spreads entries over every primary; a namespace's epoch and tag marks share one slot", async () => {
    const writer = cache();
    const keys = Array.from({ length: 300 }, (_, i) => `user:${i}`);
    await writer.setMany(keys.map((key) => ({ key, value: key, tags: [`t${key}`] })));
    const perNode = (await keysOn(`${writer.keys.namespaceRoot}1:k:*`)).map((found) => found.length);
    expect(perNode.reduce((a, b) => a + b)).toBe(300);
    for (const count of perNode) expect(count).toBeGreaterThan(50); // ~100 each, none empty
    await writer.invalidateTags(["tuser:1", "tuser:2"]);
    const slots = new Set(
      [writer.keys.epoch, writer.keys.tag("tuser:1"), writer.keys.tag("tuser:2")].map(slotOf),
    );
    expect(slots.size).toBe(1);
    // …and what the cluster itself computes agrees.
    expect(await primaries[0]?.sendCommand(["CLUSTER", "KEYSLOT", writer.keys.epoch])).toBe([...slots][0]);
    // A lease sits in its entry's slot.
    const full = (await writer.keys.entry("user:7")) as string;
    expect(slotOf(writer.keys.lease(full))).toBe(slotOf(full));
    const reader = cache({ prefix: writer.keys.prefix });
    expect(await reader.get("user:299")).toBe("user:299");
    expect(await reader.get("user:1")).toBeUndefined(); // invalidated by its tag
  });

  it("100 concurrent reads are one socket write per primary, and every value comes back", async () => {
    const writer = cache();
    const keys = Array.from({ length: 100 }, (_, i) => `item:${i}`);
    await writer.setMany(keys.map((key) => ({ key, value: key })));
    const counted = counting(nodeRedis({ cluster: { rootNodes: cluster.addresses } }));
    const reader = createCache({
      redis: counted.transport,
      env: {},
      prefix: writer.keys.prefix,
      l1: false,
      logger: { warn: () => {} },
    });
    open.push(reader);
    await reader.get("warm-up"); // connects and discovers the slots
    await new Promise((resolve) => setTimeout(resolve, 50));
    const writes = new Map<number, number>();
    const original = { write: Socket.prototype._write, writev: Socket.prototype._writev };
    const count = function (this: Socket) {
      // Only TCP sockets to Redis; the test runner's own pipes are sockets too.
      if (this.remotePort !== undefined) writes.set(this.remotePort, (writes.get(this.remotePort) ?? 0) + 1);
    };
    Socket.prototype._write = function (...args) {
      count.call(this);
      return original.write.apply(this, args);
    };
    Socket.prototype._writev = function (...args) {
      count.call(this);
      return (original.writev as NonNullable<typeof original.writev>).apply(this, args);
    };
    let values: unknown[];
    counted.sent.length = 0;
    try {
      values = await Promise.all(keys.map((key) => reader.get(key)));
    } finally {
      Socket.prototype._write = original.write;
      Socket.prototype._writev = original.writev;
    }
    expect(values).toEqual(keys);
    // tiercache sent one read per slot (a GET, or an MGET for keys sharing one)…
    const slots = new Set(await Promise.all(keys.map(async (key) => slotOf(await reader.keys.entry(key)))));
    expect(counted.sent).toHaveLength(slots.size);
    for (const command of counted.sent) expect(["GET", "MGET"]).toContain(command[0]);
    // …and wrote each primary's share in one go: one round trip per node.
    const ports = await cluster.primaries();
    expect([...writes.keys()].sort()).toEqual([...ports].sort());
    for (const port of ports) expect(writes.get(port)).toBe(1);
  });

  it("invalidateTags over 1,000 tags: one MSET into one slot, every tagged entry gone everywhere", async () => {
    const writer = cache({ l1: false });
    const tags = Array.from({ length: 1000 }, (_, i) => `tag-${i}`);
    await writer.setMany(tags.map((tag, i) => ({ key: `e${i}`, value: i, tags: [tag] })));
    const counted = counting(nodeRedis({ cluster: { rootNodes: cluster.addresses } }));
    const invalidator = createCache({
      redis: counted.transport,
      env: {},
      prefix: writer.keys.prefix,
      logger: { warn: () => {} },
    });
    open.push(invalidator);
    await invalidator.invalidateTags(tags);
    const names = counted.sent.map((c) => String(c[0])).filter((name) => !name.startsWith("H"));
    expect(names).toEqual(["MSET", "SET"]); // the marks, then the epoch's new token (SET … GET)
    const marks = await keysOn(`${writer.keys.namespaceRoot}~t:*`);
    expect(marks.flat()).toHaveLength(1000);
    expect(marks.filter((found) => found.length > 0)).toHaveLength(1); // all on one primary
    const reader = cache({ prefix: writer.keys.prefix, l1: false });
    const after = await Promise.all(tags.map((_, i) => reader.get(`e${i}`)));
    expect(after.filter((value) => value !== undefined)).toEqual([]);
  });

  it("delete of 100 keys in different slots removes all of them and counts them", async () => {
    const writer = cache();
    const keys = Array.from({ length: 100 }, (_, i) => `del:${i}`);
    await writer.setMany(keys.map((key) => ({ key, value: 1 })));
    const fulls = await Promise.all(keys.map((key) => writer.keys.entry(key)));
    expect(new Set(fulls.map(slotOf)).size).toBeGreaterThan(90);
    expect(await writer.delete(...keys)).toBe(100);
    // Each key now holds a short-lived tombstone (so an in-flight load elsewhere cannot write it back),
    // written on the primary that owns its slot: all three.
    const perNode = await keysOn(`${writer.keys.namespaceRoot}1:k:*`);
    expect(perNode.flat().sort()).toEqual([...fulls].sort());
    for (const found of perNode) expect(found.length).toBeGreaterThan(10);
    const stored = await Promise.all(fulls.map((full) => rawCluster.get(full)));
    expect(stored.every((value) => typeof value === "string" && isTombstone(value))).toBe(true);
    const reader = cache({ prefix: writer.keys.prefix });
    expect(await reader.get("del:42")).toBeUndefined();
  });

  describe("flush and deletePattern reach every primary", () => {
    const FOREIGN = ["session:1", "queue:1", "other-app:7", "{x}:y"];
    /** Two versions and two namespaces of one environment, another environment, and foreign keys. */
    const seed = async () => {
      const prefix = `f${++prefixes}`;
      const mk = (version: string, namespace = "app", p = prefix) =>
        cache({ prefix: p, version, namespace, l1: false });
      for (const c of [mk("v1"), mk("v2"), mk("v2", "other"), mk("v2", "app", `${prefix}x`)]) {
        await c.setMany(Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, value: i, tags: ["t"] })));
        await c.set("u", 1, { versioned: false });
        await c.invalidateTags(["old"]);
      }
      await Promise.all(FOREIGN.map((key) => rawCluster.set(key, "x")));
      return { prefix, current: mk("v2") };
    };
    const everything = async () => (await keysOn("*")).flat().sort();

    it.each([
      ["version", (p: string) => (key: string) => key.startsWith(`${p}:tc:app:v2:`)],
      ["namespace", (p: string) => (key: string) => key.startsWith(`${p}:tc:app:`)],
      ["environment", (p: string) => (key: string) => key.startsWith(`${p}:tc:`)],
    ] as const)('"%s" removes every matching key on every primary and nothing else', async (scope, gone) => {
      const { prefix, current } = await seed();
      const before = await everything();
      const perNodeBefore = (await keysOn(`${prefix}:tc:*`)).map(
        (found) => found.filter(gone(prefix)).length,
      );
      for (const n of perNodeBefore) expect(n).toBeGreaterThan(0); // matching keys on all three
      const result = await current.flush({ scope: scope as FlushScope });
      const expected = before.filter((key) => !gone(prefix)(key) || /:~e(:\{[^}]*\})?$/.test(key));
      expect(await everything()).toEqual(expected);
      expect(result.removed).toBe(before.length - expected.length);
    });

    it('"database" FLUSHDBs every primary and counts every key', async () => {
      const { current } = await seed();
      const total = (await everything()).length;
      expect(await current.flush({ scope: "database" })).toEqual({ scope: "database", removed: total });
      // Only the epoch this namespace's instances need to drop their L1 is left.
      expect(await everything()).toEqual([current.keys.epoch]);
    });

    it("deletePattern removes the matching keys on every primary", async () => {
      const { prefix, current } = await seed();
      const before = await everything();
      const removed = await current.deletePattern("k1*");
      const matched = before.filter(
        (key) => /^[^:]+:tc:app:v2:k:k1\d*$/.test(key) && key.startsWith(`${prefix}:`),
      );
      expect(removed).toBe(matched.length);
      expect(matched.length).toBe(11);
      expect(await everything()).toEqual(before.filter((key) => !matched.includes(key)));
    });
  });
});
