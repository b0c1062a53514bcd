import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Cache, CacheError, createCache } from "../../src/index.js";
import { nodeRedis } from "../../src/transports/node-redis.js";
import type { Transport } from "../../src/transports/types.js";
import type { CacheOptions, FlushScope, Logger } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Log lines with the moment they were written, to order them against requests. */
function recorder() {
  const lines: { message: string; at: number }[] = [];
  const push = (message: string) => lines.push({ message, at: performance.now() });
  const logger: Logger = { info: push, warn: push, debug: () => {} };
  return {
    logger,
    lines,
    matching: (pattern: RegExp) => lines.filter((line) => pattern.test(line.message)),
  };
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await sleep(10);
  }
}

/**
 * A transport that records the name and argument count of every command it carries, and fails
 * every command like an unreachable server while `down` is set.
 */
function spied(transport: Transport) {
  const state = { down: false, commands: [] as { name: string; args: number }[] };
  const note = (command: readonly unknown[]) => {
    if (state.down) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
    state.commands.push({ name: String(command[0]), args: command.length - 1 });
  };
  const wrapped: Transport = {
    kind: transport.kind,
    send: async (command, signal) => {
      note(command);
      return transport.send(command, signal);
    },
    pipeline: async (batch, signal) => {
      for (const command of batch) note(command);
      return transport.pipeline(batch, signal);
    },
    close: () => transport.close(),
  };
  return { state, transport: wrapped };
}

