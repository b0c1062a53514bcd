import { CacheError } from "../errors.js";
import { abortable } from "../transports/abort.js";
import { isReplyError, type RedisArg, type RedisReply, type Transport } from "../transports/types.js";
import type { Breaker } from "./breaker.js";

/** Keys per MGET; larger batches are split and pipelined so one reply never gets huge. */
const MGET_CHUNK = 1000;

interface Waiter {
  resolve(value: string | null): void;
  reject(error: unknown): void;
}

/**
 * The Redis tier: every operation has a deadline and goes through the circuit breaker, and `get`s
 * issued in the same tick leave as one MGET. Failures are reported once per operation here, so a
 * failed batch of 100 reads is one log line, not 100.
 */
export class L2 {
  private transport: Promise<Transport> | undefined;
  private batch: Map<string, Waiter[]> | undefined;
  /** A CONFIG error of the factory (e.g. `redis` not installed): permanent, so never retried or re-reported. */
  private misconfigured: CacheError | undefined;

  constructor(
    private readonly createTransport: () => Promise<Transport>,
    readonly kind: string,
    private readonly timeoutMs: number,
    private readonly breaker: Breaker,
    private readonly report: (operation: string, error: CacheError) => void,
  ) {}

  /** The stored text at `key`, or null; joins the batch of this tick. */
  get(key: string): Promise<string | null> {
    let batch = this.batch;
    if (!batch) {
      const created = new Map<string, Waiter[]>();
      batch = created;
      this.batch = created;
      queueMicrotask(() => this.flush(created));
    }
    const waiters = batch.get(key) ?? [];
    if (waiters.length === 0) batch.set(key, waiters);
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  }

  /** One command under the deadline and breaker. */
  send(command: readonly RedisArg[], operation = String(command[0])): Promise<RedisReply> {
    return this.run(operation, (transport, signal) => transport.send(command, signal));
  }

  /** Several commands in one round trip; error replies come back as `Error` slots. */
  pipeline(commands: readonly (readonly RedisArg[])[], operation: string): Promise<(RedisReply | Error)[]> {
    return this.run(operation, (transport, signal) => transport.pipeline(commands, signal));
  }

  async close(): Promise<void> {
    const pending = this.transport;
    this.transport = undefined;
    if (pending) await (await pending.catch(() => undefined))?.close();
  }

  private flush(batch: Map<string, Waiter[]>): void {
    if (this.batch === batch) this.batch = undefined;
    const keys = [...batch.keys()];
    this.mget(keys).then(
      (replies) => {
        keys.forEach((key, i) => {
          const reply = replies[i];
          for (const waiter of batch.get(key) ?? []) waiter.resolve(typeof reply === "string" ? reply : null);
        });
      },
      (error) => {
        for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
      },
    );
  }

  private async mget(keys: string[]): Promise<RedisReply[]> {
    if (keys.length === 1) return [await this.send(["GET", keys[0] as string], "GET")];
    if (keys.length <= MGET_CHUNK) return asArray(await this.send(["MGET", ...keys], "MGET"));
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += MGET_CHUNK) chunks.push(keys.slice(i, i + MGET_CHUNK));
    const replies = await this.pipeline(
      chunks.map((chunk) => ["MGET", ...chunk]),
      "MGET",
    );
    return replies.flatMap((reply) => {
      if (reply instanceof Error) throw new CacheError("UNAVAILABLE", `MGET failed: ${reply.message}`);
      return asArray(reply);
    });
  }

  private async run<T>(
    operation: string,
    work: (transport: Transport, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (this.misconfigured) throw this.misconfigured;
    if (!this.breaker.allow(Date.now())) {
      throw new CacheError("BREAKER_OPEN", `${operation} skipped: Redis is failing, circuit open`);
    }
    let signal: AbortSignal | undefined;
    try {
      this.transport ??= this.createTransport()
        .then(async (transport) => {
          await transport.warmup?.();
          return transport;
        })
        .catch((error) => {
          this.transport = undefined; // a failed import or setup is retried by the next operation
          if (error instanceof CacheError && error.code === "CONFIG") this.misconfigured = error;
          throw error;
        });
      // The deadline starts once the transport and its client module are loaded: a cold import is
      // local work, not Redis being slow (connecting is part of the first command, inside it).
      const transport = await this.transport;
      signal = AbortSignal.timeout(this.timeoutMs);
      const result = await abortable(work(transport, signal), signal);
      this.breaker.success();
      return result;
    } catch (thrown) {
      if (thrown === this.misconfigured) throw thrown; // reported by whoever created it, once
      // An error reply means Redis answered: only silence and transport failures open the circuit.
      if (isReplyError(thrown)) this.breaker.success();
      else this.breaker.failure(Date.now());
      const error = signal?.aborted
        ? new CacheError("TIMEOUT", `${operation}: Redis did not answer within ${this.timeoutMs} ms`)
        : thrown instanceof CacheError
          ? thrown
          : new CacheError("UNAVAILABLE", `${operation} failed: ${(thrown as Error)?.message ?? thrown}`, {
              cause: thrown,
            });
      this.report(operation, error);
      throw error;
    }
  }
}

function asArray(reply: RedisReply): RedisReply[] {
  if (!Array.isArray(reply)) throw new CacheError("UNAVAILABLE", "MGET answered with something not an array");
  return reply;
}
