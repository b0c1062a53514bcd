import * as z from "zod/mini";
import { toMs } from "./duration.js";
import { type EncryptionOptions, KEY_PATTERN, Keyring, keyBytes } from "./encryption.js";
import { CacheError } from "./errors.js";
import { validateSegment } from "./keys.js";
import { type LoaderTimeoutMs, loaderTimeoutMs } from "./loader-timeout.js";
import type { TelemetryFactory } from "./telemetry.js";
import { transportFor } from "./transports/from-env.js";
import type { Transport } from "./transports/types.js";
import type { CacheEvent, CacheOptions, Invalidation, Logger, WaitUntil } from "./types.js";

const bool = z.optional(
  z
    .string()
    .check(z.regex(/^(true|false|1|0|yes|no|on|off)$/i, "must be true or false (or 1/0, yes/no, on/off)")),
);
const int = (min: number, max: number) =>
  z.optional(
    z.string().check(
      z.regex(/^\d+$/, "must be a whole number"),
      z.refine((s) => Number(s) >= min && Number(s) <= max, `must be between ${min} and ${max}`),
    ),
  );
const segment = z.optional(
  z.string().check(z.regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1–64 letters, digits, "_", "." or "-"')),
);
const httpUrl = z.optional(z.string().check(z.regex(/^https?:\/\/[^\s/]+/, "must be an http(s) URL")));
/** Checked with the other variables, so a bad key is named in the same CONFIG error (never echoed). */
const encryptionKey = z.optional(
  z
    .string()
    .check(
      z.regex(new RegExp(`^${KEY_PATTERN}$`), "must be 32 random bytes, base64-encoded (44 characters)"),
    ),
);
const encryptionKeys = z.optional(
  z
    .string()
    .check(
      z.regex(
        new RegExp(`^\\s*${KEY_PATTERN}\\s*(,\\s*${KEY_PATTERN}\\s*)*$`),
        "must be a comma-separated list of keys, each 32 random bytes base64-encoded",
      ),
    ),
);
/** A bearer token goes into an HTTP header: visible ASCII only, or the HTTP client's error would echo it. */
const token = z.optional(
  z.string().check(z.regex(/^[\x21-\x7e]+$/, "must be visible ASCII only (no spaces, line breaks or NUL)")),
);
/** Sent in the AUTH command: a line break or NUL would split or cut it. */
const password = z.optional(
  z.string().check(z.refine((s) => !/[\r\n\0]/.test(s), "must not contain CR, LF or NUL")),
);
const redisUrl = z.optional(
  z
    .string()
    .check(
      z.refine(
        isRedisUrl,
        "must be redis[s]://[user:password@]host[:port][/db] with a port 1–65535 and a whole-number db",
      ),
    ),
);

/** `host:port,host:port`: the nodes of a cluster or the Sentinels (IPv6 hosts in brackets). */
const nodeList = z.optional(
  z
    .string()
    .check(
      z.regex(
        /^\s*(\[[0-9a-fA-F:]+\]|[^\s:/,[\]]+):\d{1,5}\s*(,\s*(\[[0-9a-fA-F:]+\]|[^\s:/,[\]]+):\d{1,5}\s*)*$/,
        "must be host:port entries separated by commas",
      ),
    ),
);

/** The environment variables tiercache reads (DESIGN.md, "Environment"). */
const envSchema = z.object({
  UPSTASH_REDIS_REST_URL: httpUrl,
  UPSTASH_REDIS_REST_TOKEN: token,
  KV_REST_API_URL: httpUrl,
  KV_REST_API_TOKEN: token,
  REDIS_URL: redisUrl,
  REDIS_HOST: z.optional(z.string().check(z.regex(/^[^\s/:]+$|^\[[0-9a-fA-F:]+\]$/, "must be a host name"))),
  REDIS_PORT: int(1, 65535),
  REDIS_PASSWORD: password,
  REDIS_DB: int(0, 10_000),
  REDIS_TLS: bool,
  REDIS_CLUSTER_NODES: nodeList,
  REDIS_SENTINELS: nodeList,
  REDIS_SENTINEL_MASTER: z.optional(
    z.string().check(z.regex(/^[^\s]+$/, "must be the monitored primary's name")),
  ),
  REDIS_SENTINEL_PASSWORD: password,
  REDIS_ENABLED: bool,
  CACHE_ENABLED: bool,
  CACHE_FAIL_SILENTLY: bool,
  REDIS_ENV: segment,
  VERCEL_ENV: z.optional(z.string()),
  REDIS_CACHE_VERSION: segment,
  VERCEL_GIT_COMMIT_SHA: z.optional(z.string().check(z.regex(/^[A-Za-z0-9]+$/, "must be a commit SHA"))),
  CACHE_TTL_DEFAULT: int(1, 31_536_000),
  REDIS_SOCKET_TIMEOUT: int(1, 3_600_000),
  /** Set by Next.js; `phase-production-build` during `next build`. */
  NEXT_PHASE: z.optional(z.string()),
  CACHE_REDIS_DURING_BUILD: bool,
  CACHE_ENCRYPTION_KEY: encryptionKey,
  CACHE_ENCRYPTION_KEYS_PREVIOUS: encryptionKeys,
});

/**
 * What node-redis will accept, checked now so a typo is a CONFIG error at `createCache` instead of
 * every operation failing later: scheme, a host, a port the URL parser accepts (≤ 65535), a numeric
 * database, user and password that decode and hold no CR/LF/NUL.
 */
function isRedisUrl(value: string): boolean {
  if (!/^rediss?:\/\/\S+$/.test(value) || !URL.canParse(value)) return false;
  const url = new URL(value);
  if (!url.hostname || url.search || url.hash) return false;
  if (url.port !== "" && Number(url.port) < 1) return false;
  if (!/^(\/(\d{1,9})?)?$/.test(url.pathname)) return false;
  try {
    return !/[\r\n\0]/.test(decodeURIComponent(url.username) + decodeURIComponent(url.password));
  } catch {
    return false; // malformed percent-encoding
  }
}

export type Env = z.infer<typeof envSchema>;

/** Everything the cache needs, resolved once at `createCache`. */
export interface ResolvedConfig {
  /** A factory so nothing connects (or is even imported) before the first L2 operation. */
  transport: (() => Promise<Transport>) | null;
  transportKind: string;
  /** Keys get hash tags for a Redis Cluster (see KeySpace). */
  slotted: boolean;
  prefix: string | undefined;
  namespace: string;
  version: string;
  ttlMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  jitter: number;
  l1: { maxEntries: number; maxBytes: number; ttlMs: number | undefined; syncMs: number } | false;
  timeoutMs: number;
  failSilently: boolean;
  enabled: boolean;
  logger: Logger;
  onEvent: ((event: CacheEvent) => void) | undefined;
  onInvalidate: ((invalidation: Invalidation) => unknown) | undefined;
  waitUntil: WaitUntil | undefined;
  breaker: { failureThreshold: number; resetMs: number };
  /** Versions before the current one a stale-versions flush keeps (issue 4). */
  keepVersions: number;
  loaderTimeout: LoaderTimeoutMs | undefined;
  refreshAhead: number | undefined;
  warmStart: boolean;
  /** Seals values before they go to Redis (encryption.ts); null when encryption is off. */
  keyring: Keyring | null;
  telemetry: TelemetryFactory | undefined;
  /** Least ms between analytics pushes; null when analytics are off. */
  analyticsMs: number | null;
}

const truthy = (value: string | undefined, fallback: boolean): boolean =>
  value === undefined ? fallback : /^(true|1|yes|on)$/i.test(value);

/** `process.env` where it exists, without naming `process` in a way edge bundlers would polyfill. */
function defaultEnv(): Record<string, unknown> {
  const proc = (globalThis as { process?: { env?: Record<string, unknown> } }).process;
  return proc?.env ?? {};
}

/** The variables tiercache reads from `source` (non-empty strings only), unvalidated. */
export function pickEnv(source: object): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const name of Object.keys(envSchema.shape)) {
    const value = (source as Record<string, unknown>)[name];
    if (typeof value === "string" && value !== "") picked[name] = value;
  }
  return picked;
}

