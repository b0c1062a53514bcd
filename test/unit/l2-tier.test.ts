import { describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { Invalidations } from "../../src/invalidation.js";
import type { Transport } from "../../src/transports/types.js";

describe("L2 tier", () => {
  it("a transport's warm-up (loading its client) is not charged to the first deadline", async () => {
    const transport: Transport = {
      kind: "slow-start",
      warmup: () => new Promise((resolve) => setTimeout(resolve, 300)),
      send: async () => "PONG",
      pipeline: async (commands) => commands.map(() => null),
      close: async () => {},
    };
    const cache = createCache({ redis: transport, env: { CACHE_FAIL_SILENTLY: "false" }, timeoutMs: 100 });
    expect(await cache.ping()).toBeGreaterThanOrEqual(0);
  });
});

describe("known tag marks", () => {
  it("are bounded: past the cap they are forgotten and fetched again", () => {
    const state = new Invalidations(1000);
    state.remember("first", null);
    for (let i = 0; i < 10_000; i++) state.remember(`t${i}`, { at: i, soft: false });
    expect(state.mark("first")).toBeUndefined();
  });
});
