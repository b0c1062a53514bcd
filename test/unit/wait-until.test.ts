import { afterEach, describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import type { Transport } from "../../src/transports/types.js";

const vercelSlot = Symbol.for("@vercel/request-context");

/** A transport whose writes (SET, a write-back's EVAL) only complete when the test says so, to see who waits for them. */
function slowWrites() {
  const pending: (() => void)[] = [];
  const transport: Transport = {
    kind: "memory",
    send: (command) =>
      command[0] === "SET" || command[0] === "EVAL"
        ? new Promise((resolve) => pending.push(() => resolve(command[0] === "SET" ? "OK" : 1)))
        : Promise.resolve(null),
    pipeline: async (commands) => commands.map(() => null),
    close: async () => {},
  };
  const release = () => {
    for (const done of pending.splice(0)) done();
  };
  return { transport, release };
}

describe("background work inside a Vercel request", () => {
  afterEach(() => {
    delete (globalThis as Record<symbol, unknown>)[vercelSlot];
  });

  it("a miss's Redis write goes to the request's waitUntil instead of delaying the response", async () => {
    const received: Promise<unknown>[] = [];
    (globalThis as Record<symbol, unknown>)[vercelSlot] = {
      get: () => ({ waitUntil: (promise: Promise<unknown>) => received.push(promise) }),
    };
    const { transport, release } = slowWrites();
    const cache = createCache({ redis: transport, env: {}, logger: { warn: () => {} } });
    expect(await cache.getOrSet("k", async () => "v")).toBe("v"); // returned while the SET is pending
    expect(received.length).toBeGreaterThanOrEqual(1);
    release();
    await Promise.all(received);
  });

  it("outside one (no slot, no waitUntil option), the write is awaited", async () => {
    const { transport, release } = slowWrites();
    const cache = createCache({ redis: transport, env: {}, logger: { warn: () => {} } });
    let settled = false;
    const pending = cache
      .getOrSet("k", async () => "v")
      .then(() => {
        settled = true;
      });
    await new Promise((r) => setTimeout(r, 20));
    expect(settled).toBe(false);
    release();
    await pending;
    expect(settled).toBe(true);
  });
});
