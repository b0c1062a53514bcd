import { CacheError } from "../errors.js";
import { redact, redactError } from "../redact.js";
import { slotOf } from "../slots.js";
import { abortable } from "../transports/abort.js";
import {
  isReplyError,
  type RedisArg,
  type RedisReply,
  type Topology,
  type Transport,
} from "../transports/types.js";
import type { Breaker } from "./breaker.js";
import { Budget } from "./budget.js";
import { withDeadline } from "./deadline.js";

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
 * failed batch of 100 reads is one log line, not 100. Error texts are scrubbed of the transport's
 * secrets here, where transport errors become CacheErrors. Once closed, it stays closed.
 */
export class L2 {
  private transport: Promise<Transport> | undefined;
  private batch: Batch | undefined;
  /** Batches opened so far: the open one's number. */
  private batches = 0;
  private closed = false;
  /** Scrubs the secrets of the transport in use (only known once it is created). */
  private scrub: (text: string) => string = (text) => redact(text);
  /** A CONFIG error of the factory (e.g. `redis` not installed): permanent, so never retried or re-reported. */
  private misconfigured: CacheError | undefined;

  constructor(
    private readonly createTransport: () => Promise<Transport>,
    readonly kind: string,
    private readonly timeoutMs: number,
    private readonly breaker: Breaker,
    private readonly report: (operation: string, error: CacheError) => void,
    /** Keys spread over Redis Cluster slots: a tick's reads go out per slot (see flushPerSlot). */
    private readonly slotted = false,
  ) {}

  /** A budget of one `timeoutMs` for the Redis work of one cache call. */
  budget(): Budget {
    return new Budget(this.timeoutMs);
  }

  /** The stored text at `key`, or null; joins the batch of this tick (within `budget`, if given). */
  get(key: string, budget?: Budget): Promise<string | null> {
    if (!budget) return this.join(key);
    const remaining = budget.remainingMs;
    if (remaining <= 0) return Promise.reject(this.spent("GET"));
    if (remaining >= this.timeoutMs) return charged(budget, this.join(key));
    // The batch keeps its own deadline for the other callers; this one gives up at its budget's end.
    const signal = AbortSignal.timeout(Math.ceil(remaining));
    return charged(
      budget,
      abortable(this.join(key), signal).catch((error: unknown) => {
        throw signal.aborted
          ? new CacheError(
              "TIMEOUT",
              `GET: Redis did not answer within this call's remaining ${Math.ceil(remaining)} ms`,
            )
          : error;
      }),
    );
  }

  private join(key: string): Promise<string | null> {
    return new Promise((resolve, reject) => this.enqueue(key, { reply: resolve, fail: reject }));
  }

  /** Which batch this tick's reads join: a number of its own, or 0 while none is open. */
  get openBatch(): number {
    return this.batch ? this.batches : 0;
  }

  /** Whether a tick's reads go out per Redis Cluster slot rather than as one MGET. */
  get perSlot(): boolean {
    return this.slotted;
  }

  /**
   * Adds a read of `key` to the batch of this tick, within `timeoutMs` (no call budget); `read` is
   * told the outcome from the batch's loop.
   */
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

  /** One command under the deadline (and the call's `budget`, if given) and the breaker. */
  send(command: readonly RedisArg[], operation = String(command[0]), budget?: Budget): Promise<RedisReply> {
    return this.run(operation, (transport, signal) => transport.send(command, signal), budget);
  }

  /** Several commands in one round trip; error replies come back as `Error` slots. */
  pipeline(
    commands: readonly (readonly RedisArg[])[],
    operation: string,
    budget?: Budget,
  ): Promise<(RedisReply | Error)[]> {
    return this.run(operation, (transport, signal) => transport.pipeline(commands, signal), budget);
  }

  /** The nodes behind a cluster or Sentinel transport, once it was created; undefined otherwise. */
  async topology(): Promise<Topology | undefined> {
    return (await this.transport?.catch(() => undefined))?.topology?.();
  }

  /**
   * Releases the connection for good: later operations fail at once with `CLOSED` (no reconnect,
   * no log line), so the cache goes on from L1 and loaders only.
   */
  async close(): Promise<void> {
    this.closed = true;
    const pending = this.transport;
    this.transport = undefined;
    if (pending) await (await pending.catch(() => undefined))?.close();
  }

  private flush(batch: Batch): void {
    if (this.batch === batch) this.batch = undefined;
    const { keys, reads } = batch;
    if (this.slotted && keys.length > 1) {
      this.flushPerSlot(batch);
      return;
    }
    this.mget(keys).then(
      (replies) => {
        for (let i = 0; i < reads.length; i++) {
          const reply = replies[i];
          tellAll(reads[i] as BatchRead | BatchRead[], typeof reply === "string" ? reply : null);
        }
      },
      (error) => {
        for (const waiting of reads) failAll(waiting, error);
      },
    );
  }

