import { describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { Invalidations } from "../../src/invalidation.js";
import { Breaker } from "../../src/tiers/breaker.js";
import { Budget } from "../../src/tiers/budget.js";
import { L2 } from "../../src/tiers/l2.js";
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

describe("L2 breaker", () => {
  it("a half-open probe cut short by its call's budget does not leave the breaker waiting forever", async () => {
    let hang = true;
    const transport: Transport = {
      kind: "flaky",
      send: () => (hang ? new Promise(() => {}) : Promise.resolve("PONG")),
      pipeline: async (commands) => commands.map(() => null),
      close: async () => {},
    };
    const breaker = new Breaker(1, 50, () => {});
    const l2 = new L2(
      async () => transport,
      "flaky",
      100,
      breaker,
      () => {},
    );
    await expect(l2.send(["PING"])).rejects.toThrow();
    expect(breaker.state).toBe("open");
    await new Promise((resolve) => setTimeout(resolve, 60));
    // The probe: a call that has 20 ms of its budget left, cut short before Redis could answer.
    const budget = new Budget(100);
    budget.spend(80);
    await expect(l2.send(["PING"], "PING", budget)).rejects.toThrow();
    expect(breaker.state).toBe("half-open");
    hang = false;
    expect(await l2.send(["PING"])).toBe("PONG");
    expect(breaker.state).toBe("closed");
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
