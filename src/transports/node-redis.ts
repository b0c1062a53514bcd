import { redact, redactError } from "../redact.js";
import { abortable, abortError } from "./abort.js";
import {
  BACKOFF_CAP_MS,
  NO_COMMAND_TIMEOUT,
  pipelineReplies,
  type RedisModule,
  RedisModuleLoader,
  reconnectStrategy,
  type TlsOptions,
  tlsSocket,
  toArgs,
  toReply,
} from "./node-redis-shared.js";
import { type ClusterOptions, type SentinelOptions, TopologyTransport } from "./node-redis-topology.js";
import type { RedisArg, RedisReply, Transport } from "./types.js";

export type { TlsOptions } from "./node-redis-shared.js";
export type { ClusterOptions, NodeAddress, SentinelOptions } from "./node-redis-topology.js";

/**
 * The part of a node-redis client this transport uses. Any `createClient()` result of `redis` 5 or 6
 * fits, whatever its modules, RESP version or type mapping.
 */
export interface NodeRedisClient {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand(args: string[], options?: { timeout?: number }): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): unknown;
  on(event: string, listener: (arg: Error) => void): unknown;
  off(event: string, listener: (arg: Error) => void): unknown;
}

/** Options of {@link nodeRedis}. Fields given explicitly win over the same parts of `url`. */
export interface NodeRedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS. */
  url?: string;
  /** Default `localhost`. */
  host?: string;
  /** Default 6379. */
  port?: number;
  password?: string;
  username?: string;
  /** Database number (`SELECT`), default 0. */
  db?: number;
  /**
   * TLS even with a `redis://` URL; an object also says whom to trust (`ca`: a private CA's PEM) or
   * which client certificate to present. A `rediss://` URL with `tls` unset means `true`.
   */
  tls?: boolean | TlsOptions;
  /**
   * How long a connection may owe a reply before it is considered dead and replaced on the next
   * command (redis-py's `socket_timeout`). It does not bound a single call — the caller's signal
   * does — it catches connections that died silently (a frozen function, a NAT that dropped them).
   * Default 5000.
   */
  socketTimeoutMs?: number;
  /** Limit for one connection attempt, TCP/TLS plus handshake (AUTH, SELECT). Default 2000. */
  connectTimeoutMs?: number;
  /**
   * A client of your own. It is connected if it is not open yet, and otherwise used as it is: its
   * offline queue, reconnect strategy and lifetime stay yours — it is never replaced, even when it
   * hangs or its reply stream breaks — and `close()` leaves it open.
   */
  client?: NodeRedisClient;
  /**
   * A Redis Cluster instead of one node: commands are routed by slot, multi-key commands split per
   * slot, flushes and pattern deletes walk every primary. `password`, `username`, `tls` and
   * `connectTimeoutMs` given here or at the top level apply to every node.
   */
  cluster?: ClusterOptions;
  /** A primary found and followed through Sentinel; top-level `password`, `tls`… apply to its nodes. */
  sentinel?: SentinelOptions;
}

type ConnectionLimits = Required<Pick<NodeRedisOptions, "socketTimeoutMs" | "connectTimeoutMs">>;

/**
 * After a failed attempt node-redis retries within the backoff cap; a client that has not by then is
 * stuck (garbage during the handshake leaves it waiting forever) and is replaced.
 */
const STALLED_MS = BACKOFF_CAP_MS + 500;
/** How long `close()` lets in-flight commands finish before cutting the socket. */
const CLOSE_GRACE_MS = 1000;
const now = () => performance.now();
const ignore = () => {};

/**
 * A transport over TCP with node-redis (Node runtimes only). Nothing is imported or connected until
 * the first command; then one client serves every command, reconnecting in the background with a
 * short bounded backoff while commands fail fast instead of queueing.
 */
export function nodeRedis(options: NodeRedisOptions = {}): Transport {
  if (options.cluster && options.sentinel)
    throw new Error("nodeRedis: give `cluster` or `sentinel`, not both");
  if (options.cluster || options.sentinel) {
    if (options.url !== undefined || options.host !== undefined || options.client !== undefined)
      throw new Error(
        "nodeRedis: `cluster`/`sentinel` take their nodes from there, not from `url`, `host` or `client`",
      );
    const shared = {
      password: options.password,
      username: options.username,
      tls: options.tls,
      connectTimeoutMs: options.connectTimeoutMs,
    };
    const defined = <T extends object>(value: T) =>
      Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
    if (options.cluster)
      return new TopologyTransport({ cluster: { ...defined(shared), ...options.cluster } });
    const sentinel = options.sentinel as SentinelOptions;
    return new TopologyTransport({ sentinel: { ...defined({ ...shared, db: options.db }), ...sentinel } });
  }
  return new NodeRedisTransport(options);
}

class NodeRedisTransport implements Transport {
  readonly kind = "node-redis";
  private readonly settings: ClientSettings | undefined;
  private readonly limits: ConnectionLimits;
  private readonly secrets: string[];
  private readonly redis = new RedisModuleLoader();
  private connection: Connection | undefined;
  private closed = false;

