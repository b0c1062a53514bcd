import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RedisArg, RedisReply, Transport } from "../../src/transports/types.js";
import type { Schema } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

/**
 * Races the soak (bench/soak.ts) found between this instance's own invalidations and work already
 * under way: a caller arriving after an invalidation must not join a single flight begun before it,
 * a Redis read that left before a local delete or set must not put the old value back into L1, and
 * a read of a tag mark that left before a local invalidateTags must not undo it, nor a read that
 * passed its tag check before it refill L1.
 */

/**
 * A transport whose read replies (or only those `picked`) are held until the test lets them go;
 * writes pass straight through.
 */
function heldReads(inner: Transport, picked: (command: readonly RedisArg[]) => boolean = () => true) {
  const held: (() => void)[] = [];
  let holding = false;
  const isRead = (command: readonly RedisArg[]) =>
    (command[0] === "GET" || command[0] === "MGET") && picked(command);
  const transport: Transport = {
    ...inner,
    kind: inner.kind,
    send: async (command, signal) => {
      const reply = await inner.send(command, signal);
      // Redis has answered; the answer is held on its way back, as on a slow network.
      if (holding && isRead(command)) await new Promise<void>((resolve) => held.push(resolve));
      return reply as RedisReply;
    },
    pipeline: (commands, signal) => inner.pipeline(commands, signal),
    close: () => inner.close(),
  };
  return {
    transport,
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const go of held.splice(0)) go();
    },
    waiting: () => held.length,
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 5));

for (const name of ["l1", "node-redis", "upstash"] as const) {
  describe(`races with this instance's invalidations (${name})`, () => {
    let backend: Backend;
    beforeAll(async () => {
      backend = await openBackend(name, name === "l1" ? "" : await isolatedRedisUrl());
    });
    afterAll(() => backend.close());

    it.each(["set", "delete", "invalidateTags"] as const)(
      "a getOrSet after a %s does not join the flight begun before it",
      async (invalidation) => {
        const cache = cacheOn(backend, { timeoutMs: 5000 });
        let release: ((value: string) => void) | undefined;
        const first = cache.getOrSet("k", () => new Promise<string>((resolve) => (release = resolve)), {
          tags: ["t"],
        });
        while (!release) await tick(); // its loader runs
        if (invalidation === "set") await cache.set("k", "newer", { tags: ["t"] });
        else if (invalidation === "delete") await cache.delete("k");
        else await cache.invalidateTags(["t"]);
        const second = cache.getOrSet("k", async () => "reloaded", { tags: ["t"] });
        release("older");
        expect(await first).toBe("older"); // the caller that started it may still get it
        expect(await second).toBe(invalidation === "set" ? "newer" : "reloaded");
        await cache.close();
      },
    );
  });
}

describe("a read that left before a local write does not refill L1 with the old value (node-redis)", () => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend("node-redis", await isolatedRedisUrl());
  });
  afterAll(() => backend.close());

  it.each(["set", "delete"] as const)("%s while the read is in flight", async (write) => {
    const writer = cacheOn(backend, { timeoutMs: 5000 });
    const reads = heldReads(backend.transport() as Transport);
    const reader = cacheOn(backend, { prefix: writer.keys.prefix, redis: reads.transport, timeoutMs: 5000 });
    await writer.set("k", "old");
    await reader.connect();
    reads.hold();
    const inFlight = reader.get("k");
    while (reads.waiting() === 0) await tick();
    if (write === "set") await reader.set("k", "new");
    else await reader.delete("k");
    reads.release();
    expect(["old", "new", undefined]).toContain(await inFlight); // it began before the write: any is fair
    expect(await reader.get("k")).toBe(write === "set" ? "new" : undefined);
    await Promise.all([writer.close(), reader.close()]);
  });
});

describe("an instance's own write, read back from Redis after an L1 drop, goes into L1 again (node-redis)", () => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend("node-redis", await isolatedRedisUrl());
  });
  afterAll(() => backend.close());

  it("a compressed value (its write takes more than a millisecond) is an L1 hit after one L2 read", async () => {
    const background: Promise<unknown>[] = [];
    const a = cacheOn(backend, { l1: { syncMs: 20 }, timeoutMs: 5000, waitUntil: (p) => background.push(p) });
    const b = cacheOn(backend, { prefix: a.keys.prefix, timeoutMs: 5000 });
    const big = "x".repeat(40_000); // compressed before it goes to Redis
    await a.set("big", big);
    await b.delete("other"); // moves the epoch: A drops its L1 at its next check
    await new Promise((resolve) => setTimeout(resolve, 30));
    await a.get("other");
    await Promise.all(background.splice(0));
    const before = a.stats().hits;
    expect(await a.get("big")).toBe(big);
    expect(await a.get("big")).toBe(big);
    const after = a.stats().hits;
    expect([after.l2 - before.l2, after.l1 - before.l1]).toEqual([1, 1]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe("this instance's invalidateTags wins over reads already under way (node-redis)", () => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await openBackend("node-redis", await isolatedRedisUrl());
  });
  afterAll(() => backend.close());

  it("a mark read before it does not undo it, even when the known marks were dropped for an epoch move in between", async () => {
    const other = cacheOn(backend, { timeoutMs: 5000 });
    const tagKey = other.keys.tag("t");
    const reads = heldReads(backend.transport() as Transport, (command) => command.includes(tagKey));
    const reader = cacheOn(backend, { prefix: other.keys.prefix, redis: reads.transport, timeoutMs: 5000 });
    await other.set("k", "old", { tags: ["t"] });
    await reader.connect();
    reads.hold();
    const inFlight = reader.get("k"); // its read of the mark of t is held: Redis answered "never invalidated"
    while (reads.waiting() === 0) await tick();
    // An invalidation elsewhere: the reader's own bump below sees the epoch moved and drops the
    // marks it knows, its own new mark of t included.
    await other.delete("elsewhere");
    await reader.invalidateTags(["t"]);
    reads.release();
    expect(["old", undefined]).toContain(await inFlight); // it began before the invalidation
    expect(await reader.get("k")).toBeUndefined();
    await Promise.all([other.close(), reader.close()]);
  });

  it("a read that passed the tag check before it does not refill L1 with the old value", async () => {
    const writer = cacheOn(backend, { timeoutMs: 5000 });
    const reader = cacheOn(backend, { prefix: writer.keys.prefix, timeoutMs: 5000 });
    await writer.set("k", "old", { tags: ["t"] });
    let checked: (() => void) | undefined;
    // A schema that checks asynchronously holds the read between its tag check and L1.
    const slow: Schema<unknown> = {
      "~standard": {
        version: 1,
        vendor: "test",
        validate: (value) => new Promise((resolve) => (checked = () => resolve({ value }))),
      },
    };
    const inFlight = reader.get("k", { schema: slow });
    while (!checked) await tick();
    await reader.invalidateTags(["t"]);
    checked();
    expect(["old", undefined]).toContain(await inFlight); // it began before the invalidation
    expect(await reader.get("k")).toBeUndefined();
    await Promise.all([writer.close(), reader.close()]);
  });
});
