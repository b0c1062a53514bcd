import { Analytics } from "./analytics.js";
import { Coherence } from "./coherence.js";
import type { ResolvedConfig } from "./config.js";
import { WarningLimiter } from "./encryption.js";
import { asError, CacheError } from "./errors.js";
import { type FlushContext, runFlush } from "./flush.js";
import { vercelWaitUntil } from "./http/wait-until.js";
import { KeySpace } from "./keys.js";
import { OutageLog } from "./log-limiter.js";
import { NO_ATTRIBUTES, type SpanAttributes, type Telemetry, timedTransport } from "./telemetry.js";
import { Breaker } from "./tiers/breaker.js";
import { L1 } from "./tiers/l1.js";
import { L2 } from "./tiers/l2.js";
import type { CacheEvent, Invalidation, WaitUntil } from "./types.js";
import { registerVersion, warmSourceVersion } from "./versioning.js";

export type Tier = "l1" | "l2";

/** This instance's counts since it started, for `stats()`. */
export interface Counts {
  l1: number;
  l2: number;
  misses: number;
  stale: number;
  warm: number;
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
  readonly counts: Counts = { l1: 0, l2: 0, misses: 0, stale: 0, warm: 0, loads: 0, errors: 0 };
  /** The version warm starts read from, learnt from the registry at registration (versioning.ts). */
  private warmVersion: string | undefined;
  /** Settles when the registration read the registry (or failed); see registryKnown. */
  private registryRead: Promise<void> | undefined;
  /** Spans and metrics (`telemetry` option); null without, and then every path skips it at one test. */
  readonly telemetry: Telemetry | null;
  /** Pushes the counts for `tiercache stats` (`analytics: true` with Redis); null otherwise. */
  readonly analytics: Analytics | null;
  /** Log lines about Redis trouble, bounded whatever the traffic. */
  private readonly outage: OutageLog;
  /** This instance's version registration, started on its first Redis contact; settles with the versions it flushed. */
  private registration: Promise<string[]> | undefined;
  private readonly unreadableWarnings = new WarningLimiter();

  constructor(readonly config: ResolvedConfig) {
    this.keys = new KeySpace(config.prefix, config.namespace, config.version, config.slotted);
    const telemetry =
      config.telemetry?.instrument({
        namespace: config.namespace,
        version: config.version,
        transport: config.transportKind,
        counts: this.counts,
      }) ?? null;
    this.telemetry = telemetry;
    const createTransport = config.transport;
    const transport =
      telemetry && createTransport
        ? async () => timedTransport(await createTransport(), telemetry)
        : createTransport;
    this.l1 = config.l1 ? new L1(config.l1.maxEntries, config.l1.maxBytes, config.l1.ttlMs) : null;
    const outage = new OutageLog(config.logger);
    this.outage = outage;
    this.breaker = new Breaker(config.breaker.failureThreshold, config.breaker.resetMs, (state) => {
      this.emit({ type: "breaker", state });
      this.telemetry?.breaker(state);
      outage.breaker(state);
      if (state === "closed") this.coherence.contacted();
    });
    this.l2 = transport
      ? new L2(
          transport,
          config.transportKind,
          config.timeoutMs,
          this.breaker,
          (operation, error) => {
            this.counts.errors++;
            this.telemetry?.error(operation);
            this.emit({ type: "error", operation, error });
            outage.failure(operation, error);
          },
          config.slotted,
        )
      : null;
    this.analytics =
      this.l2 && config.analyticsMs !== null
        ? new Analytics(this.l2, this.keys, this.counts, config.analyticsMs, (given) => this.scheduler(given))
        : null;
    this.coherence = new Coherence({
      l1: this.l1,
      l2: this.l2,
      keys: this.keys,
      syncMs: config.l1 ? config.l1.syncMs : 1000,
      tolerate: (work) => this.tolerate(work),
      emit: (event) => this.emit(event),
      debug: (message) => this.debug(message),
      // A replay serves no request: the cache's scheduler keeps the platform alive for it, else it runs loose.
      detach: (work) => this.scheduler(undefined)?.(work),
    });
  }

  /** Runs an L2 operation; its CacheError is swallowed (undefined) with `failSilently`, thrown without. */
  tolerate<T>(work: () => Promise<T>): Promise<T | undefined> {
    const swallow = (error: unknown) => {
      // After close() the cache runs as if it had no Redis: not an error even without failSilently.
      if (!this.config.failSilently && !(error instanceof CacheError && error.code === "CLOSED")) throw error;
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

  /** A Redis entry that does not open (no key, wrong key, tampered): a miss and a rate-limited warning. */
  unreadable(key: string, reason: string): undefined {
    const line = this.unreadableWarnings.next(`encrypted entry at ${key} not served: ${reason}`);
    if (line) this.config.logger.warn(line);
    return undefined;
  }

  /** Span attributes naming a user key: only with `traceKeys`, keys can hold identifiers. */
  keyAttributes(key: string): SpanAttributes {
    return this.telemetry?.traceKeys ? { "tiercache.key": key } : NO_ATTRIBUTES;
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
   * Tells `onInvalidate` (a CDN purge, say) what was invalidated: in the background through
   * `waitUntil`, else awaited with the invalidation, like every background write. Never rejects.
   */
  notifyInvalidation(invalidation: Invalidation): Promise<void> {
    const { onInvalidate } = this.config;
    if (!onInvalidate) return Promise.resolve();
    return this.runInBackground(async () => onInvalidate(invalidation)).catch(() => {});
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
    let learnt = () => {};
    this.registryRead = new Promise<void>((resolve) => {
      learnt = resolve;
    });
    const registration = registerVersion(
      { l2: this.l2, keys: this.keys, logger: this.config.logger },
      this.config.keepVersions,
      autoFlush ? () => runFlush(context) : undefined,
      (records) => {
        this.warmVersion = warmSourceVersion(records, this.keys.version, this.config.keepVersions);
        learnt();
      },
    ).catch((error: unknown) => {
      this.registration = undefined;
      learnt();
      // While the circuit is open every contact retries at no cost; only real failures are worth a
      // line, and not a second one for a Redis failure L2 has logged (or a CONFIG error, logged
      // once where it arose, e.g. `redis` missing).
      const quiet = ["BREAKER_OPEN", "CLOSED", "CONFIG"];
      if (!(error instanceof CacheError && quiet.includes(error.code))) {
        this.outage.consequence("registration", error, () => [
          `Cache version registration failed: ${asError(error).message}`,
        ]);
      }
      return [];
    });
    this.registration = registration;
    this.scheduler(waitUntil)?.(registration);
    return registration;
  }

  /**
   * Settles once this instance has read the version registry (or failed to), starting its
   * registration if need be: a delete must know the warm-start source to remove its copy too.
   */
  registryKnown(): Promise<void> {
    void this.ensureRegistered(true);
    return this.registryRead ?? Promise.resolve();
  }

  /**
   * The previous version's key of the entry at `full`, for a warm start: undefined until this
   * instance registered its version (no extra round trip on a read), for unversioned keys, and
   * when there is no previous version a warm start may read (versioning.ts, warmSourceVersion).
   */
  warmSource(full: string): string | undefined {
    return this.warmVersion === undefined ? undefined : this.keys.inVersion(full, this.warmVersion);
  }

  flushContext(): FlushContext {
    const { logger, keepVersions } = this.config;
    return { l1: this.l1, l2: this.l2, keys: this.keys, logger, keepVersions };
  }
}
