import { describe, expect, it } from "vitest";
import { Breaker } from "../../src/tiers/breaker.js";
import type { BreakerState } from "../../src/types.js";

describe("circuit breaker", () => {
  it("opens after the threshold, probes once when half-open, closes on success", () => {
    const changes: BreakerState[] = [];
    const breaker = new Breaker(3, 1000, (s) => changes.push(s));
    breaker.failure(0);
    breaker.failure(0);
    expect(breaker.allow(0)).toBe(true);
    breaker.failure(0);
    expect(breaker.state).toBe("open");
    expect(breaker.allow(999)).toBe(false);
    expect(breaker.allow(1000)).toBe(true);
    expect(breaker.state).toBe("half-open");
    expect(breaker.allow(1000)).toBe(false);
    breaker.success();
    expect(breaker.state).toBe("closed");
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("a probe without a verdict gives its turn back: the next operation probes", () => {
    const breaker = new Breaker(1, 100, () => {});
    breaker.failure(0);
    expect(breaker.allow(100)).toBe(true);
    expect(breaker.allow(100)).toBe(false);
    breaker.inconclusive();
    expect(breaker.state).toBe("half-open");
    expect(breaker.allow(101)).toBe(true);
    breaker.success();
    expect(breaker.state).toBe("closed");
  });

  it("a failed probe opens it again for another period", () => {
    const breaker = new Breaker(1, 100, () => {});
    breaker.failure(0);
    expect(breaker.allow(100)).toBe(true);
    breaker.failure(100);
    expect(breaker.state).toBe("open");
    expect(breaker.allow(150)).toBe(false);
    expect(breaker.allow(200)).toBe(true);
  });

  it("a success resets the count of failures in a row", () => {
    const breaker = new Breaker(2, 100, () => {});
    breaker.failure(0);
    breaker.success();
    breaker.failure(0);
    expect(breaker.state).toBe("closed");
  });
});
