import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { assertUsableToken, bearerCheck } from "./auth.js";
import { exposureCheck, isLoopbackHost } from "./exposure.js";
import { createHandler } from "./handler.js";
import type { BridgeLogger } from "./logger.js";
import { openPool, type RedisPool } from "./redis-pool.js";
import { syncTokens } from "./sync-token.js";

/** Options of {@link startBridge}. */
export interface BridgeOptions {
  /** The Redis behind the bridge, e.g. `redis://127.0.0.1:6379/0`. */
  redisUrl: string;
  /**
   * Clients must send `Authorization: Bearer <token>`. Required unless `insecure`; visible ASCII
   * without spaces. (The CLI also requires 16 characters or more.)
   */
  token?: string;
  /** Accept requests without a token. Only for throwaway local setups. */
  insecure?: boolean;
  /** Interface to listen on. Default `127.0.0.1`; anything else is logged as a warning. */
  host?: string;
  /**
   * `Host` names answered besides loopback names and `host` (with a wildcard `host`, this
   * machine's addresses and name); others get 421, against DNS rebinding. `"*"`: any.
   */
  allowedHosts?: string[];
  /**
   * Browser origins (e.g. `http://localhost:3000`) allowed to call the bridge, with CORS. Requests
   * from any other page (an `Origin` header, or `Sec-Fetch-Site` other than `none`/`same-origin`)
   * get 403. `"*"`: any origin.
   */
  allowedOrigins?: string[];
  /**
   * Let server administration through (`CONFIG`, `ACL`, `SHUTDOWN`, `DEBUG`, `CLIENT KILL`…),
   * which the bridge refuses by default like the Upstash REST API. Default false.
   */
  allowAdmin?: boolean;
  /** Port to listen on; `0` (the default) picks a free one, see {@link Bridge.port}. */
  port?: number;
  /** Largest request body accepted; bigger ones get 413. Default 10 MiB. */
  maxBodyBytes?: number;
  /** Shared Redis connections that concurrent requests are pipelined over. Default 2. */
  connections?: number;
  /** Connections held at once by blocking commands and subscriptions. Default 64. */
  maxBlockingConnections?: number;
  /** Where connection trouble is reported. Default `console`. */
  logger?: BridgeLogger;
}

/** A running bridge. */
export interface Bridge {
  /** Base URL for `UPSTASH_REDIS_REST_URL`, e.g. `http://127.0.0.1:8079`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening, ends streams and blocked commands, lets in-flight requests finish, closes Redis. */
  close(): Promise<void>;
}

/** How long in-flight requests may take to finish at shutdown before their sockets are cut. */
const SHUTDOWN_GRACE_MS = 2000;

/**
 * Starts an HTTP server speaking the Upstash Redis REST protocol in front of a TCP Redis, so
 * the real `@upstash/redis` client (and code running in workerd) can use a local Redis.
 *
 * @throws when neither `token` nor `insecure` is given, or Redis cannot be reached.
 */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const token = options.token === "" ? undefined : options.token;
  if (token === undefined && !options.insecure) {
    throw new Error("tiercache bridge: a token is required (or pass insecure: true to accept any request)");
  }
  if (token !== undefined) assertUsableToken(token, "token");
  const logger = options.logger ?? console;
  const host = options.host ?? "127.0.0.1";
  const maxBodyBytes = positive(options.maxBodyBytes ?? 10 * 1024 * 1024, "maxBodyBytes");
  const pool = await openPool({
    url: options.redisUrl,
    size: positive(options.connections ?? 2, "connections"),
    maxDedicated: positive(options.maxBlockingConnections ?? 64, "maxBlockingConnections"),
    logger,
  });
  let server: ReturnType<typeof createServer>;
  try {
    const commands = await commandTable(pool);
    server = createServer(
      // Longer than undici's 4 s idle timeout, so the client, not the server, closes idle
      // keep-alive sockets and never sends a request into one being closed.
      { keepAliveTimeout: 65_000 },
      createHandler({
        pool,
        checkExposure: exposureCheck({
          bindHost: host,
          allowedHosts: options.allowedHosts,
          allowedOrigins: options.allowedOrigins,
        }),
        authorize: bearerCheck(token),
        maxBodyBytes,
        isCommand: (name) => commands.names.has(name),
        mayWrite: (name) => !commands.readOnly.has(name),
        allowAdmin: options.allowAdmin ?? false,
        syncTokens: syncTokens(),
        logger,
      }),
    );
    if (!isLoopbackHost(host)) {
      logger.warn(
        `tiercache bridge: binding ${host}, which other machines can reach` +
          (token === undefined ? " — and no token is required" : "") +
          "; bind 127.0.0.1 unless that is what you want",
      );
    }
    server.listen(options.port ?? 0, host);
    await once(server, "listening");
  } catch (error) {
    await pool.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    port,
    close() {
      closing ??= shutdown(server, pool);
      return closing;
    },
  };
}

async function shutdown(server: ReturnType<typeof createServer>, pool: RedisPool): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  pool.stopDedicated();
  // server.close() only closes connections idle at that moment; kept-alive ones that finish
  // their last response later must be closed as they go idle.
  const idle = setInterval(() => server.closeIdleConnections(), 25);
  const cut = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  await closed;
  clearInterval(idle);
  clearTimeout(cut);
  await pool.close();
}

/**
 * The commands this Redis knows (modules included): lower-case names, and the upper-case names
 * of those flagged `readonly` (the rest may write, for the sync token).
 */
async function commandTable(pool: RedisPool): Promise<{ names: Set<string>; readOnly: Set<string> }> {
  const info = (await pool.shared((connection) => connection.sendCommand(["COMMAND"]))) as unknown[][];
  const names = new Set<string>();
  const readOnly = new Set<string>();
  for (const [name, , flags] of info) {
    names.add(String(name).toLowerCase());
    if (Array.isArray(flags) && flags.some((flag) => String(flag) === "readonly"))
      readOnly.add(String(name).toUpperCase());
  }
  return { names, readOnly };
}

function positive(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`tiercache bridge: ${name} must be a positive integer`);
  return value;
}