  /**
   * A tick's reads on a cluster: one command per slot, all sent at once (each node still gets its
   * share in one write), each settling its own keys. So a primary that is down fails only the keys it
   * owns, and the others are served; only when no node answered does the batch count as a failure
   * for the breaker. A deadline hit fails the keys still waiting.
   */
  private flushPerSlot(batch: Batch): void {
    const { keys, reads, slots } = batch;
    const readsOf = (key: string) => reads[slots.get(key) as number] as BatchRead | BatchRead[];
    const bySlot = new Map<number, string[]>();
    for (const key of keys) {
      const group = bySlot.get(slotOf(key));
      if (group) group.push(key);
      else bySlot.set(slotOf(key), [key]);
    }
    const groups: string[][] = [];
    for (const group of bySlot.values())
      for (let i = 0; i < group.length; i += MGET_CHUNK) groups.push(group.slice(i, i + MGET_CHUNK));
    const waiting = new Set(keys);
    const settle = (key: string, reply: RedisReply | undefined) => {
      if (!waiting.delete(key)) return;
      tellAll(readsOf(key), typeof reply === "string" ? reply : null);
    };
    const failWaiting = (error: unknown) => {
      for (const key of waiting) failAll(readsOf(key), error);
      waiting.clear();
    };
    // The deadline is the batch's (run() races it); the transport sees it to tell a hung node.
    this.run("MGET", async (transport, signal) => {
      const outcomes = await Promise.allSettled(
        groups.map(async (group) => {
          const command = group.length === 1 ? ["GET", group[0] as string] : ["MGET", ...group];
          const reply = await transport.send(command, signal);
          const replies = group.length === 1 ? [reply] : asArray(reply);
          for (const [i, key] of group.entries()) settle(key, replies[i]);
        }),
      );
      const failed = outcomes.filter((outcome) => outcome.status === "rejected");
      if (failed.length === outcomes.length) throw failed[0]?.reason; // no node answered
      return failed[0]?.reason as unknown;
    }).then((partly) => {
      if (waiting.size === 0) return;
      const error = this.failure("MGET", partly, false, this.timeoutMs);
      this.report("MGET", error);
      failWaiting(error);
    }, failWaiting);
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
    budget?: Budget,
  ): Promise<T> {
    if (this.closed) throw new CacheError("CLOSED", `${operation} skipped: the cache was closed`);
    if (this.misconfigured) throw this.misconfigured;
    // Spent by an earlier operation of the same call, which has reported (and counted) its failure.
    if (budget && budget.remainingMs <= 0) throw this.spent(operation);
    if (!this.breaker.allow(Date.now())) {
      throw new CacheError("BREAKER_OPEN", `${operation} skipped: Redis is failing, circuit open`);
    }
    let signal: AbortSignal | undefined;
    let deadlineMs = this.timeoutMs;
    let started = 0;
    let transport: Transport | undefined;
    try {
      const connected = await this.connected();
      transport = connected;
      // The deadline starts once the transport and its client module are loaded: a cold import is
      // local work, not Redis being slow (connecting is part of the first command, inside it).
      // Whole milliseconds, as timers go.
      deadlineMs = Math.ceil(Math.min(this.timeoutMs, budget?.remainingMs ?? this.timeoutMs));
      started = performance.now();
      const result = await withDeadline(deadlineMs, (deadline) => {
        signal = deadline;
        return work(connected, deadline);
      });
      this.breaker.success();
      return result;
    } catch (thrown) {
      if (thrown === this.misconfigured) {
        this.breaker.inconclusive();
        throw thrown; // reported by whoever created it, once
      }
      // An error reply means Redis answered: only silence and transport failures open the circuit.
      // A deadline cut short by the call's budget says nothing about Redis either way.
      // One cluster node down while others answer is that node's failure, not Redis's (partlyDown).
      if (isReplyError(thrown)) this.breaker.success();
      else if (transport?.partlyDown?.() || (signal?.aborted && deadlineMs < this.timeoutMs))
        this.breaker.inconclusive();
      else this.breaker.failure(Date.now());
      const error = this.failure(operation, thrown, signal?.aborted === true, deadlineMs);
      this.report(operation, error);
      throw error;
    } finally {
      if (budget && started > 0) budget.spend(performance.now() - started);
    }
  }

  private connected(): Promise<Transport> {
    this.transport ??= this.createTransport()
      .then(async (transport) => {
        if (transport.redact) this.scrub = (text) => redact(transport.redact!(text));
        await transport.warmup?.();
        if (this.closed) {
          await transport.close();
          throw new CacheError("CLOSED", "the cache was closed");
        }
        return transport;
      })
      .catch((error) => {
        this.transport = undefined; // a failed import or setup is retried by the next operation
        if (error instanceof CacheError && error.code === "CONFIG") this.misconfigured = error;
        throw error;
      });
    return this.transport;
  }

  /** The CacheError for what an operation threw, with every secret scrubbed from its text. */
  private failure(operation: string, thrown: unknown, timedOut: boolean, deadlineMs: number): CacheError {
    if (timedOut) {
      return new CacheError(
        "TIMEOUT",
        `${operation}: Redis did not answer within ${Math.ceil(deadlineMs)} ms`,
      );
    }
    if (thrown instanceof CacheError) return thrown;
    const cause =
      thrown instanceof Error ? redactError(thrown, this.scrub) : new Error(this.scrub(String(thrown)));
    return new CacheError("UNAVAILABLE", `${operation} failed: ${cause.message}`, { cause });
  }

  private spent(operation: string): CacheError {
    return new CacheError(
      "TIMEOUT",
      `${operation} skipped: this call already spent its ${this.timeoutMs} ms on Redis`,
    );
  }
}

/** Charges the time `work` takes to `budget`. */
function charged<T>(budget: Budget, work: Promise<T>): Promise<T> {
  const started = performance.now();
  return work.finally(() => budget.spend(performance.now() - started));
}

/** A key's reply to the reads waiting for it. */
function tellAll(waiting: BatchRead | BatchRead[], text: string | null): void {
  if (Array.isArray(waiting)) for (const read of waiting) tell(read, text);
  else tell(waiting, text);
}

function failAll(waiting: BatchRead | BatchRead[], error: unknown): void {
  if (Array.isArray(waiting)) for (const read of waiting) read.fail(error);
  else waiting.fail(error);
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
