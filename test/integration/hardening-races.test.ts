import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RedisArg, RedisReply, Transport } from "../../src/transports/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

/**
 * Races the soak (bench/soak.ts) found between this instance's own invalidations and work already
 * under way: a caller arriving after an invalidation must not join a single flight begun before it,
 * and a Redis read that left before a local delete or set must not put the old value back into L1.
 */

/** A transport whose read replies are held until the test lets them go (writes pass straight through). */
function heldReads(inner: Transport) {
  const held: (() => void)[] = [];
  let holding = false;
  const isRead = (command: readonly RedisArg[]) => command[0] === "GET" || command[0] === "MGET";
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
