import type { Env } from "../config.js";
import { CacheError } from "../errors.js";
import type { CacheOptions, Logger } from "../types.js";
import type { NodeRedisOptions } from "./node-redis.js";
import { loadNodeRedis, tcpUnavailable } from "./tcp.js";
import type { Transport } from "./types.js";

/** What `createCache` talks to: a factory, so nothing connects (or loads `redis`) before the first L2 operation. */
export interface TransportChoice {
  transport: (() => Promise<Transport>) | null;
  transportKind: string;
  /** Keys need Redis Cluster hash tags (a cluster transport). */
  slotted: boolean;
}

const NONE: TransportChoice = { transport: null, transportKind: "none", slotted: false };
const on = (value: string | undefined) => /^(true|1|yes|on)$/i.test(value ?? "");

/**
 * The transport for these options and environment. Upstash REST (`UPSTASH_REDIS_REST_*`, then
 * `KV_REST_API_*`) is plain `fetch` and needs no package; TCP (`REDIS_URL`, then `REDIS_HOST`) needs
 * Node.js and the `redis` package, and anything that makes it impossible is a CONFIG error here or,
 * when only loading can tell (`redis` not installed), once at the first operation.
 */
export function transportFor(options: CacheOptions, env: Env, logger: Logger): TransportChoice {
  if (options.redis === false) return NONE;
  if (duringNextBuild(options, env)) {
    logger.info?.(
      "next build: Redis is not used while building (L1 only); CACHE_REDIS_DURING_BUILD=true opts in",
    );
    return NONE;
  }
  if (options.redis) {
    const given = options.redis;
    return {
      transport: () => Promise.resolve(given),
      transportKind: given.kind,
      slotted: given.slotted === true,
    };
  }
  if (env.REDIS_ENABLED !== undefined && !on(env.REDIS_ENABLED)) return NONE;
  const restUrl = env.UPSTASH_REDIS_REST_URL ?? env.KV_REST_API_URL;
  const restToken = env.UPSTASH_REDIS_REST_TOKEN ?? env.KV_REST_API_TOKEN;
  if (restUrl && restToken) {
    return {
      // A literal import: bundlers and file tracers carry it (REST needs no optional package).
      transport: async () => (await import("./upstash.js")).upstash({ url: restUrl, token: restToken }),
      transportKind: "upstash",
      slotted: false,
    };
  }
  const variable = tcpVariable(env);
  if (!variable) return NONE;
  if (tcpUnavailable !== undefined || !loadNodeRedis) {
    throw new CacheError(
      "CONFIG",
      `${variable} is set, but ${tcpUnavailable ?? "this build has no TCP transport"}. ` +
        "Use Upstash REST here instead (set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN), " +
        "or run this code on Node.js.",
    );
  }
  const load = loadNodeRedis;
  const tls = env.REDIS_TLS === undefined ? undefined : on(env.REDIS_TLS);
  const db = env.REDIS_DB ? Number(env.REDIS_DB) : undefined;
  const nodes = (list: string) => list.split(",").map((node) => node.trim());
  // Password and TLS go to every node of a cluster and to the primary and replicas under Sentinel.
  const tcp: NodeRedisOptions =
    variable === "REDIS_CLUSTER_NODES"
      ? {
          cluster: { rootNodes: nodes(env.REDIS_CLUSTER_NODES as string) },
          password: env.REDIS_PASSWORD,
          tls,
        }
      : variable === "REDIS_SENTINELS"
        ? {
            sentinel: {
              name: env.REDIS_SENTINEL_MASTER as string,
              sentinelRootNodes: nodes(env.REDIS_SENTINELS as string),
              sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
            },
            password: env.REDIS_PASSWORD,
            tls,
            db,
          }
        : {
            url: env.REDIS_URL,
            host: env.REDIS_HOST,
            port: env.REDIS_PORT ? Number(env.REDIS_PORT) : undefined,
            password: env.REDIS_PASSWORD,
            db,
            tls,
            socketTimeoutMs: env.REDIS_SOCKET_TIMEOUT ? Number(env.REDIS_SOCKET_TIMEOUT) : undefined,
          };
  // A missing `redis` does not fix itself: one error, logged once, then the same error for every
  // operation (L2 keeps CONFIG errors of its factory), instead of a retry and a warning per call.
  let missing: CacheError | undefined;
  return {
    transportKind: "node-redis",
    slotted: variable === "REDIS_CLUSTER_NODES",
    transport: async () => {
      if (missing) throw missing;
      try {
        const transport = (await load()).nodeRedis(tcp);
        await transport.warmup?.(); // loads `redis`: the one step that can find it missing
        return transport;
      } catch (error) {
        if (!isModuleNotFound(error)) throw error;
        missing = new CacheError(
          "CONFIG",
          `${variable} is set, but the package "redis" could not be loaded: install it next to tiercache ` +
            "(npm i redis) and rebuild; where node_modules is deployed unbundled (a Docker image, an " +
            "external package), make sure it holds redis too. Running from L1 only until then.",
          { cause: error },
        );
        if (logger.error) logger.error(missing.message);
        else logger.warn(missing.message);
        throw missing;
      }
    },
  };
}

/**
 * Which variable picks the TCP Redis: a cluster, Sentinel, one node by URL or by host. Two of these
 * at once are ambiguous (which Redis holds the cache?) and refused.
 */
function tcpVariable(env: Env): string | undefined {
  if (env.REDIS_SENTINELS !== undefined && env.REDIS_SENTINEL_MASTER === undefined)
    throw new CacheError(
      "CONFIG",
      "REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER (the monitored primary's name)",
    );
  if (env.REDIS_SENTINEL_MASTER !== undefined && env.REDIS_SENTINELS === undefined)
    throw new CacheError(
      "CONFIG",
      "REDIS_SENTINEL_MASTER is set without REDIS_SENTINELS (host:port,… of the Sentinels)",
    );
  if (env.REDIS_SENTINEL_PASSWORD !== undefined && env.REDIS_SENTINELS === undefined)
    throw new CacheError("CONFIG", "REDIS_SENTINEL_PASSWORD is set without REDIS_SENTINELS");
  const set = (["REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "REDIS_URL", "REDIS_HOST"] as const).filter(
    (name) => env[name] !== undefined && env[name] !== "",
  );
  if (set.length > 1 && set[0] !== "REDIS_URL")
    throw new CacheError("CONFIG", `${set.join(" and ")} are both set: set only one of them`);
  if (set[0] === "REDIS_CLUSTER_NODES" && env.REDIS_DB !== undefined && Number(env.REDIS_DB) !== 0)
    throw new CacheError(
      "CONFIG",
      "REDIS_DB must be 0 (or unset) with REDIS_CLUSTER_NODES: a cluster has one database",
    );
  return set[0];
}

/**
 * `next build` prerenders pages by running them: with Redis it would connect from the build machine
 * and write build-time values into the production cache. Off unless asked for.
 */
function duringNextBuild(options: CacheOptions, env: Env): boolean {
  if (env.NEXT_PHASE !== "phase-production-build") return false;
  return !(options.redisDuringBuild ?? on(env.CACHE_REDIS_DURING_BUILD));
}

/** Node's ESM (`ERR_MODULE_NOT_FOUND`) and CommonJS/bundler (`MODULE_NOT_FOUND`) "no such package". */
function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}
