import { afterEach, describe, expect, it, vi } from "vitest";
import { resolveConfig } from "../../src/config.js";
import { CacheError } from "../../src/errors.js";
import { Cache } from "../../src/index.js";
import type { Transport } from "../../src/transports/types.js";

/** What the `#tcp` import gives the core: the Node build's loader, or the Workers/Edge build's refusal. */
const tcp = vi.hoisted(() => ({
  tcpUnavailable: undefined as string | undefined,
  loadNodeRedis: undefined as (() => Promise<unknown>) | undefined,
}));
vi.mock("../../src/transports/tcp.js", () => tcp);

afterEach(() => {
  tcp.tcpUnavailable = undefined;
  tcp.loadNodeRedis = undefined;
});

function recordingLogger() {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => lines.push({ level, message });
  return { lines, logger: { warn: at("warn"), error: at("error"), info: at("info") } };
}

describe("TCP from env where it cannot work", () => {
  it("REDIS_URL in a Workers/Edge build is a CONFIG error at createCache, naming the way out", () => {
    tcp.tcpUnavailable = "TCP connections to Redis need the Node.js runtime";
    let error: unknown;
    try {
      new Cache({ env: { REDIS_URL: "redis://default:zzsecret@cache.internal:6379" } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CacheError);
    expect((error as CacheError).code).toBe("CONFIG");
    expect((error as Error).message).toMatch(
      /REDIS_URL is set, but TCP connections to Redis need the Node\.js/,
    );
    expect((error as Error).message).toContain("UPSTASH_REDIS_REST_URL");
    expect((error as Error).message).not.toMatch(/zzsecret|cache\.internal/);
    expect(() => new Cache({ env: { REDIS_HOST: "cache.internal" } })).toThrow(/REDIS_HOST is set/);
  });

  it("the REST variables win there, so an app that sets both still works", () => {
    tcp.tcpUnavailable = "TCP connections to Redis need the Node.js runtime";
    const env = {
      REDIS_URL: "redis://127.0.0.1:6379",
      UPSTASH_REDIS_REST_URL: "https://eu1.upstash.io",
      UPSTASH_REDIS_REST_TOKEN: "AXtoken",
    };
    expect(resolveConfig({ env }).transportKind).toBe("upstash");
  });

  describe("REDIS_URL without the redis package", () => {
    /** The node-redis transport as it behaves when `import("redis")` fails. */
    function withoutRedisPackage() {
      let loads = 0;
      tcp.loadNodeRedis = async () => {
        loads++;
        return {
          nodeRedis: (): Transport => ({
            kind: "node-redis",
            warmup: async () => {
              throw Object.assign(new Error("Cannot find package 'redis' imported from /app/chunk.js"), {
                code: "ERR_MODULE_NOT_FOUND",
              });
            },
            send: async () => {
              throw new Error("unreachable: never warmed up");
            },
            pipeline: async () => {
              throw new Error("unreachable: never warmed up");
            },
            close: async () => {},
          }),
        };
      };
      return { loads: () => loads };
    }

    it("logs one clear error, then runs from L1 and loaders; health() says why", async () => {
      const module = withoutRedisPackage();
      const { lines, logger } = recordingLogger();
      const cache = new Cache({ env: { REDIS_URL: "redis://127.0.0.1:6379" }, logger });
      for (let i = 0; i < 20; i++) {
        expect(await cache.getOrSet(`k${i % 3}`, () => i % 3)).toBe(i % 3);
        await cache.set(`s${i}`, i);
        expect(await cache.get(`s${i}`)).toBe(i);
      }
      expect(lines.filter((line) => line.level !== "info")).toEqual([
        {
          level: "error",
          message: expect.stringContaining('REDIS_URL is set, but the package "redis" could not'),
        },
      ]);
      expect(lines[0]?.message ?? "").toContain("npm i redis");
      const health = await cache.health();
      expect(health.healthy).toBe(false);
      expect(health.error).toContain("npm i redis");
      expect(module.loads()).toBe(1);
    });

    it("with failSilently off, operations reject with that CONFIG error", async () => {
      withoutRedisPackage();
      const { logger } = recordingLogger();
      const cache = new Cache({ env: { REDIS_URL: "redis://127.0.0.1:6379" }, logger, failSilently: false });
      await expect(cache.get("a")).rejects.toMatchObject({
        code: "CONFIG",
        message: expect.stringMatching(/"redis"/),
      });
      await expect(cache.set("a", 1)).rejects.toMatchObject({ code: "CONFIG" });
    });
  });
});
