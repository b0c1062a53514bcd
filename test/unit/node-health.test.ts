import { describe, expect, it } from "vitest";
import { AbortWatch, NodeHealth } from "../../src/transports/node-redis-nodes.js";

const never = new Promise<never>(() => {});

describe("NodeHealth: which cluster primaries are down, by what their commands did", () => {
  const setup = () => {
    let now = 0;
    const health = new NodeHealth(new AbortWatch(), 500, () => now);
    return { health, at: (ms: number) => (now = ms) };
  };

  it("a command its deadline cut short marks its node down; others stay up (partlyDown)", async () => {
    const { health } = setup();
    const deadline = new AbortController();
    health.track("a:1", never, deadline.signal, () => false);
    health.track("b:1", Promise.resolve("OK"), deadline.signal, () => false);
    expect(health.partlyDown(["a:1", "b:1"])).toBe(false);
    await Promise.resolve(); // b:1 answered before the deadline
    deadline.abort();
    expect(health.isDown("a:1")).toBe(true);
    expect(health.partlyDown(["a:1", "b:1"])).toBe(true);
    // Every primary down is not "partly": the breaker counts that.
    expect(health.partlyDown(["a:1"])).toBe(false);
  });

  it("a deadline does not mark down a node that answered other commands meanwhile (slow, not dead)", async () => {
    const { health, at } = setup();
    const deadline = new AbortController();
    health.track("a:1", never, deadline.signal, () => false);
    at(10);
    health.track("a:1", Promise.resolve("OK"), undefined, () => false);
    await Promise.resolve();
    deadline.abort();
    expect(health.isDown("a:1")).toBe(false);
  });

  it("a down node admits one probe per retry interval; any reply (an error reply too) brings it back", async () => {
    const { health, at } = setup();
    health.track("a:1", Promise.reject(new Error("ECONNREFUSED")), undefined, () => false);
    await Promise.resolve();
    await Promise.resolve();
    expect(health.admit("a:1")).toBe(false);
    at(499);
    expect(health.admit("a:1")).toBe(false);
    at(500);
    expect(health.admit("a:1")).toBe(true); // the probe
    expect(health.admit("a:1")).toBe(false); // only one
    const reply = Promise.reject(new Error("WRONGTYPE"));
    health.track("a:1", reply, undefined, () => true);
    await reply.catch(() => {});
    expect(health.isDown("a:1")).toBe(false);
    expect(health.admit("a:1")).toBe(true);
  });

  it("AbortWatch adds one listener per signal however many commands wait on it", () => {
    const watch = new AbortWatch();
    const controller = new AbortController();
    let added = 0;
    const add = controller.signal.addEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
      added++;
      add(...args);
    }) as typeof add;
    const calls: number[] = [];
    for (let i = 0; i < 50; i++) watch.on(controller.signal, () => calls.push(i));
    const off = watch.on(controller.signal, () => calls.push(-1));
    off();
    controller.abort();
    expect(added).toBe(1);
    expect(calls).toHaveLength(50);
  });
});
