import { describe, expect, it } from "vitest";
import { Breaker } from "../../src/tiers/breaker.js";
import { L2 } from "../../src/tiers/l2.js";
import type { Transport } from "../../src/transports/types.js";

/** A transport that never answers: only deadlines end its commands. */
const silent: Transport = {
  kind: "silent",
  send: () => new Promise(() => {}),
  pipeline: () => new Promise(() => {}),
  close: async () => {},
};

const tier = (breaker: Breaker) =>
  new L2(
    async () => silent,
    "silent",
    100,
    breaker,
    () => {},
  );

describe("L2 budget", () => {
  it("a call's operations share one timeoutMs; once spent, the next fails at once without Redis", async () => {
    const breaker = new Breaker(100, 1000, () => {});
    const l2 = tier(breaker);
    const budget = l2.budget();
    const started = performance.now();
    await expect(l2.get("a", budget)).rejects.toMatchObject({ code: "TIMEOUT" });
    await expect(l2.send(["SET", "a", "1"], "SET", budget)).rejects.toMatchObject({ code: "TIMEOUT" });
    await expect(l2.pipeline([["DEL", "a"]], "DEL", budget)).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(performance.now() - started).toBeLessThan(100 + 50);
  });

  it("a deadline cut short by the budget does not count for the breaker", async () => {
    const breaker = new Breaker(1, 1000, () => {});
    const l2 = tier(breaker);
    const budget = l2.budget();
    budget.spend(90);
    await expect(l2.send(["GET", "a"], "GET", budget)).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(breaker.state).toBe("closed");
    await expect(l2.send(["GET", "a"])).rejects.toMatchObject({ code: "TIMEOUT" });
    expect(breaker.state).toBe("open");
  });

  it("after close(), operations fail with CLOSED and never create a transport again", async () => {
    let created = 0;
    const l2 = new L2(
      async () => {
        created++;
        return silent;
      },
      "silent",
      100,
      new Breaker(5, 1000, () => {}),
      () => {},
    );
    await l2.close();
    await expect(l2.send(["PING"])).rejects.toMatchObject({ code: "CLOSED" });
    await expect(l2.get("a")).rejects.toMatchObject({ code: "CLOSED" });
    expect(created).toBe(0);
  });
});