/** The environment `options` configure from: their `env`, else `process.env` where it exists. */
export function envOf(options: CacheOptions): object {
  return options.env ?? defaultEnv();
}

/** Reads and validates the environment: one CacheError naming every bad variable, never a late crash. */
export function readEnv(source: object): Env {
  const result = envSchema.safeParse(pickEnv(source));
  if (result.success) {
    const env = result.data;
    const url = env.UPSTASH_REDIS_REST_URL ?? env.KV_REST_API_URL;
    const token = env.UPSTASH_REDIS_REST_TOKEN ?? env.KV_REST_API_TOKEN;
    if (url && !token) {
      const tokenName = env.UPSTASH_REDIS_REST_URL ? "UPSTASH_REDIS_REST_TOKEN" : "KV_REST_API_TOKEN";
      throw new CacheError("CONFIG", `invalid environment: ${tokenName} is missing (the REST URL is set)`);
    }
    return env;
  }
  // Name the variable and the rule, never the value: some of these are secrets.
  const problems = new Map<string, string>();
  for (const issue of result.error.issues) {
    const name = String(issue.path[0]);
    if (!problems.has(name)) problems.set(name, `${name} ${issue.message}`);
  }
  throw new CacheError("CONFIG", `invalid environment: ${[...problems.values()].join("; ")}`);
}

