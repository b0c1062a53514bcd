import { describe, expect, it } from "vitest";
import { Cache, createCache } from "../../src/index.js";

const env = { REDIS_URL: "redis://127.0.0.1:1", REDIS_CACHE_VERSION: "v1" };

describe("createCache: one instance per process for configuration from env", () => {
  it("equal plain options and environment give the same instance, in any key order", () => {
    const a = createCache({ env, ttl: "1m", namespace: "shared-a" });
    const b = createCache({ namespace: "shared-a", ttl: "1m", env: { ...env } });
    expect(b).toBe(a);
    expect(createCache({ env, ttl: "2m", namespace: "shared-a" })).not.toBe(a);
    expect(
      createCache({ env: { ...env, REDIS_CACHE_VERSION: "v2" }, ttl: "1m", namespace: "shared-a" }),
    ).not.toBe(a);
  });

  it("module copies (Next.js bundle layers, dev reloads) share it: it lives on globalThis", () => {
    const a = createCache({ env, namespace: "shared-b" });
    const registry = (globalThis as Record<symbol, Map<string, unknown>>)[Symbol.for("tiercache.shared")];
    expect([...(registry?.values() ?? [])]).toContain(a);
  });

  it("a Worker's env counts by the variables tiercache reads, not its bindings", () => {
    const bindings = (kv: object) => ({ ...env, KV: kv, ASSETS: { fetch: () => {} } });
    const a = createCache({ env: bindings({}), namespace: "shared-c" });
    expect(createCache({ env: bindings({}), namespace: "shared-c" })).toBe(a);
  });

  it("never shares what carries code or a transport: logger, callbacks, redis", () => {
    const a = createCache({ env, namespace: "shared-d" });
    expect(createCache({ env, namespace: "shared-d", logger: { warn: () => {} } })).not.toBe(a);
    expect(createCache({ env, namespace: "shared-d", onEvent: () => {} })).not.toBe(a);
    expect(createCache({ env, namespace: "shared-d", redis: false })).not.toBe(a);
    expect(new Cache({ env, namespace: "shared-d" })).not.toBe(a);
  });

  it("after close() the next createCache makes a new instance", async () => {
    const a = createCache({ env, namespace: "shared-e" });
    await a.close();
    const b = createCache({ env, namespace: "shared-e" });
    expect(b).not.toBe(a);
    expect(createCache({ env, namespace: "shared-e" })).toBe(b);
  });
});
