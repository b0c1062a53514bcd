import { createRequire } from "node:module";
import { afterEach, describe, expect, it, vi } from "vitest";
import { resolveConfig } from "../../src/config.js";
import { CacheError } from "../../src/errors.js";
import { KeySpace } from "../../src/keys.js";
import { slotOf, tagForSlot } from "../../src/slots.js";
import { nodeRedis } from "../../src/transports/node-redis.js";

/** node-redis's own slot function, to check ours against. */
const calculateSlot: (key: string) => number = createRequire(import.meta.url)(
  "@redis/client/dist/lib/utils/calculate-slot.js",
).default;

/** The node-redis transport module as the env wiring sees it: records the options it is given. */
const tcp = vi.hoisted(() => ({
  tcpUnavailable: undefined as string | undefined,
  loadNodeRedis: undefined as (() => Promise<unknown>) | undefined,
}));
vi.mock("../../src/transports/tcp.js", () => tcp);
afterEach(() => {
  tcp.loadNodeRedis = undefined;
});

async function optionsFromEnv(env: Record<string, string>): Promise<unknown> {
  let given: unknown;
  tcp.loadNodeRedis = async () => ({
    nodeRedis: (options: unknown) => {
      given = options;
      return { kind: "node-redis", send: async () => null, pipeline: async () => [], close: async () => {} };
    },
  });
  const config = resolveConfig({ env, logger: { warn: () => {} } });
  await config.transport?.();
  return { given, slotted: config.slotted };
}

describe("Cluster and Sentinel from the environment", () => {
  it("REDIS_CLUSTER_NODES: every node, with REDIS_PASSWORD and REDIS_TLS for all of them; keys get hash tags", async () => {
    expect(
      await optionsFromEnv({
        REDIS_CLUSTER_NODES: "10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002",
        REDIS_PASSWORD: "s3cret",
        REDIS_TLS: "true",
      }),
    ).toEqual({
      given: {
        cluster: { rootNodes: ["10.0.0.1:7000", "10.0.0.2:7001", "[::1]:7002"] },
        password: "s3cret",
        tls: true,
      },
      slotted: true,
    });
  });

  it("REDIS_SENTINELS + REDIS_SENTINEL_MASTER: the Sentinels and the primary's name; no hash tags", async () => {
    expect(
      await optionsFromEnv({
        REDIS_SENTINELS: "s1:26379,s2:26379,s3:26379",
        REDIS_SENTINEL_MASTER: "mymaster",
        REDIS_PASSWORD: "pw",
        REDIS_DB: "2",
      }),
    ).toEqual({
      given: {
        sentinel: { name: "mymaster", sentinelRootNodes: ["s1:26379", "s2:26379", "s3:26379"] },
        password: "pw",
        tls: undefined,
        db: 2,
      },
      slotted: false,
    });
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: "10.0.0.1" }, /REDIS_CLUSTER_NODES.*host:port/],
    [{ REDIS_CLUSTER_NODES: "a:1,,b:2" }, /REDIS_CLUSTER_NODES/],
    [{ REDIS_SENTINELS: "s1:26379" }, /REDIS_SENTINEL_MASTER/],
    [{ REDIS_SENTINEL_MASTER: "mymaster" }, /REDIS_SENTINELS/],
    [{ REDIS_CLUSTER_NODES: "a:1", REDIS_URL: "redis://b:2" }, /REDIS_CLUSTER_NODES and REDIS_URL/],
    [{ REDIS_CLUSTER_NODES: "a:1", REDIS_SENTINELS: "s:1", REDIS_SENTINEL_MASTER: "m" }, /set only one/],
    [{ REDIS_CLUSTER_NODES: "a:1", REDIS_DB: "3" }, /REDIS_DB must be 0/],
  ])("%j is a CONFIG error at createCache", (env, message) => {
    let error: unknown;
    try {
      resolveConfig({ env, logger: { warn: () => {} } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CacheError);
    expect((error as CacheError).code).toBe("CONFIG");
    expect((error as Error).message).toMatch(message);
  });

  it("nodeRedis checks cluster and Sentinel options when it is called, naming the option only", () => {
    expect(() => nodeRedis({ cluster: { rootNodes: [] } })).toThrow(
      /cluster.rootNodes needs at least one node/,
    );
    expect(() => nodeRedis({ cluster: { rootNodes: ["nohost"] } })).toThrow(/host:port/);
    expect(() => nodeRedis({ cluster: { rootNodes: ["a:99999"] } })).toThrow(/port 1–65535/);
    expect(() => nodeRedis({ sentinel: { name: "", sentinelRootNodes: ["s:1"] } })).toThrow(/sentinel.name/);
    expect(() =>
      nodeRedis({ cluster: { rootNodes: ["a:1"] }, sentinel: { name: "m", sentinelRootNodes: ["s:1"] } }),
    ).toThrow(/not both/);
    expect(() => nodeRedis({ cluster: { rootNodes: ["a:1"] }, url: "redis://:pw@b:2" })).toThrow(
      /not from `url`/,
    );
    const transport = nodeRedis({ cluster: { rootNodes: [{ host: "a", port: 1 }] }, password: "zz-secret" });
    expect(transport.slotted).toBe(true);
    expect(transport.redact?.("AUTH zz-secret")).not.toContain("zz-secret");
    expect(nodeRedis({ sentinel: { name: "m", sentinelRootNodes: ["s:1"] } }).slotted).toBe(false);
  });
});

describe("hash slots", () => {
  it("slotOf computes what Redis (and node-redis) compute, hash tags included", () => {
    for (const key of [
      "",
      "foo",
      "tc:app:1:k:user:1",
      "{user1}:a",
      "a{}b",
      "a{b",
      "}{x}",
      "{}{y}",
      "ключ",
      "a{é}",
    ])
      expect(slotOf(key), key).toBe(calculateSlot(key));
  });

  it("tagForSlot finds a short tag for any slot", () => {
    for (const slot of [0, 1, 8191, 16383, 12182]) {
      const tag = tagForSlot(slot);
      expect(tag.length).toBeLessThanOrEqual(4);
      expect(slotOf(`{${tag}}anything{else}`)).toBe(slot);
    }
  });

  it("on a cluster, a namespace's epoch and tag marks share a slot, a lease takes its entry's, entries spread", async () => {
    const keys = new KeySpace("preview", "app", "v1", true);
    expect(keys.epoch).toBe("preview:tc:app:~e:{preview:tc:app}");
    expect(keys.tag("user:1")).toBe("preview:tc:app:~t:{preview:tc:app}:user:1");
    const slot = slotOf(keys.epoch);
    for (const tag of ["a", "user:{1}", "x".repeat(300)]) expect(slotOf(keys.tag(tag))).toBe(slot);
    const entries = await Promise.all(
      ["a", "b", "user:{1}:x", "}{", "{}z", "k".repeat(400)].map((key) => keys.entry(key)),
    );
    for (const full of entries) {
      const lease = keys.lease(full);
      expect(lease.startsWith("preview:tc:app:~l:{")).toBe(true);
      expect(slotOf(lease)).toBe(slotOf(full));
    }
    expect(new Set(entries.map(slotOf)).size).toBeGreaterThan(3);
    // One node keeps the names it always had.
    const plain = new KeySpace("preview", "app", "v1");
    expect([plain.epoch, plain.tag("t"), plain.lease(plain.entry("a") as string)]).toEqual([
      "preview:tc:app:~e",
      "preview:tc:app:~t:t",
      "preview:tc:app:~l:v1:k:a",
    ]);
  });
});