const consoleLogger: Logger = {
  warn: (message, details) => console.warn(`[tiercache] ${message}`, details ?? ""),
  error: (message, details) => console.error(`[tiercache] ${message}`, details ?? ""),
};

/** Options passed in code win over the environment. */
export function resolveConfig(options: CacheOptions = {}): ResolvedConfig {
  const env = readEnv(envOf(options));
  const logger = options.logger ?? consoleLogger;
  const { transport, transportKind, slotted } = transportFor(options, env, logger);
  const prefixDefault = env.REDIS_ENV ?? previewPrefix(env.VERCEL_ENV);
  const l1 = options.l1 === false ? false : options.l1;
  return {
    transport,
    transportKind,
    slotted,
    prefix: validatePrefix(
      options.prefix !== undefined ? validateSegment("prefix", options.prefix) : prefixDefault,
    ),
    namespace: validateSegment("namespace", options.namespace ?? "default"),
    version: validateSegment("version", options.version ?? resolveVersion(env)),
    ttlMs: options.ttl !== undefined ? toMs(options.ttl, "ttl") : Number(env.CACHE_TTL_DEFAULT ?? 300) * 1000,
    staleWhileRevalidateMs: toMs(options.staleWhileRevalidate ?? 0, "staleWhileRevalidate"),
    staleIfErrorMs: toMs(options.staleIfError ?? 0, "staleIfError"),
    jitter: fraction("jitter", options.jitter ?? 0),
    l1:
      l1 === false
        ? false
        : {
            maxEntries: positive("l1.maxEntries", l1?.maxEntries ?? 1000),
            maxBytes: positive("l1.maxBytes", l1?.maxBytes ?? 50 * 1024 * 1024),
            ttlMs: l1?.ttl !== undefined ? toMs(l1.ttl, "l1.ttl") : undefined,
            syncMs: positive("l1.syncMs", l1?.syncMs ?? 1000),
          },
    timeoutMs: positive("timeoutMs", options.timeoutMs ?? 500),
    failSilently: options.failSilently ?? truthy(env.CACHE_FAIL_SILENTLY, true),
    enabled: options.enabled ?? truthy(env.CACHE_ENABLED, true),
    logger,
    onEvent: options.onEvent,
    onInvalidate: options.onInvalidate,
    waitUntil: options.waitUntil,
    breaker: {
      failureThreshold: positive("breaker.failureThreshold", options.breaker?.failureThreshold ?? 5),
      resetMs: positive("breaker.resetMs", options.breaker?.resetMs ?? 5000),
    },
    keepVersions: wholeNumber("keepVersions", options.keepVersions ?? 1),
    loaderTimeout: loaderTimeoutMs(options.loaderTimeout),
    refreshAhead:
      options.refreshAhead === undefined ? undefined : fraction("refreshAhead", options.refreshAhead),
    warmStart: options.warmStart ?? false,
    keyring: resolveKeyring(options.encryption, env),
    telemetry: options.telemetry,
    analyticsMs: options.analytics === true ? positive("analyticsMs", options.analyticsMs ?? 60_000) : null,
  };
}

