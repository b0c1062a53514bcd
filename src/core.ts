import { Coherence } from "./coherence.js";
import type { ResolvedConfig } from "./config.js";
import { asError, CacheError } from "./errors.js";
import { type FlushContext, runFlush } from "./flush.js";
import { vercelWaitUntil } from "./http/wait-until.js";
import { KeySpace } from "./keys.js";
import { Breaker } from "./tiers/breaker.js";
import { L1 } from "./tiers/l1.js";
import { L2 } from "./tiers/l2.js";
import type { CacheEvent, WaitUntil } from "./types.js";
import { registerVersion } from "./versioning.js";

export type Tier = "l1" | "l2";

/** This instance's counts since it started, for `stats()`. */
export interface Counts {
  l1: number;
  l2: number;
  misses: number;
  stale: number;
  loads: number;
  errors: number;
}

/**
 * What every path of the cache shares: the resolved configuration, the key layout, both tiers, the
 * breaker and coherence, the counters, and the small policies each path applies the same way —
 * `failSilently`, events and log lines, background work, and version registration.
 */
export class CacheCore {
  readonly keys: KeySpace;
  readonly l1: L1 | null;
  readonly l2: L2 | null;
  readonly breaker: Breaker;
  readonly coherence: Coherence;
  readonly counts: Counts = { l1: 0, l2: 0, misses: 0, stale: 0, loads: 0, errors: 0 };
  /** This instance's version registration, started on its first Redis contact; settles with the versions it flushed. */
  private registration: Promise<string[]> | undefined;

  constructor(readonly config: ResolvedConfig) {
    this.keys = new KeySpace(config.prefix, config.namespace, config.version);
    this.l1 = config.l1 ? new L1(config.l1.maxEntries, config.l1.maxBytes, config.l1.ttlMs) : null;
    this.breaker = new Breaker(config.breaker.failureThreshold, config.breaker.resetMs, (state) => {
      this.emit({ type: "breaker", state });
      if (state === "open") config.logger.warn("Redis circuit open: serving from L1 and loaders");
      else if (state === "closed") config.logger.info?.("Redis circuit closed: Redis is back");
    });
    this.l2 = config.transport
      ? new L2(config.transport, config.transportKind, config.timeoutMs, this.breaker, (operation, error) => {
          this.counts.errors++;
          this.emit({ type: "error", operation, error });
          config.logger.warn(`Redis ${operation} failed: ${error.message}`, { code: error.code });
        })
      : null;
    this.coherence = new Coherence(
      this.l1,
      this.l2,
      this.keys,
      (work) => this.tolerate(work),
      config.l1 ? config.l1.syncMs : 1000,
      () => this.debug("L1 dropped: invalidation on another instance"),
    );
  }

  /** Runs an L2 operation; its CacheError is swallowed (undefined) with `failSilently`, thrown without. */
  tolerate<T>(work: () => Promise<T>): Promise<T | undefined> {
    const swallow = (error: unknown) => {
      if (!this.config.failSilently) throw error;
      return undefined;
    };
    try {
      return work().catch(swallow);
    } catch (error) {
      return Promise.reject(error).catch(swallow);
    }
  }

  /**
   * Deletes a bad entry from Redis without making the read wait. Its failure was reported by L2
   * already and must not surface as an unhandled rejection, whatever `failSilently` says.
   */
  unlinkQuietly(full: string): void {
    this.l2?.send(["UNLINK", full]).catch(() => {});
  }

  // Hits and misses are on every read's path: the event object and the log line are built only when
  // someone listens (`a?.(b)` evaluates `b` only when `a` exists).
  hit(key: string, value: unknown, tier: Tier): unknown {
    this.counts[tier]++;
    if (this.config.onEvent) this.emit({ type: "hit", key, tier });
    this.config.logger.debug?.(`Cache HIT (${tier === "l1" ? "l1" : "redis"}) ${key}`);
    return value;
  }

  miss(key: string): undefined {
    this.counts.misses++;
    if (this.config.onEvent) this.emit({ type: "miss", key });
    this.config.logger.debug?.(`Cache MISS ${key}`);
    return undefined;
  }

  debug(message: string): void {
    this.config.logger.debug?.(message);
  }

  emit(event: CacheEvent): void {
    if (!this.config.onEvent) return;
    try {
      this.config.onEvent(event);
    } catch {
      // A metrics callback must never break a read.
    }
  }

  /** Who keeps the function alive for background work: the call's, the cache's, else the live Vercel request's. */
  scheduler(given: WaitUntil | undefined): WaitUntil | undefined {
    return given ?? this.config.waitUntil ?? vercelWaitUntil();
  }

  /**
   * Runs background work: handed to `waitUntil` (the one given, else the cache's) so the platform
   * keeps the function alive for it, or awaited when there is none. Its failure is logged, not thrown.
   */
  async runInBackground(work: () => Promise<unknown>, waitUntil?: WaitUntil): Promise<void> {
    const promise = work().catch((error) =>
      this.config.logger.warn(`background work failed: ${asError(error).message}`),
    );
    const schedule = this.scheduler(waitUntil);
    if (schedule) schedule(promise);
    else await promise;
  }

  /**
   * Registers this instance's version once, on its first Redis contact, and lets the newest version
   * flush stale ones (versioning.ts). Never on a request's path: the promise is handed to `waitUntil`
   * when there is one and otherwise runs on its own; it never rejects, and a failed registration is
   * retried on a later contact. `autoFlush: false` for an explicit flush, which does the work itself.
   */
  ensureRegistered(autoFlush = true, waitUntil?: WaitUntil): Promise<string[]> {
    if (this.registration || !this.l2) return this.registration ?? Promise.resolve([]);
    const context = this.flushContext();
    const registration = registerVersion(
      { l2: this.l2, keys: this.keys, logger: this.config.logger },
      this.config.keepVersions,
      autoFlush ? () => runFlush(context) : undefined,
    ).catch((error: unknown) => {
      this.registration = undefined;
      // While the circuit is open every contact retries at no cost; only real failures are worth a line.
      if (!(error instanceof CacheError && error.code === "BREAKER_OPEN")) {
        this.config.logger.warn(`Cache version registration failed: ${asError(error).message}`);
      }
      return [];
    });
    this.registration = registration;
    this.scheduler(waitUntil)?.(registration);
    return registration;
  }

  flushContext(): FlushContext {
    const { logger, keepVersions } = this.config;
    return { l1: this.l1, l2: this.l2, keys: this.keys, logger, keepVersions };
  }
}
