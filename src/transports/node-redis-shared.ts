import type { RedisArg, RedisReply } from "./types.js";

/** What the node-redis transports (one node, cluster, Sentinel) share: loading `redis`, policies, replies. */

export type RedisModule = typeof import("redis");

/**
 * TLS beyond `true`: what Node's `tls.connect` needs to trust a private CA (`ca`), present a client
 * certificate (`cert`, `key`) or check another name than the host's (`servername`). With `true`
 * only, the system's CAs are trusted, plus those in `NODE_EXTRA_CA_CERTS` (read at process start).
 */
export interface TlsOptions {
  ca?: string | Buffer | (string | Buffer)[];
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  /** Default true; false accepts any certificate (a test setup, never production). */
  rejectUnauthorized?: boolean;
}

/** The node-redis `socket` fields for a `tls` option. */
export function tlsSocket(tls: boolean | TlsOptions | undefined): object {
  if (!tls) return {};
  return tls === true ? { tls: true } : { ...tls, tls: true };
}

/** Reconnect backoff: 50 ms doubling, capped so a restarted Redis is found within about a second. */
export const BACKOFF_CAP_MS = 1000;
/** Attempts before the background reconnect loop stops; the next command then starts a new client. */
export const MAX_RECONNECT_ATTEMPTS = 10;

/**
 * node-redis 6 gives every command its own 5 s `AbortSignal.timeout` unless told otherwise (0 = none).
 * It only covers the wait to be written, yet cuts throughput ~6× at 100 concurrent GETs.
 */
export const NO_COMMAND_TIMEOUT = { timeout: 0 } as const;

/** node-redis `reconnectStrategy`: short jittered backoff, then give up (a command starts over). */
export function reconnectStrategy(retries: number): number | false {
  return retries >= MAX_RECONNECT_ATTEMPTS ? false : backoff(retries);
}

/**
 * The same backoff without an end, for the node clients of a cluster or Sentinel client: their
 * reconnect attempts are what makes it ask for the topology again, so they must go on through a
 * failover however long it takes (the node is dropped once the topology no longer has it).
 */
export function backoff(retries: number): number {
  return Math.min(50 * 2 ** retries, BACKOFF_CAP_MS) + Math.floor(Math.random() * 100);
}

/**
 * Imports `redis` on first use: it costs ~250 ms to load, which an import of tiercache (or a
 * `next build` that only imports route modules) should not pay. A literal specifier inside
 * try/catch: webpack, Turbopack and esbuild bundle `redis` when it is installed (so a Next.js
 * standalone output carries it) and, when it is not, build anyway and fail here at run time.
 */
export async function loadRedis(): Promise<RedisModule> {
  let redis: RedisModule;
  try {
    redis = await import("redis");
  } catch (error) {
    // biome-ignore lint/complexity/noUselessCatch: esbuild leaves an unresolvable import() to run time only inside try/catch
    throw error;
  }
  // Next.js's webpack turns an optional peer missing at build time into an empty module.
  if (typeof redis.createClient !== "function") {
    throw Object.assign(new Error('Cannot find package "redis" (it was not installed when this was built)'), {
      code: "MODULE_NOT_FOUND",
    });
  }
  return redis;
}

/**
 * `redis` for one transport: imported on first use and kept; a failed import is tried again on the
 * next use. `loaded` is the module once it has arrived (an error can only be one of its classes then).
 */
export class RedisModuleLoader {
  private pending: Promise<RedisModule> | undefined;
  loaded: RedisModule | undefined;

  load(): Promise<RedisModule> {
    this.pending ??= loadRedis().then(
      (redis) => {
        this.loaded = redis;
        return redis;
      },
      (error) => {
        this.pending = undefined;
        throw error;
      },
    );
    return this.pending;
  }
}

export function toArgs(command: readonly RedisArg[]): string[] {
  return command.map(String);
}

/**
 * Normalizes a node-redis reply. Our own clients speak RESP2 (strings, numbers, nulls, arrays);
 * a client brought by the caller may map types differently (RESP3 maps and sets, Buffers).
 */
export function toReply(value: unknown): RedisReply {
  if (value === null || typeof value === "string" || typeof value === "number") return value;
  if (Array.isArray(value)) return value.map(toReply);
  // An error nested in an array (e.g. a script's table holding redis.error_reply) fails the command.
  if (value instanceof Error) throw value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Map) return [...value].flatMap(([k, v]) => [toReply(k), toReply(v)]);
  if (value instanceof Set) return [...value].map(toReply);
  if (typeof value === "object") return Object.entries(value).flatMap(([k, v]) => [k, toReply(v)]);
  return String(value);
}

/**
 * The replies of commands pipelined in one tick: each command's reply, or its error reply as an
 * `Error` slot (so one failing command never hides the others'); anything else rejected means the
 * round trip failed, and is thrown.
 */
export function pipelineReplies(
  settled: readonly PromiseSettledResult<unknown>[],
  ErrorReply: RedisModule["ErrorReply"],
  scrub: (error: unknown) => Error,
): (RedisReply | Error)[] {
  return settled.map((result) => {
    if (result.status === "rejected") {
      if (result.reason instanceof ErrorReply) return scrub(result.reason);
      throw result.reason;
    }
    try {
      return toReply(result.value);
    } catch (nested) {
      return scrub(nested);
    }
  });
}