describe.each(["node-redis", "upstash", "cluster"] as const)("versioning and flush on %s", (backendName) => {
  let backend: Backend;
  let raw: NonNullable<Backend["raw"]>;
  const open: Cache[] = [];

  /** One function instance of a deployment; production (no prefix) unless told otherwise. */
  const instance = (version: string, options: CacheOptions = {}) => {
    const cache = cacheOn(backend, { prefix: undefined, namespace: "app", version, ...options });
    open.push(cache);
    return cache;
  };
  /** A deploy: its first instance registers the version and writes `page`; later ones start cold. */
  const deploy = async (version: string, options: CacheOptions = {}) => {
    const cache = instance(version, options);
    await cache.connect();
    await cache.set("page", `page of ${version}`);
    await sleep(3); // the next deploy is first seen strictly later
    return cache;
  };
  const allKeys = async () => (await raw.keys("*")).sort();
  /** Loads `n` raw keys in one version's space, pipelined in batches. */
  const load = async (root: string, version: string, n: number) => {
    for (let start = 0; start < n; start += 10_000) {
      // Issued in one tick, so node-redis pipelines them (per node on a cluster, where a MULTI cannot span slots).
      const batch: Promise<unknown>[] = [];
      for (let i = start; i < Math.min(n, start + 10_000); i++)
        batch.push(raw.set(`${root}app:${version}:k:k${i}`, "x"));
      await Promise.all(batch);
    }
  };

  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
    raw = backend.raw!;
  });
  beforeEach(async () => {
    await Promise.all(open.splice(0).map((cache) => cache.close()));
    await raw.flushDb();
  });
  afterAll(async () => {
    await Promise.all(open.splice(0).map((cache) => cache.close()));
    await backend.close();
  });

  it("two deployments interleaving reads and writes never read each other's values", async () => {
    const a = instance("a1b2c3d4", { l1: false });
    const b = instance("e5f6a7b8", { l1: false });
    for (let i = 0; i < 25; i++) {
      await a.set(`user:${i}`, { from: "a", i });
      expect(await b.get(`user:${i}`)).toBeUndefined();
      await b.set(`user:${i}`, { from: "b", i });
      expect(await a.get(`user:${i}`)).toEqual({ from: "a", i });
      expect(await b.get(`user:${i}`)).toEqual({ from: "b", i });
    }
    expect(await raw.exists(["tc:app:a1b2c3d4:k:user:0", "tc:app:e5f6a7b8:k:user:0"])).toBe(2);
    // Counters and unversioned entries are shared on purpose: they survive deploys.
    await a.increment("visits");
    expect(await b.increment("visits")).toBe(2);
  });

  it.each(["old first", "new first"])(
    "an older deployment never deletes a newer one's keys (instances start %s)",
    async (order) => {
      // Deploy order decides which is older. The names sort the other way round on purpose.
      await deploy("b2");
      await deploy("a1");
      const older = instance("b2", { l1: false, keepVersions: 0 });
      const newer = instance("a1", { l1: false });
      for (const cache of order === "old first" ? [older, newer] : [newer, older]) {
        await cache.set("fresh", cache.version);
        expect((await cache.connect()).flushedVersions).toEqual([]);
      }
      expect(await older.flush()).toEqual({ scope: "stale-versions", removed: 0, versions: [] });
      expect(await older.flush({ keepVersions: 0, scope: "stale-versions" })).toMatchObject({ removed: 0 });
      expect(await newer.get("page")).toBe("page of a1");
      expect(await newer.get("fresh")).toBe("a1");
      // The flush is real: the newer deployment, keeping no previous version, removes the older one's keys.
      expect(await newer.flush({ keepVersions: 0 })).toEqual({
        scope: "stale-versions",
        removed: 2,
        versions: ["b2"],
      });
      expect(await older.get("page")).toBeUndefined();
      expect(await newer.get("page")).toBe("page of a1");
    },
  );

  it("keeps the previous version for rollback; a flushed version never comes back as the newest", async () => {
    const log = recorder();
    await deploy("v1");
    await deploy("v2");
    const v3 = instance("v3", { logger: log.logger });
    expect(await v3.connect()).toMatchObject({ connected: true, flushedVersions: ["v1"] });
    expect(log.matching(/^Cache version changed: v2 → v3, flushing stale versions$/)).toHaveLength(1);
    expect(log.matching(/^Flushed 1 keys of versions v1 in \d+ ms$/)).toHaveLength(1);
    expect(await raw.exists("tc:app:v1:k:page")).toBe(0);

    // Rollback to v2: a cold instance finds its entries, and deletes nothing of v3.
    await v3.set("page", "page of v3");
    const rolledBack = instance("v2", { keepVersions: 0 });
    expect(await rolledBack.get("page")).toBe("page of v2");
    expect((await rolledBack.connect()).flushedVersions).toEqual([]);
    await rolledBack.flush();
    expect(await raw.get("tc:app:v3:k:page")).not.toBeNull();

    // v1's instances still serving (or cold-starting later) re-register as what they are: the oldest.
    const v1 = instance("v1", { keepVersions: 0 });
    expect(await v1.get("page")).toBeUndefined();
    expect((await v1.connect()).flushedVersions).toEqual([]);
    expect(await v1.flush()).toMatchObject({ removed: 0, versions: [] });
    expect(await raw.exists(["tc:app:v2:k:page", "tc:app:v3:k:page"])).toBe(2);
  });

  it("50 instances of a new version cold-starting at once flush stale versions once, and no request waits", async () => {
    await deploy("v0");
    await deploy("v1");
    const stale = 50_000;
    await load("tc:", "v0", stale);
    const log = recorder();
    // 50 instances, the bridge and the test share one process here: a deadline for that, not for Redis.
    const instances = Array.from({ length: 50 }, () =>
      instance("v2", { logger: log.logger, timeoutMs: 5_000 }),
    );
    const answered = await Promise.all(
      instances.map(async (cache) => {
        expect(await cache.get("page")).toBeUndefined(); // a cold miss, served while the flush runs
        return performance.now();
      }),
    );
    const flushed = await waitFor(() => log.matching(/^Flushed/)[0]);
    expect(flushed.message).toMatch(new RegExp(`^Flushed ${stale + 1} keys of versions v0 in \\d+ ms$`));
    expect(Math.max(...answered)).toBeLessThan(flushed.at);
    // Every instance registers (in the background, so some finish after the flush)…
    await waitFor(() => (log.matching(/^Cache version initialized$/).length === 50 ? true : undefined));
    await sleep(100); // …and, were the lock missing, a second flush would have started by now.
    expect(log.matching(/failed/)).toEqual([]);
    expect(log.matching(/^Cache version changed: v1 → v2, flushing stale versions$/)).toHaveLength(1);
    expect(log.matching(/^Flushed/)).toHaveLength(1);
    expect(await raw.keys("tc:app:v0:*")).toEqual([]);
    expect(await raw.exists("tc:app:v1:k:page")).toBe(1); // kept for rollback
  });

  it("registers once per instance, and retries on a later contact when registering failed", async () => {
    const log = recorder();
    const spy = spied(backend.transport() as Transport);
    const cache = instance("v9", {
      redis: spy.transport,
      logger: log.logger,
      breaker: { failureThreshold: 100 },
    });
    spy.state.down = true;
    expect(await cache.get("page")).toBeUndefined(); // fail-open: the read is a miss, not an error
    // Logged once, by L2 (the registration's own line would repeat it).
    await waitFor(() => log.matching(/^Redis versions failed/)[0]);
    expect(await raw.hGetAll("tc:versions")).toEqual({});
    spy.state.down = false;
    await cache.get("page");
    await waitFor(() => log.matching(/^Cache version initialized$/)[0]);
    expect(Object.keys(await raw.hGetAll("tc:versions"))).toEqual(["app:v9"]);
    await cache.set("page", 1);
    await cache.get("other");
    expect(spy.state.commands.filter((c) => c.name === "HSETNX")).toHaveLength(1);
  });

  it("hands the registration and its flush to waitUntil, and the request does not wait for them", async () => {
    await deploy("v0", { keepVersions: 0 });
    await load("tc:", "v0", 20_000);
    const scheduled: Promise<unknown>[] = [];
    const cache = instance("v1", { keepVersions: 0, waitUntil: (promise) => scheduled.push(promise) });
    let settled = false;
    expect(await cache.get("page")).toBeUndefined();
    expect(scheduled).toHaveLength(1);
    void scheduled[0]!.then(() => {
      settled = true;
    });
    expect(settled).toBe(false);
    expect(await raw.exists("tc:app:v0:k:k19999")).toBe(1);
    expect(await scheduled[0]).toEqual(["v0"]);
    expect(await raw.keys("tc:app:v0:*")).toEqual([]);
  });

  describe("scopes: production and preview on one Redis, with keys tiercache did not write", () => {
    const FOREIGN = ["session:1", "bull:queue", "tc", "tcache:1", "previewtc:1", "preview:session"];
    const roots = { production: "tc:", preview: "preview:tc:" } as const;
    /** Keys each scope removes, for a flush in the environment whose root is `root` (current v2, keep 1). */
    const removedBy: Record<Exclude<FlushScope, "database">, (root: string) => (key: string) => boolean> = {
      "stale-versions": (root) => (key) => key.startsWith(`${root}app:v0:`),
      version: (root) => (key) => key.startsWith(`${root}app:v2:`),
      namespace: (root) => (key) => key.startsWith(`${root}app:`),
      environment: (root) => (key) => key.startsWith(root),
    };

    /** Versions v0, v1, v2 deployed in order in both environments, plus foreign keys. */
    const seed = async () => {
      for (const prefix of [undefined, "preview"]) {
        for (const version of ["v0", "v1", "v2"]) await deploy(version, { prefix, keepVersions: 2 });
        const current = instance("v2", { prefix, keepVersions: 2 });
        // A user key that looks like another version's segment: only exact segments count.
        await current.set("foo:v0:bar", 1);
        await current.set("shared", 1, { versioned: false });
        await current.increment("hits");
        await instance("v2", { prefix, namespace: "other" }).set("page", 1);
      }
      await raw.set("session:1", "s");
      await raw.rPush("bull:queue", "job");
      for (const key of ["tc", "tcache:1", "previewtc:1", "preview:session"]) await raw.set(key, "x");
    };
    // A flush other than stale-versions bumps the namespace's epoch (other instances drop L1): not a cached key.
    // On a cluster the epoch carries its namespace's hash tag: `…:~e:{tc:app}`.
    const cachedKeys = async () => (await allKeys()).filter((key) => !/:~e(:\{[^}]*\})?$/.test(key));

    for (const scope of Object.keys(removedBy) as Exclude<FlushScope, "database">[]) {
      for (const env of ["production", "preview"] as const) {
        it(`"${scope}" in ${env} removes exactly its keys: the other environment and foreign keys survive`, async () => {
          await seed();
          const before = await cachedKeys();
          const cache = instance("v2", { prefix: env === "preview" ? "preview" : undefined });
          const result = await cache.flush({ scope });
          const gone = removedBy[scope](roots[env]);
          const expected = before.filter((key) => !gone(key));
          expect(await cachedKeys()).toEqual(expected);
          expect(result.removed).toBe(before.length - expected.length);
          expect(result.removed).toBeGreaterThan(0);
          for (const key of FOREIGN) expect(expected).toContain(key);
          const other = env === "preview" ? roots.production : roots.preview;
          expect(expected.filter((key) => key.startsWith(other))).toEqual(
            before.filter((key) => key.startsWith(other)),
          );
        });
      }
    }

    it('"database" is FLUSHDB: everything goes, foreign keys included, and only when asked by name', async () => {
      await seed();
      const before = await allKeys();
      const cache = instance("v2");
      expect(await cache.flush({ scope: "database", dryRun: true })).toEqual({
        scope: "database",
        removed: before.length,
      });
      expect(await allKeys()).toEqual(before);
      expect(await cache.flush({ scope: "database" })).toEqual({ scope: "database", removed: before.length });
      expect(await cachedKeys()).toEqual([]);
    });

    it("a dry run counts without removing; progress is reported as batches go", async () => {
      await seed();
      await load("tc:", "v0", 5_000);
      const before = await allKeys();
      const progress: number[] = [];
      const cache = instance("v2");
      const dry = await cache.flush({ dryRun: true, onProgress: (n) => progress.push(n) });
      expect(dry).toEqual({ scope: "stale-versions", removed: 5_001, versions: ["v0"] });
      expect(await allKeys()).toEqual(before);
      expect(progress.length).toBeGreaterThan(1);
      expect(progress).toEqual([...progress].sort((x, y) => x - y));
      expect(progress.at(-1)).toBe(5_001);
    });
  });

  it("a flush clears this instance's L1 too, and other instances' L1 via the epoch", async () => {
    const writer = instance("v1", { l1: { syncMs: 1 } });
    const reader = instance("v1", { l1: { syncMs: 1 } });
    await writer.set("page", "cached");
    expect(await reader.get("page")).toBe("cached"); // now in reader's L1 too
    expect(await writer.flush({ scope: "version" })).toMatchObject({ removed: 1, versions: ["v1"] });
    expect(await writer.get("page")).toBeUndefined();
    await sleep(5);
    await reader.get("page"); // the epoch check rides on this read; L1 is dropped when it moved
    await sleep(20);
    expect(await reader.get("page")).toBeUndefined();
  });

  it("flushes 100,000 keys in SCAN batches of bounded size, without blocking Redis", {
    timeout: 120_000,
  }, async ({ skip }) => {
    // Reads one node's SLOWLOG and CONFIG; the batches are the same code on a cluster, per primary.
    if (backendName === "cluster") skip();
    const count = 100_000;
    await load("tc:", "v0", count);
    await deploy("v0", { keepVersions: 5 });
    await deploy("v1", { keepVersions: 5 });
    const spy = spied(backend.transport() as Transport);
    const cache = cacheOn(backend, {
      redis: spy.transport,
      prefix: undefined,
      namespace: "app",
      version: "v1",
    });
    open.push(cache);
    // Redis-side proof that no command blocked it: the slow log records every command over its
    // threshold (10 ms by default); a KEYS or a 100k-key UNLINK lands there, a 1,000-key batch does not.
    const threshold = Number((await raw.configGet("slowlog-log-slower-than"))["slowlog-log-slower-than"]);
    expect(threshold).toBeGreaterThanOrEqual(0);
    expect(threshold).toBeLessThanOrEqual(10_000);
    const lastSlow = slowlogId((await raw.sendCommand(["SLOWLOG", "GET", "1"])) as unknown[][]);
    const pinger = createPinger(raw);
    const started = performance.now();
    const result = await cache.flush({ keepVersions: 0 });
    const ms = performance.now() - started;
    const worstPingMs = await pinger.stop();
    expect(result).toEqual({ scope: "stale-versions", removed: count + 1, versions: ["v0"] });
    expect(await raw.keys("tc:app:v0:*")).toEqual([]);
    const scans = spy.state.commands.filter((c) => c.name === "SCAN").length;
    const biggestUnlink = Math.max(
      ...spy.state.commands.filter((c) => c.name === "UNLINK").map((c) => c.args),
    );
    expect(scans).toBeGreaterThanOrEqual(count / 1000);
    expect(biggestUnlink).toBeLessThanOrEqual(2_000);
    expect(spy.state.commands.some((c) => c.name === "KEYS" || c.name === "FLUSHDB")).toBe(false);
    const slow = ((await raw.sendCommand(["SLOWLOG", "GET", "128"])) as unknown[][]).filter(
      (entry) => Number(entry[0]) > lastSlow && String((entry[3] as string[]).join(" ")).includes("tc:app:"),
    );
    expect(slow).toEqual([]);
    console.log(
      `[bench] ${backendName}: flushed ${result.removed} keys in ${ms.toFixed(0)} ms ` +
        `(${scans} SCAN batches, largest UNLINK ${biggestUnlink} keys, none in the slow log; ` +
        `slowest concurrent PING seen by the test process ${worstPingMs.toFixed(1)} ms)`,
    );
  });
});

