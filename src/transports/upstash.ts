import { Redis, type Requester, type UpstashRequest, type UpstashResponse } from "@upstash/redis";
import { Redis as CloudflareRedis } from "@upstash/redis/cloudflare";
import { abortable, abortError } from "./abort.js";
import { type RedisArg, type RedisReply, replyError, type Transport } from "./types.js";

/** Options of {@link upstash}: the REST endpoint and token, or an `@upstash/redis` client of your own. */
export type UpstashOptions = { url: string; token: string } | { client: Redis };

/**
 * A transport over the Upstash REST API (fetch; runs on every edge runtime). Each command is one
 * HTTP request and each pipeline one request to `/pipeline`; nothing is sent before the first one.
 */
export function upstash(options: UpstashOptions): Transport {
  return new UpstashTransport(requesterOf("client" in options ? options.client : createClient(options)));
}

function createClient({ url, token }: { url: string; token: string }): Redis {
  const config = {
    url,
    token,
    // One attempt: the caller's deadline rules, not 5 retries with exponential backoff. (`retry: false`
    // still makes two attempts in 1.39: its loop runs `attempts + 1` times.)
    retry: { retries: 0 },
    enableTelemetry: false,
    // tiercache batches reads itself (one MGET per tick) and calls the requester directly, where the
    // auto-pipelining Proxy never applies; it would only add a trap to every property access.
    enableAutoPipelining: false,
    // Our path never deserializes; this keeps the client from JSON-parsing values if it ever did.
    automaticDeserialization: false,
  };
  // workerd before compatibility date 2024-11-11 rejects every fetch carrying a `cache` field, which the
  // default entry always sets ("no-store", so Next.js never caches these POSTs); the Cloudflare entry omits it.
  return isWorkerd() ? new CloudflareRedis(config) : new Redis(config);
}

function isWorkerd(): boolean {
  return typeof navigator !== "undefined" && navigator.userAgent === "Cloudflare-Workers";
}

/**
 * The client's requester: every command helper ends in `requester.request`, which takes a per-request
 * signal and raw command arrays, and is the only way to pipeline arbitrary commands (the Pipeline
 * builder has no generic command). `client` is protected in the typings but is that requester.
 */
function requesterOf(redis: Redis): Requester {
  const requester = (redis as unknown as { client?: Requester }).client;
  if (typeof requester?.request !== "function") {
    throw new Error("upstash: this @upstash/redis client has no requester (unsupported version?)");
  }
  return requester;
}

class UpstashTransport implements Transport {
  readonly kind = "upstash";

  constructor(private readonly requester: Requester) {}

  async send(command: readonly RedisArg[], signal?: AbortSignal): Promise<RedisReply> {
    const reply = await this.request<UpstashResponse<RedisReply>>({ body: toArgs(command) }, signal);
    return toReply(reply);
  }

  async pipeline(
    commands: readonly (readonly RedisArg[])[],
    signal?: AbortSignal,
  ): Promise<(RedisReply | Error)[]> {
    if (commands.length === 0) return [];
    const replies = await this.request<UpstashResponse<RedisReply>[]>(
      { path: ["pipeline"], body: commands.map(toArgs) },
      signal,
    );
    if (!Array.isArray(replies) || replies.length !== commands.length) {
      throw new Error(`upstash: the pipeline of ${commands.length} commands got a malformed answer`);
    }
    return replies.map((reply) => {
      try {
        return toReply(reply);
      } catch (error) {
        return error as Error;
      }
    });
  }

  async close(): Promise<void> {
    // Stateless HTTP: the runtime's fetch owns (and reuses) the connections.
  }

  private async request<T>(request: UpstashRequest, signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) throw abortError(signal);
    try {
      // The caller's signal also cancels the fetch. Aborted, @upstash/redis RESOLVES with a made-up
      // `{ result: reason }` (a timed-out GET would look like a value or a miss); `abortable` has
      // rejected by then, so that answer is dropped.
      const answer = this.requester.request({ ...request, signal });
      return (await abortable(answer, signal)) as T;
    } catch (thrown) {
      throw describe(thrown, request);
    }
  }
}

function toArgs(command: readonly RedisArg[]): string[] {
  return command.map(String);
}

/** A reply, or the error it carries. A missing result is an error, never a miss. */
function toReply({ result, error }: UpstashResponse<RedisReply>): RedisReply {
  if (typeof error === "string") throw replyError(error);
  if (result === undefined) throw new Error("upstash: the answer carried no result");
  return result;
}

/** Readable errors: a Redis error reply as Redis phrased it, a network failure with its cause. */
function describe(thrown: unknown, request: UpstashRequest): Error {
  if (!(thrown instanceof Error)) return new Error(String(thrown));
  if (thrown.name === "AbortError") return thrown;
  // Error replies arrive as HTTP 400, which @upstash/redis words "<error>, command was: <body>" —
  // the echoed body would put cached values into log lines.
  const echo = `, command was: ${JSON.stringify(request.body)}`;
  if (thrown.message.endsWith(echo)) return replyError(thrown.message.slice(0, -echo.length));
  if (thrown.message === "fetch failed" && thrown.cause instanceof Error) {
    return new Error(`upstash: request failed: ${thrown.cause.message}`, { cause: thrown.cause });
  }
  return thrown;
}