  constructor(private readonly options: NodeRedisOptions) {
    this.settings = options.client ? undefined : resolveSettings(options);
    this.limits = {
      socketTimeoutMs: options.socketTimeoutMs ?? 5000,
      connectTimeoutMs: options.connectTimeoutMs ?? 2000,
    };
    this.secrets = this.settings?.password ? [this.settings.password] : [];
  }

  async send(command: readonly RedisArg[], signal?: AbortSignal): Promise<RedisReply> {
    let connection: Connection | undefined;
    try {
      connection = await this.connect(signal);
      return toReply(await abortable(connection.command(toArgs(command)), signal));
    } catch (thrown) {
      const error = this.scrub(connection?.explain(thrown) ?? thrown);
      const redis = this.redis.loaded;
      if (redis && thrown instanceof redis.ErrorReply) error.name = "ReplyError";
      throw error;
    }
  }

  async pipeline(
    commands: readonly (readonly RedisArg[])[],
    signal?: AbortSignal,
  ): Promise<(RedisReply | Error)[]> {
    if (commands.length === 0) return [];
    let connection: Connection | undefined;
    try {
      const { ErrorReply } = await this.redis.load();
      const live = await this.connect(signal);
      connection = live;
      // Commands issued in one tick leave in one write: this is the round trip, with a promise per
      // reply. (`multi().execAsPipeline()` rejects as a whole on the first error reply.)
      const replies = await abortable(
        Promise.allSettled(commands.map((command) => live.command(toArgs(command)))),
        signal,
      );
      return pipelineReplies(replies, ErrorReply, (error) => this.scrub(error));
    } catch (thrown) {
      throw this.scrub(connection?.explain(thrown) ?? thrown);
    }
  }

  /** `redis` takes ~150–250 ms to load: done before the first deadline starts, not inside it. */
  async warmup(): Promise<void> {
    await this.redis.load();
  }

  redact(text: string): string {
    return redact(text, this.secrets);
  }

  /** Anything thrown as an `Error` whose message and stack never contain the password. */
  private scrub(thrown: unknown): Error {
    return redactError(thrown instanceof Error ? thrown : new Error(String(thrown)), (text) =>
      this.redact(text),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    const connection = this.connection;
    this.connection = undefined;
    await connection?.close();
  }

  /** The current connection, replaced first if it is dead or stuck, once it can take commands. */
  private async connect(signal: AbortSignal | undefined): Promise<Connection> {
    if (signal?.aborted) throw abortError(signal);
    const redis = await this.redis.load();
    if (this.closed) throw new Error("nodeRedis: the transport is closed");
    let connection = this.connection;
    if (!connection || connection.stale(now())) {
      connection?.discard();
      const client = this.options.client ?? this.createClient(redis);
      connection = new Connection(client, !this.options.client, this.limits, redis);
      this.connection = connection;
    }
    await connection.ready(signal);
    return connection;
  }

  private createClient(redis: RedisModule): NodeRedisClient {
    const settings = this.settings as ClientSettings;
    return redis.createClient({
      socket: {
        host: settings.host,
        port: settings.port,
        ...tlsSocket(settings.tls),
        connectTimeout: this.limits.connectTimeoutMs,
        reconnectStrategy,
      },
      username: settings.username,
      password: settings.password,
      database: settings.db,
      // RESP2: plain strings, numbers, nulls and arrays, and no maintenance-notification handshake.
      RESP: 2,
      disableOfflineQueue: true,
      clientInfoTag: "tiercache",
    });
  }
}

interface Attempt {
  readonly promise: Promise<void>;
  readonly startedAt: number;
  resolve(): void;
  reject(error: Error): void;
}

function newAttempt(): Attempt {
  let resolve = ignore;
  let reject: (error: Error) => void = ignore;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that stopped waiting (aborted) must not turn a failed attempt into an unhandled rejection.
  promise.catch(ignore);
  return { promise, startedAt: now(), resolve, reject };
}

/** One node-redis client and what its events say about it. */
class Connection {
  private attempt: Attempt | undefined;
  private lastError: Error | undefined;
  private downSince = 0;
  private inFlight = 0;
  private lastReplyAt = 0;
  private dead = false;
  /** Why an owned client was dropped while commands were on it. */
  private droppedBy: Error | undefined;

  constructor(
    private readonly client: NodeRedisClient,
    private readonly owned: boolean,
    private readonly limits: ConnectionLimits,
    private readonly redis: RedisModule,
  ) {
    // An 'error' event without a listener would crash the process; ours is never removed from an owned client.
    client.on("error", this.onError);
    client.on("ready", this.onReady);
    client.on("reconnecting", this.onReconnecting);
    client.on("terminated", this.onTerminated);
    if (client.isReady) return;
    this.attempt = newAttempt();
    // A failed connect also arrives as 'error'/'terminated' events, which are what we act on.
    if (!client.isOpen) client.connect().catch(ignore);
  }

