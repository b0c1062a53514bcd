/** An argument of a Redis command as the transports send it. */
export type RedisArg = string | number;

/**
 * A Redis reply as tiercache sees it, whatever the wire: bulk strings arrive as UTF-8 strings,
 * integers as numbers, nil as null, arrays (MGET, SCAN, EXEC, script results) as arrays.
 */
export type RedisReply = string | number | null | RedisReply[];

/** The one small interface both transports implement (REST over fetch, TCP over node-redis). */
export interface Transport {
  /** `"upstash"` or `"node-redis"`, reported by `health()`. */
  readonly kind: string;
  /**
   * The transport spreads keys over Redis Cluster hash slots: tiercache then gives the keys that
   * one command touches together a shared hash tag (see the README's key layout).
   */
  readonly slotted?: boolean;
  /** The nodes behind a cluster or Sentinel transport, for `health()`. */
  topology?(): Topology;
  /**
   * Some nodes of a cluster are down while others answer: a failure now is one node's (the
   * transport fails that node's commands fast itself), so the circuit breaker, which would stop
   * traffic to every node, does not count it.
   */
  partlyDown?(): boolean;
  /**
   * Sends one command. Rejects with the Redis error message for an error reply, with a
   * transport error when the server cannot be reached, and promptly when `signal` aborts.
   */
  send(command: readonly RedisArg[], signal?: AbortSignal): Promise<RedisReply>;
  /**
   * Sends several commands in one round trip (not atomic). Each slot holds that command's reply,
   * or an `Error` for an error reply, so one failing command never hides the others' results.
   * Rejects as a whole only when the round trip itself fails or `signal` aborts.
   */
  pipeline(commands: readonly (readonly RedisArg[])[], signal?: AbortSignal): Promise<(RedisReply | Error)[]>;
  /** Releases connections; the transport is not used afterwards. */
  close(): Promise<void>;
  /**
   * Loads what the first command needs (a client module, say) so that local start-up work is not
   * charged to the first operation's deadline. Called once, before the first command.
   */
  warmup?(): Promise<void>;
  /**
   * Removes this transport's secrets (token, password) from a text, for error messages built
   * outside the transport. Errors the transport throws itself are scrubbed already.
   */
  redact?(text: string): string;
}

/**
 * An error reply from Redis itself (WRONGTYPE, a script error…): Redis answered, so it says nothing
 * about Redis being reachable, and the circuit breaker does not count it.
 */
export function replyError(message: string): Error {
  const error = new Error(message);
  error.name = "ReplyError";
  return error;
}

export function isReplyError(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError";
}

/** Which nodes a cluster or Sentinel transport talks to, as `health()` reports them. */
export interface Topology {
  mode: "cluster" | "sentinel";
  /** Sentinel: the current primary's `host:port` (null while none is known). */
  primary?: string | null;
  /** `reachable`: its connection is ready (false: down or reconnecting; null: not connected to). */
  nodes: { address: string; role: "primary" | "replica"; reachable: boolean | null }[];
}