/**
 * The keyring from `encryption`, else from `CACHE_ENCRYPTION_KEY` (+ comma-separated
 * `CACHE_ENCRYPTION_KEYS_PREVIOUS`). Key material is checked here, so a bad key fails `createCache`.
 */
function resolveKeyring(options: EncryptionOptions | undefined, env: Env): Keyring | null {
  if (options) {
    const previous = options.previousKeys ?? [];
    if (!Array.isArray(previous)) throw new CacheError("CONFIG", "encryption.previousKeys must be an array");
    return new Keyring(
      keyBytes("encryption.key", options.key),
      previous.map((key, i) => keyBytes(`encryption.previousKeys[${i}]`, key)),
    );
  }
  const previous = env.CACHE_ENCRYPTION_KEYS_PREVIOUS?.split(",").map((key) => key.trim());
  if (!env.CACHE_ENCRYPTION_KEY) {
    if (previous)
      throw new CacheError("CONFIG", "CACHE_ENCRYPTION_KEYS_PREVIOUS is set without CACHE_ENCRYPTION_KEY");
    return null;
  }
  return new Keyring(
    keyBytes("CACHE_ENCRYPTION_KEY", env.CACHE_ENCRYPTION_KEY),
    (previous ?? []).map((key, i) => keyBytes(`CACHE_ENCRYPTION_KEYS_PREVIOUS (key ${i + 1})`, key)),
  );
}

/** Version = `REDIS_CACHE_VERSION` → first 8 characters of `VERCEL_GIT_COMMIT_SHA` → `"1"`. */
export function resolveVersion(env: Pick<Env, "REDIS_CACHE_VERSION" | "VERCEL_GIT_COMMIT_SHA">): string {
  return env.REDIS_CACHE_VERSION ?? env.VERCEL_GIT_COMMIT_SHA?.slice(0, 8) ?? "1";
}

/** Previews and development share a Redis with production in many setups: keep them apart by default. */
function previewPrefix(vercelEnv: string | undefined): string | undefined {
  if (!vercelEnv || vercelEnv === "production") return undefined;
  return validateSegment("VERCEL_ENV", vercelEnv);
}

/** A prefix named like the library root would put its keys inside production's `tc:*` flushes. */
function validatePrefix(prefix: string | undefined): string | undefined {
  if (prefix === "tc")
    throw new CacheError("CONFIG", 'prefix "tc" is reserved (it is the library\'s own key root)');
  return prefix;
}

/** A number in 0…1, or a clear error. */
export function fraction(what: string, value: number): number {
  if (!(value >= 0 && value <= 1))
    throw new CacheError("CONFIG", `${what} must be between 0 and 1, got ${value}`);
  return value;
}

function positive(what: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new CacheError("CONFIG", `${what} must be a positive number, got ${value}`);
  }
  return value;
}

/** A count that may be 0 (keepVersions: 0 keeps the current version only). */
export function wholeNumber(what: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CacheError("CONFIG", `${what} must be a whole number (0 or more), got ${value}`);
  }
  return value;
}
