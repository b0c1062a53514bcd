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

/** The CacheError `resolveConfig` throws for `env`, or a failure when it does not throw one. */
function configError(env: Record<string, string>): CacheError {
  try {
    resolveConfig({ env });
  } catch (error) {
    if (error instanceof CacheError) return error;
    throw error;
  }
  throw new Error(`no error for ${Object.keys(env).join(", ")}`);
}

describe("environment: what node-redis or an HTTP header could not take fails at createCache", () => {
  it.each([
    ["a port out of range", "redis://cache.internal:99999"],
    ["port 0", "redis://cache.internal:0"],
    ["a database that is not a number", "redis://cache.internal:6379/notanumber"],
    ["no host", "redis://"],
    ["a character no host has", "redis://cache^internal:6379"],
    ["malformed percent-encoding in the password", "redis://user:zzsecret%zz@cache.internal:6379"],
    ["a line break in the password", "redis://user:zzsecret%0D%0A@cache.internal:6379"],
    ["a query string", "redis://cache.internal:6379/0?password=zzsecret"],
  ])("REDIS_URL with %s is a CONFIG error naming the variable, not the value", (_what, url) => {
    const error = configError({ REDIS_URL: url });
    expect(error.code).toBe("CONFIG");
    expect(error.message).toContain("REDIS_URL");
    expect(error.message).not.toContain("cache.internal");
    expect(error.message).not.toContain("zzsecret");
  });

  it.each([
    "redis://127.0.0.1:6379",
    "rediss://default:s3cret@cache.internal:6380/2",
    "redis://[::1]:6379/0",
    "redis://cache.internal",
    "redis://:p%40ss@cache.internal/",
  ])("accepts %s", (url) => {
    expect(resolveConfig({ env: { REDIS_URL: url } }).transportKind).toBe("node-redis");
  });

  it.each([
    ["UPSTASH_REDIS_REST_TOKEN", "UPSTASH_REDIS_REST_URL"],
    ["KV_REST_API_TOKEN", "KV_REST_API_URL"],
  ])("%s with CR/LF, NUL, spaces or non-ASCII is a CONFIG error that never echoes it", (name, urlName) => {
    for (const token of ["AXsecret\r\nX-Evil: 1", "AXsecret\0", "AX secret", "AXsecré", "AXsecret\t"]) {
      const error = configError({ [urlName]: "https://eu1.upstash.io", [name]: token });
      expect(error.code).toBe("CONFIG");
      expect(error.message).toContain(name);
      expect(error.message).not.toContain("secret");
    }
    expect(
      resolveConfig({ env: { [urlName]: "https://eu1.upstash.io", [name]: "AX_a-b=c+/9" } }).transportKind,
    ).toBe("upstash");
  });

  it("REDIS_PASSWORD with CR, LF or NUL is a CONFIG error that never echoes it", () => {
    for (const password of ["hunter2\r\nFLUSHALL", "hunter2\n", "hunter2\0"]) {
      const error = configError({ REDIS_HOST: "127.0.0.1", REDIS_PASSWORD: password });
      expect(error.message).toContain("REDIS_PASSWORD");
      expect(error.message).not.toContain("hunter2");
    }
    expect(resolveConfig({ env: { REDIS_HOST: "127.0.0.1", REDIS_PASSWORD: "p a$s" } }).transportKind).toBe(
      "node-redis",
    );
  });
});

describe("next build", () => {
  const building = { NEXT_PHASE: "phase-production-build", REDIS_URL: "redis://127.0.0.1:1" };

  it("is L1 only while Next.js builds, whatever configures Redis", () => {
    expect(resolveConfig({ env: building }).transport).toBeNull();
    const given = { kind: "memory", send: async () => null, pipeline: async () => [], close: async () => {} };
    expect(resolveConfig({ env: building, redis: given }).transport).toBeNull();
    expect(resolveConfig({ env: { ...building, NEXT_PHASE: "phase-production-server" } }).transportKind).toBe(
      "node-redis",
    );
  });

  it("uses Redis during the build when asked to, by env or option", () => {
    expect(resolveConfig({ env: { ...building, CACHE_REDIS_DURING_BUILD: "true" } }).transportKind).toBe(
      "node-redis",
    );
    expect(resolveConfig({ env: building, redisDuringBuild: true }).transportKind).toBe("node-redis");
    expect(
      resolveConfig({ env: { ...building, CACHE_REDIS_DURING_BUILD: "true" }, redisDuringBuild: false })
        .transport,
    ).toBeNull();
  });
});