  /** Resolves when the client can take commands; rejects at once while it waits to reconnect. */
  ready(signal: AbortSignal | undefined): Promise<void> {
    if (this.client.isReady) return Promise.resolve();
    if (this.attempt) return abortable(this.attempt.promise, signal);
    return Promise.reject(
      new Error(`Redis unavailable (reconnecting): ${this.lastError?.message ?? "not connected"}`),
    );
  }

  /** Sends one command; replies are tracked so a connection that stopped answering is noticed. */
  command(args: string[]): Promise<unknown> {
    if (this.inFlight++ === 0) this.lastReplyAt = now();
    const reply = this.client.sendCommand(args, NO_COMMAND_TIMEOUT);
    const settle = () => {
      this.inFlight--;
      this.lastReplyAt = now();
    };
    reply.then(settle, settle);
    return reply;
  }

  /** Whether this client should be replaced before the next command. */
  stale(at: number): boolean {
    if (this.dead) return true;
    if (this.client.isReady) return this.inFlight > 0 && at - this.lastReplyAt > this.limits.socketTimeoutMs;
    if (this.attempt) return at - this.attempt.startedAt > this.limits.connectTimeoutMs;
    return at - this.downSince > STALLED_MS;
  }

  /** What a command that failed on this client should say: node-redis's own words are vague when we dropped it. */
  explain(thrown: unknown): unknown {
    if (!this.droppedBy || !(thrown instanceof this.redis.DisconnectsClientError)) return thrown;
    return new Error(`Redis connection dropped: ${this.droppedBy.message}`);
  }

  /** Stops using the client: destroys it if it is ours, else only lets go of it. */
  discard(reason = new Error("replaced by a new connection")): void {
    this.droppedBy = reason;
    this.end(new Error(`Redis connection dropped: ${reason.message}`));
    if (this.owned) this.client.destroy();
    else this.detach();
  }

  async close(): Promise<void> {
    this.end(new Error("nodeRedis: the transport is closed"));
    if (!this.owned) return this.detach();
    if (this.client.isReady) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      });
      await Promise.race([this.client.close().catch(ignore), grace]);
      clearTimeout(timer);
    }
    this.client.destroy();
  }

  /** Marks the client unusable and fails whoever waits for it to connect. */
  private end(error: Error): void {
    this.dead = true;
    this.attempt?.reject(error);
    this.attempt = undefined;
  }

  private detach(): void {
    this.client.off("error", this.onError);
    this.client.off("ready", this.onReady);
    this.client.off("reconnecting", this.onReconnecting);
    this.client.off("terminated", this.onTerminated);
  }

  private readonly onError = (error: Error): void => {
    this.lastError = error;
    if (this.client.isReady) {
      // The socket is up but its reply stream is corrupt: node-redis resets its decoder and would
      // hand later replies to the wrong commands, so an owned client goes at once.
      if (this.owned) this.discard(error);
      return;
    }
    this.downSince = now();
    this.attempt?.reject(error);
    this.attempt = undefined;
  };

  private readonly onReady = (): void => {
    this.lastError = undefined;
    this.attempt?.resolve();
    this.attempt = undefined;
  };

  private readonly onReconnecting = (): void => {
    this.attempt ??= newAttempt();
  };

  private readonly onTerminated = (): void => {
    this.dead = true;
  };
}

interface ClientSettings {
  host: string;
  port: number;
  tls: boolean | TlsOptions;
  username: string | undefined;
  password: string | undefined;
  db: number;
}

/** Merges `url` with the explicit fields. Errors never echo the URL: it may hold a password. */
function resolveSettings(options: NodeRedisOptions): ClientSettings {
  const fromUrl: Partial<ClientSettings> = {};
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new Error(
        "nodeRedis: `url` is not a valid URL (expected redis://[user:password@]host[:port][/db])",
      );
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw new Error(`nodeRedis: unsupported URL scheme "${url.protocol}" (expected redis:// or rediss://)`);
    }
    fromUrl.tls = url.protocol === "rediss:";
    if (url.hostname) fromUrl.host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    if (url.port) fromUrl.port = Number(url.port);
    if (url.username) fromUrl.username = decodeURIComponent(url.username);
    if (url.password) fromUrl.password = decodeURIComponent(url.password);
    const db = url.pathname.replace(/^\//, "");
    if (db) fromUrl.db = integerIn(db, 0, Number.MAX_SAFE_INTEGER, "the database in `url`");
  }
  return {
    host: options.host ?? fromUrl.host ?? "localhost",
    port: integerIn(options.port ?? fromUrl.port ?? 6379, 1, 65535, "`port`"),
    tls: options.tls ?? fromUrl.tls ?? false,
    username: options.username ?? fromUrl.username,
    password: options.password ?? fromUrl.password,
    db: integerIn(options.db ?? fromUrl.db ?? 0, 0, Number.MAX_SAFE_INTEGER, "`db`"),
  };
}

function integerIn(value: string | number, min: number, max: number, what: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`nodeRedis: ${what} must be an integer ${min}–${max}`);
  return n;
}