describe("flush without Redis", () => {
  it("throws a CacheError when Redis cannot be reached, whatever failSilently says", async () => {
    const cache = createCache({
      redis: nodeRedis({ url: "redis://127.0.0.1:1" }),
      env: {},
      logger: { warn: () => {} },
    });
    await expect(cache.flush({ scope: "version" })).rejects.toThrow(CacheError);
    await expect(cache.flush({ dryRun: true })).rejects.toThrow(CacheError);
    await cache.close();
  });

  it("on an L1-only cache clears this instance's matching entries", async () => {
    const cache = createCache({ redis: false, env: {}, version: "v1" });
    await cache.set("a", 1);
    await cache.set("b", 2, { versioned: false });
    expect(await cache.flush({ scope: "version" })).toEqual({
      scope: "version",
      removed: 1,
      versions: ["v1"],
    });
    expect([await cache.get("a"), await cache.get("b", { versioned: false })]).toEqual([undefined, 2]);
  });
});

/** The id of the newest slow log entry, or -1. */
function slowlogId(entries: unknown[][]): number {
  return entries.length > 0 ? Number(entries[0]?.[0]) : -1;
}

/** PINGs Redis back to back on its own connection; `stop()` gives the slowest round trip seen. */
function createPinger(raw: NonNullable<Backend["raw"]>) {
  let running = true;
  let worst = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      await raw.ping();
      worst = Math.max(worst, performance.now() - started);
      await sleep(2);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return worst;
    },
  };
}
