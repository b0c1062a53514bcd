import { afterEach, describe, expect, it, vi } from "vitest";
import { resolveConfig } from "../../src/config.js";
import { CacheError } from "../../src/errors.js";

/** The node-redis transport module as the env wiring sees it: records the options it is given. */
const tcp = vi.hoisted(() => ({
  tcpUnavailable: undefined as string | undefined,
  loadNodeRedis: undefined as (() => Promise<unknown>) | undefined,
}));
vi.mock("../../src/transports/tcp.js", () => tcp);
afterEach(() => {
  tcp.loadNodeRedis = undefined;
});

describe("REDIS_SENTINEL_PASSWORD", () => {
  it("is the Sentinels' own password, next to REDIS_PASSWORD for the data nodes", async () => {
    let given: unknown;
    tcp.loadNodeRedis = async () => ({
      nodeRedis: (options: unknown) => {
        given = options;
        return {
          kind: "node-redis",
          send: async () => null,
          pipeline: async () => [],
          close: async () => {},
        };
      },
    });
    const config = resolveConfig({
      env: {
        REDIS_SENTINELS: "s1:26379",
        REDIS_SENTINEL_MASTER: "mymaster",
        REDIS_SENTINEL_PASSWORD: "sentinels-own",
        REDIS_PASSWORD: "data-nodes",
      },
      logger: { warn: () => {} },
    });
    await config.transport?.();
    expect(given).toMatchObject({
      sentinel: { name: "mymaster", sentinelRootNodes: ["s1:26379"], sentinelPassword: "sentinels-own" },
      password: "data-nodes",
    });
  });

  it.each([
    [{ REDIS_SENTINEL_PASSWORD: "x" }, /REDIS_SENTINEL_PASSWORD is set without REDIS_SENTINELS/],
    [
      { REDIS_SENTINELS: "s:1", REDIS_SENTINEL_MASTER: "m", REDIS_SENTINEL_PASSWORD: "a\r\nb" },
      /REDIS_SENTINEL_PASSWORD/,
    ],
  ])("%j is a CONFIG error that never shows the value", (env, message) => {
    let error: unknown;
    try {
      resolveConfig({ env, logger: { warn: () => {} } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CacheError);
    expect((error as CacheError).code).toBe("CONFIG");
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("a\r\nb");
  });
});
