import { CacheError } from "../errors.js";
import { abortable } from "../transports/abort.js";
import { isReplyError, type RedisArg, type RedisReply, type Transport } from "../transports/types.js";
import type { Breaker } from "./breaker.js";

/** Keys per MGET; larger batches are split and pipelined so one reply never gets huge. */
const MGET_CHUNK = 1000;

/**
 * One read in a tick's batch, told its reply (null when absent) or the batch's failure exactly once,
 * from the loop over the MGET's replies: a reader that does its work there needs no promise of its own.
 */
export interface BatchRead {
  reply(text: string | null): void;
  fail(error: unknown): void;
}

/** The reads of one tick: each distinct key once, with the one or more reads waiting for it. */
interface Batch {
  keys: string[];
  reads: (BatchRead | BatchRead[])[];
  slots: Map<string, number>;
}

/**
 * The Redis tier: every operation has a deadline and goes through the circuit breaker, and `get`s
 * issued in the same tick leave as one MGET. Failures are reported once per operation here, so a
 * failed batch of 100 reads is one log line, not 100.
 */
export class L2 {
  private transport: Promise<Transport> | undefined;
  private batch: Batch | undefined;
  /** Batches opened so far: the open one's number. */
  private batches = 0;

  constructor(
    private readonly createTransport: () => Promise<Transport>,
    readonly kind: string,
    private readonly timeoutMs: number,
    private readonly breaker: Breaker,
    private readonly report: (operation: string, error: CacheError) => void,
  ) {}

  /** The stored text at `key`, or null; joins the batch of this tick. */
  get(key: string): Promise<string | null> {
    return new Promise((resolve, reject) => this.enqueue(key, { reply: resolve, fail: reject }));
  }

  /** Which batch this tick's reads join: a number of its own, or 0 while none is open. */
  get openBatch(): number {
    return this.batch ? this.batches : 0;
  }

  /** Adds a read of `key` to the batch of this tick; `read` is told the outcome from the batch's loop. */
  enqueue(key: string, read: BatchRead): void {
    let batch = this.batch;
    if (!batch) {
      const created: Batch = { keys: [], reads: [], slots: new Map() };
      this.batches++;
      batch = created;
      this.batch = created;
      queueMicrotask(() => this.flush(created));
    }
    const slot = batch.slots.get(key);
    if (slot === undefined) {
      batch.slots.set(key, batch.keys.length);
      batch.keys.push(key);
      batch.reads.push(read);
      return;
    }
    const waiting = batch.reads[slot] as BatchRead | BatchRead[];
    if (Array.isArray(waiting)) waiting.push(read);
    else batch.reads[slot] = [waiting, read];
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

  private flush(batch: Batch): void {
    if (this.batch === batch) this.batch = undefined;
    const { keys, reads } = batch;
    this.mget(keys).then(
      (replies) => {
        for (let i = 0; i < reads.length; i++) {
          const reply = replies[i];
          const text = typeof reply === "string" ? reply : null;
          const waiting = reads[i] as BatchRead | BatchRead[];
          if (Array.isArray(waiting)) for (const read of waiting) tell(read, text);
          else tell(waiting, text);
        }
      },
      (error) => {
        for (const waiting of reads) {
          if (Array.isArray(waiting)) for (const read of waiting) read.fail(error);
          else waiting.fail(error);
        }
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

/** One read's reply; what it throws is its own failure, never the other reads' of the batch. */
function tell(read: BatchRead, text: string | null): void {
  try {
    read.reply(text);
  } catch (error) {
    read.fail(error);
  }
}

function asArray(reply: RedisReply): RedisReply[] {
  if (!Array.isArray(reply)) throw new CacheError("UNAVAILABLE", "MGET answered with something not an array");
  return reply;
}
