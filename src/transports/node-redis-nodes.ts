import { abortError } from "./abort.js";

/**
 * Which cluster primaries are down, as the commands sent to them tell: one that failed to connect,
 * dropped its connection or let a command's deadline pass unanswered (a frozen or partitioned node
 * keeps its socket open) is down. Commands routed to a down node fail at once, and one every
 * `retryMs` goes through to probe it; a reply from it (an error reply too) brings it back. So a dead
 * node costs its own keys one deadline, not every key's — and the circuit breaker of L2, shared by
 * all nodes, is left to what no single node explains (see {@link NodeHealth.partlyDown}).
 */
export class NodeHealth {
  /** Address → when it was last found down or last probed. */
  private readonly down = new Map<string, number>();
  /** Address → when it last answered anything. */
  private readonly answeredAt = new Map<string, number>();

  constructor(
    private readonly aborts: AbortWatch,
    private readonly retryMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /**
   * Whether a command for `address` may be sent now: always while it is up; while it is down, once
   * per `retryMs` (the probe), otherwise not.
   */
  admit(address: string): boolean {
    const since = this.down.get(address);
    if (since === undefined) return true;
    const at = this.now();
    if (at - since < this.retryMs) return false;
    this.down.set(address, at);
    return true;
  }

  /** Watches one command sent to `address` until it settles or `signal` aborts it unanswered. */
  track(
    address: string,
    reply: Promise<unknown>,
    signal: AbortSignal | undefined,
    answered: (error: unknown) => boolean,
  ): void {
    const sentAt = this.now();
    // A node that answered other commands since this one left is slow or busy, not down: the deadline
    // of a batch also cuts short what it still waits for from healthy nodes.
    const onAbort = () => {
      if ((this.answeredAt.get(address) ?? Number.NEGATIVE_INFINITY) <= sentAt) this.failed(address);
    };
    const off = signal && !signal.aborted ? this.aborts.on(signal, onAbort) : undefined;
    reply.then(
      () => {
        off?.();
        this.up(address);
      },
      (error: unknown) => {
        off?.();
        if (answered(error)) this.up(address);
        else this.failed(address);
      },
    );
  }

  isDown(address: string): boolean {
    return this.down.has(address);
  }

  /** Some of these primaries are down and at least one is not. */
  partlyDown(primaries: readonly string[]): boolean {
    const down = primaries.filter((address) => this.down.has(address)).length;
    return down > 0 && down < primaries.length;
  }

  private up(address: string): void {
    this.down.delete(address);
    this.answeredAt.set(address, this.now());
  }

  private failed(address: string): void {
    this.down.set(address, this.now());
  }
}

/**
 * One `abort` listener per signal, however many commands wait on it: a tick's reads on a cluster
 * are one command per slot under one deadline.
 */
export class AbortWatch {
  private readonly waiting = new WeakMap<AbortSignal, Set<() => void>>();

  /** Calls `callback` when `signal` aborts, unless the returned function is called first. */
  on(signal: AbortSignal, callback: () => void): () => void {
    let callbacks = this.waiting.get(signal);
    if (!callbacks) {
      const created = new Set<() => void>();
      callbacks = created;
      this.waiting.set(signal, created);
      signal.addEventListener(
        "abort",
        () => {
          this.waiting.delete(signal);
          for (const call of created) call();
        },
        { once: true },
      );
    }
    const own = callbacks;
    own.add(callback);
    return () => own.delete(callback);
  }

  /** `abortable()` over this watch: settles like `work`, or rejects as soon as `signal` aborts. */
  race<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (!signal) return work;
    if (signal.aborted) {
      work.catch(() => {});
      return Promise.reject(abortError(signal));
    }
    return new Promise<T>((resolve, reject) => {
      const off = this.on(signal, () => reject(abortError(signal)));
      work.then(
        (value) => {
          off();
          resolve(value);
        },
        (error: unknown) => {
          off();
          reject(error);
        },
      );
    });
  }
}
