import { describe, expect, it } from "vitest";
import { readEnv, resolveConfig, resolveVersion } from "../../src/config.js";
import { toMs } from "../../src/duration.js";
import { CacheError } from "../../src/errors.js";

describe("environment", () => {
  it("names every bad variable in one clear error, never its value", () => {
    const env = {
      REDIS_PORT: "abc",
      UPSTASH_REDIS_REST_URL: "not a url",
      UPSTASH_REDIS_REST_TOKEN: "s3cret-token",
      REDIS_PASSWORD: "hunter2",
      CACHE_ENABLED: "maybe",
    };
    let error: unknown;
    try {
      readEnv(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CacheError);
    const message = (error as Error).message;
    for (const name of ["REDIS_PORT", "UPSTASH_REDIS_REST_URL", "CACHE_ENABLED"])
      expect(message).toContain(name);
    for (const secret of ["s3cret-token", "hunter2", "not a url"]) expect(message).not.toContain(secret);
  });

  it("a REST URL without its token is an error at createCache", () => {
    expect(() => resolveConfig({ env: { KV_REST_API_URL: "https://x.example" } })).toThrow(
      /KV_REST_API_TOKEN is missing/,
    );
  });

  it("no Redis configured, or REDIS_ENABLED=false, means L1 only", () => {
    expect(resolveConfig({ env: {} }).transport).toBeNull();
    const disabled = resolveConfig({ env: { REDIS_ENABLED: "false", REDIS_URL: "redis://127.0.0.1:1" } });
    expect(disabled.transportKind).toBe("none");
    expect(resolveConfig({ env: { REDIS_URL: "redis://127.0.0.1:1" } }).transportKind).toBe("node-redis");
    expect(
      resolveConfig({ env: { UPSTASH_REDIS_REST_URL: "https://x.example", UPSTASH_REDIS_REST_TOKEN: "t" } })
        .transportKind,
    ).toBe("upstash");
  });

  it("options passed in code win over env", () => {
    const env = {
      CACHE_TTL_DEFAULT: "60",
      REDIS_ENV: "staging",
      CACHE_FAIL_SILENTLY: "false",
      CACHE_ENABLED: "0",
    };
    const fromEnv = resolveConfig({ env });
    expect(fromEnv).toMatchObject({ ttlMs: 60_000, prefix: "staging", failSilently: false, enabled: false });
    const fromCode = resolveConfig({ env, ttl: "2m", prefix: "mine", failSilently: true, enabled: true });
    expect(fromCode).toMatchObject({ ttlMs: 120_000, prefix: "mine", failSilently: true, enabled: true });
  });

  it("previews get their own prefix by default, production none", () => {
    expect(resolveConfig({ env: { VERCEL_ENV: "preview" } }).prefix).toBe("preview");
    expect(resolveConfig({ env: { VERCEL_ENV: "production" } }).prefix).toBeUndefined();
    expect(resolveConfig({ env: { VERCEL_ENV: "preview", REDIS_ENV: "pr-12" } }).prefix).toBe("pr-12");
  });

  it("version: REDIS_CACHE_VERSION beats the commit SHA (cut to 8) beats '1'", () => {
    const sha = "0123456789abcdef0123";
    expect(resolveVersion({ REDIS_CACHE_VERSION: "v7", VERCEL_GIT_COMMIT_SHA: sha })).toBe("v7");
    expect(resolveVersion({ VERCEL_GIT_COMMIT_SHA: sha })).toBe("01234567");
    expect(resolveVersion({})).toBe("1");
    expect(resolveConfig({ env: { VERCEL_GIT_COMMIT_SHA: sha } }).version).toBe("01234567");
  });

  it("rejects options that cannot be a key segment or a duration", () => {
    expect(() => resolveConfig({ env: {}, namespace: "a:b" })).toThrow(CacheError);
    expect(() => resolveConfig({ env: {}, version: "" })).toThrow(CacheError);
    expect(() => resolveConfig({ env: {}, ttl: "5 minutes" })).toThrow(/invalid ttl/);
    expect(() => resolveConfig({ env: {}, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => resolveConfig({ env: { REDIS_ENV: "tc" } })).toThrow(/reserved/);
  });
});

describe("durations", () => {
  it.each([
    [250, 250],
    ["250ms", 250],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1.5s", 1500],
  ])("%j is %d ms", (input, ms) => {
    expect(toMs(input)).toBe(ms);
  });

  it.each([-1, Number.NaN, "5", "5 min", "", "1w"])("%j is a clear error", (input) => {
    expect(() => toMs(input as never)).toThrow(/use milliseconds/);
  });
});
