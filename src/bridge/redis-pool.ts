import { createClient, RESP_TYPES } from "redis";
import { HttpError } from "./http-error.js";
import type { BridgeLogger } from "./logger.js";

/**
 * A node-redis connection as the bridge configures it:
 * - RESP2, because the Upstash REST API answers in RESP2 shapes (HGETALL is a flat array,
 *   scores are strings); node-redis 6 defaults to RESP3 (maps, doubles, booleans).
 * - Bulk strings as Buffers, so binary values reach the base64 encoder intact.
 * - No per-command timeout: node-redis 6 arms an `AbortSignal.timeout` (5 s) per command by
 *   default, which costs ~4× throughput on concurrent GETs; the REST client has its own deadline.
 * - No offline queue: while Redis is unreachable, requests fail at once (503) instead of piling up.
 */
function createConnection(
  url: string,
  reconnectStrategy: false | ((retries: number, cause: Error) => Error | number),
) {
  return createClient({
    url,
    RESP: 2,
    disableOfflineQueue: true,
    socket: { reconnectStrategy },
    commandOptions: { timeout: 0, typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } },
  });
}

export type Connection = ReturnType<typeof createConnection>;

export interface RedisPool {
  /**
   * Runs `fn` on the least busy shared connection. Commands from concurrent requests are
   * pipelined on it, so `fn` must not block it or change its state.
   */
  shared<T>(fn: (connection: Connection) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` on a connection of its own (blocking commands, subscriptions), destroyed when `fn`
   * settles, when `signal` aborts (the HTTP client went away), or at shutdown; `fn` sees all
   * three through the signal it is given.
   */
  dedicated<T>(
    fn: (connection: Connection, stop: AbortSignal) => Promise<T>,
    signal: AbortSignal,
  ): Promise<T>;
  /** Ends every dedicated connection (blocked commands fail, streams end). */
  stopDedicated(): void;
  /** Closes the shared connections once their pending replies have arrived. */
  close(): Promise<void>;
}

export interface PoolOptions {
  url: string;
  size: number;
  maxDedicated: number;
  logger: BridgeLogger;
}

/** Opens `size` shared connections; rejects with a clear message if Redis cannot be reached. */
export async function openPool({ url, size, maxDedicated, logger }: PoolOptions): Promise<RedisPool> {
  let started = false;
  let closed = false;
  // Fail fast on the first connect (a wrong URL should stop start-up); afterwards Redis
  // restarts are ridden out with capped backoff.
  const reconnect = (retries: number, cause: Error) => (started ? Math.min(50 * 2 ** retries, 2000) : cause);
  let healthy = true;
  /** Logs losing Redis once, and getting it back, however many connections notice. */
  function watch(connection: Connection) {
    connection.on("error", (error: Error) => {
      if (!started || !healthy || closed) return;
      healthy = false;
      logger.warn(`tiercache bridge: lost the Redis connection (${error.message}); reconnecting`);
    });
    connection.on("ready", () => {
      if (healthy) return;
      healthy = true;
      logger.info("tiercache bridge: Redis connection restored");
    });
  }

  let slots: { connection: Connection; busy: number }[] = [];
  try {
    slots = Array.from({ length: size }, () => ({ connection: createConnection(url, reconnect), busy: 0 }));
    for (const { connection } of slots) watch(connection);
    await Promise.all(slots.map((slot) => slot.connection.connect()));
  } catch (cause) {
    for (const { connection } of slots) if (connection.isOpen) connection.destroy();
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new Error(`tiercache bridge: cannot connect to Redis at ${redactUrl(url)}: ${reason}`, { cause });
  }
  started = true;

  /** Aborts of the dedicated connections in use. */
  const stops = new Set<() => void>();

  return {
    async shared(fn) {
      let slot = slots[0]!;
      for (const candidate of slots) if (candidate.busy < slot.busy) slot = candidate;
      slot.busy++;
      try {
        return await fn(slot.connection);
      } finally {
        slot.busy--;
      }
    },

    async dedicated(fn, signal) {
      if (closed) throw shuttingDown();
      if (stops.size >= maxDedicated) {
        throw new HttpError(
          503,
          `too many blocking commands and subscriptions in flight (limit ${maxDedicated}); retry later`,
        );
      }
      const connection = createConnection(url, false);
      connection.on("error", () => {
        // The command in flight rejects with the same error; nothing else to do.
      });
      const stop = new AbortController();
      const abort = () => {
        stop.abort();
        if (connection.isOpen) connection.destroy();
      };
      if (signal.aborted) stop.abort();
      else signal.addEventListener("abort", abort, { once: true });
      stops.add(abort);
      try {
        await connection.connect();
        // Aborted before the socket was open: nobody waits for this command any more.
        if (stop.signal.aborted) throw closed ? shuttingDown() : new HttpError(503, "the client went away");
        return await fn(connection, stop.signal);
      } catch (error) {
        throw closed && stop.signal.aborted ? shuttingDown() : error;
      } finally {
        signal.removeEventListener("abort", abort);
        stops.delete(abort);
        abort();
      }
    },

    stopDedicated() {
      closed = true;
      for (const abort of stops) abort();
    },

    async close() {
      closed = true;
      await Promise.all(
        slots.map(async ({ connection }) => {
          if (connection.isReady) await connection.close();
          else if (connection.isOpen) connection.destroy();
        }),
      );
    },
  };
}

function shuttingDown(): HttpError {
  return new HttpError(503, "the bridge is shutting down");
}

/** The URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparseable Redis URL)";
  }
}
