import { fraction } from "./config.js";
import type { CacheCore } from "./core.js";
import { toMs } from "./duration.js";
import type { Entry } from "./entry.js";
import { asError, CacheError } from "./errors.js";
import { type Loader, LoaderRun, leaseMsOf } from "./loader-run.js";
import { bounded, loaderTimeoutMs } from "./loader-timeout.js";
import { BatchedRead, type Found, type ReadPath } from "./read-path.js";
import { type Running, SingleFlight } from "./single-flight.js";
import type { OperationSpan } from "./telemetry.js";
import type { Budget } from "./tiers/budget.js";
import type { GetOrSetOptions, Schema } from "./types.js";
import { adopt } from "./warm-start.js";
import { checkWriteOptions } from "./write-options.js";
import type { WritePath } from "./write-path.js";

const loadedValue = <T>(loaded: { value: T }): T => loaded.value;

/**
 * The load policy of `getOrSet`: what happens when the read path has no fresh entry. One loader
 * run per key per instance at a time (single-flight); a stale entry served while one background
 * refresh runs (`staleWhileRevalidate`) or when the loader fails (`staleIfError`); an optional
 * Redis lease so cold instances do not all load the same key.
 */
export class LoadPolicy {
  readonly flights = new SingleFlight();
  private readonly runs: LoaderRun;
  private readonly refreshing = new Set<string>();
  /**
   * Warm-start values served here while their key's refresh runs: later callers on this instance get
   * them without reading Redis again. Each lasts as long as that refresh (one load, or the wait for
   * another instance's lease holder), like the value a flight hands its joiners.
   */
  private readonly warmServed = new Map<string, { schema: Schema<unknown> | undefined; value: unknown }>();

  constructor(
    private readonly core: CacheCore,
    private readonly read: ReadPath,
    private readonly write: WritePath,
  ) {
    this.runs = new LoaderRun(core, read, write);
  }

  getOrLoad<T>(
    key: string,
    fullKey: string | Promise<string>,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    span?: OperationSpan,
  ): Promise<T> {
    try {
      checkWriteOptions(options);
    } catch (error) {
      return Promise.reject(error);
    }
    if (typeof fullKey !== "string")
      return fullKey.then((full) => this.getOrLoadAt(key, full, loader, options, span));
    return this.getOrLoadAt(key, fullKey, loader, options, span);
  }

  private getOrLoadAt<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    span: OperationSpan | undefined,
  ): Promise<T> {
    if (!this.core.config.enabled) {
      span?.hit("miss");
      return this.runs
        .load(key, full, loader, options, undefined, undefined, undefined, span)
        .then(loadedValue);
    }
    const { flights } = this;
    const slot = flights.enter(flights.flightKey(full, options.schema), this.core.coherence.invalidations);
    if (slot.flight) {
      span?.set("tiercache.coalesced", true);
      return slot.flight as Promise<T>;
    }
    if (!span && this.read.batchable(full, options)) {
      // The common case, an L2 hit, settles in the batch's loop: one promise for the caller.
      const read = new Flight(this.read, this, slot, key, full, loader, options);
      slot.flight = read.promise;
      this.read.readBatched(read, options.waitUntil);
      return read.promise;
    }
    const flight = this.resolve(key, full, loader, options, span);
    slot.flight = flight;
    const over = () => flights.landed(slot);
    flight.then(over, over);
    return flight;
  }

  /** A warm start serves another deploy's value: only through a schema, since its shape may have changed. */
  checkWarmStart(key: string, options: Pick<GetOrSetOptions, "warmStart" | "schema">): void {
    if ((options.warmStart ?? this.core.config.warmStart) && !options.schema) {
      throw new CacheError(
        "CONFIG",
        `getOrSet("${key}"): warmStart needs a schema, since the previous version's values may have another shape (pass a schema, or warmStart: false)`,
      );
    }
  }

  private async resolve<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    span: OperationSpan | undefined,
  ): Promise<T> {
    const { core } = this;
    const warm = options.warmStart ?? core.config.warmStart;
    const served = warm ? this.warmServed.get(full) : undefined;
    if (served && served.schema === options.schema) return this.serveWarm(key, served.value as T);
    // One timeoutMs for all the Redis work this call awaits: read, lease, write-back.
    const budget = core.l2?.budget();
    const found = await this.read.lookup(key, full, options.schema, options.waitUntil, budget, warm);
    return this.afterLookup(key, full, loader, options, found, budget, span);
  }

  /** What `getOrSet` answers once the read path has looked: a warm start, a hit, a stale value, or a load. */
  async afterLookup<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    looked: Found | undefined,
    budget: Budget | undefined,
    span: OperationSpan | undefined,
  ): Promise<T> {
    const { core } = this;
    const now = Date.now();
    if (looked?.warm) {
      const served = await this.warmHit(key, full, loader, options, looked, now, span);
      if (served) return served.value;
    }
    // A previous version's entry past its window is a plain miss: the lease applies.
    const found = looked?.warm ? undefined : looked;
    if (found && found.entry.fresh > now) {
      span?.hit(found.tier);
      this.refreshAheadIfDue(key, full, loader, options, found.entry);
      return core.hit(key, found.value, found.tier) as T;
    }
    const stale = found?.entry;
    const staleValue = found?.value as T;
    const windows = stale ? options.staleWindows?.(staleValue) : undefined;
    const swrMs =
      windows?.staleWhileRevalidate ??
      toMs(options.staleWhileRevalidate ?? core.config.staleWhileRevalidateMs, "staleWhileRevalidate");
    const limits = options.loaderTimeout ? loaderTimeoutMs(options.loaderTimeout) : core.config.loaderTimeout;
    // Within its window, or while a load that outlived `soft` is still refreshing it.
    const refreshing = limits?.softMs !== undefined && this.refreshing.has(full);
    if (found && stale && (now < stale.fresh + swrMs || refreshing)) {
      span?.hit("stale");
      this.serveStale(key, found);
      if (!refreshing)
        this.refreshInBackground(key, full, loader, options, { replaces: stale.created, span });
      return staleValue;
    }
    core.miss(key);
    span?.hit("miss");
    const loading = this.loadOnMiss(key, full, loader, options, found, budget, span);
    if (!limits) return loading;
    const fallback = found && {
      value: staleValue,
      served: () => {
        this.serveStale(key, found);
        this.refreshing.add(full);
        const done = () => this.refreshed(full);
        loading.then(done, done);
      },
    };
    return bounded(key, loading, limits, fallback, (pending) => {
      void core.runInBackground(() => pending, options.waitUntil);
    });
  }

  /**
   * A warm start: the previous version's entry on its own schedule. Still fresh, it is adopted as
   * the current version's entry (no load); past its freshness but within the call's
   * `staleWhileRevalidate`, it is served as stale while one background refresh (guarded by the
   * lease) loads the current version's value. Later, nothing is served from it.
   */
  private async warmHit<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    found: Found,
    now: number,
    span: OperationSpan | undefined,
  ): Promise<{ value: T } | undefined> {
    const { entry } = found;
    const value = found.value as T;
    if (entry.fresh > now) {
      span?.hit("l2");
      await adopt(this.core, this.write, key, full, entry, options.waitUntil);
      this.refreshAheadIfDue(key, full, loader, options, entry);
      return { value: this.serveWarm(key, value) };
    }
    const swrMs =
      options.staleWindows?.(value)?.staleWhileRevalidate ??
      toMs(options.staleWhileRevalidate ?? this.core.config.staleWhileRevalidateMs, "staleWhileRevalidate");
    if (now >= entry.fresh + swrMs) return undefined;
    span?.hit("stale");
    this.warmServed.set(full, { schema: options.schema, value });
    this.refreshInBackground(key, full, loader, options, { guarded: true, awaitHolder: true, span });
    return { value: this.serveWarm(key, value) };
  }

  private refreshed(full: string): void {
    this.refreshing.delete(full);
    this.warmServed.delete(full);
  }

  private serveWarm<T>(key: string, value: T): T {
    this.core.counts.warm++;
    this.core.emit({ type: "warm", key });
    this.core.debug(`Cache WARM (previous version) ${key}`);
    return value;
  }

  private serveStale(key: string, found: Found): void {
    const { core } = this;
    core.counts.stale++;
    // Built only when someone listens, as hits and misses (core.ts).
    if (core.config.onEvent) core.emit({ type: "stale", key, tier: found.tier });
    core.config.logger.debug?.(`Cache STALE (${found.tier}) ${key}`);
  }

  /** A miss (or a stale entry past its window): the lease when asked for, the loader, `staleIfError`. */
  private async loadOnMiss<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    found: Found | undefined,
    budget: Budget | undefined,
    span: OperationSpan | undefined,
  ): Promise<T> {
    const { core } = this;
    const stale = found?.entry;
    const staleValue = found?.value as T;
    let leaseKey: string | undefined;
    const l2 = core.l2;
    if (options.lease && l2 && !stale) {
      const leaseMs = leaseMsOf(options.lease);
      leaseKey = core.keys.lease(full);
      const lease = leaseKey;
      const granted = await core.tolerate(() =>
        l2.send(["SET", lease, "1", "NX", "PX", leaseMs], "SET", budget),
      );
      if (granted === null) {
        leaseKey = undefined;
        const loaded = await this.runs.awaitLeaseHolder(key, full, options.schema, leaseMs, budget);
        if (loaded) {
          span?.hit("l2");
          return core.hit(key, loaded.value, "l2") as T;
        }
      }
    }
    try {
      return (await this.runs.load(key, full, loader, options, leaseKey, stale?.created, budget, span)).value;
    } catch (error) {
      if (leaseKey) this.runs.releaseLease(leaseKey);
      const windows = stale ? options.staleWindows?.(staleValue) : undefined;
      const sieMs =
        windows?.staleIfError ?? toMs(options.staleIfError ?? core.config.staleIfErrorMs, "staleIfError");
      if (
        stale &&
        Date.now() < stale.fresh + sieMs &&
        !(error instanceof CacheError && error.code === "SCHEMA")
      ) {
        span?.hit("stale");
        core.counts.stale++;
        core.config.logger.warn(`loader failed, serving stale ${key}: ${asError(error).message}`);
        return staleValue;
      }
      throw error;
    }
  }

  /**
   * `refreshAhead`: a hit on an entry past that fraction of its freshness starts one background
   * refresh, unless one is running for the key here, or (with `lease`) on another instance — or
   * Redis holds a newer copy already (another instance refreshed it), which L1 then takes.
   */
  refreshAheadIfDue<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    entry: Entry,
  ): void {
    const ahead =
      options.refreshAhead !== undefined
        ? fraction("refreshAhead", options.refreshAhead)
        : this.core.config.refreshAhead;
    if (ahead === undefined || this.refreshing.has(full)) return;
    const due = (candidate: Entry) =>
      Date.now() >= candidate.created + ahead * (candidate.fresh - candidate.created);
    if (!due(entry)) return;
    this.refreshInBackground(key, full, loader, options, { replaces: entry.created, guarded: true, due });
  }

  /**
   * One background load per key on this instance. `guarded` (warm starts, refresh ahead): with
   * `lease` on, only the instance that takes the lease loads. With the lease taken, or `due` given,
   * Redis is read first (after the lease, so a holder that just finished is seen): a copy there that
   * is fresh — and, with `due`, no longer due — goes to L1 instead of a load. `awaitHolder`: when
   * another instance holds the lease, its value is awaited (polled) into L1.
   */
  private refreshInBackground<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    how: {
      replaces?: number;
      guarded?: boolean;
      due?: (entry: Entry) => boolean;
      awaitHolder?: boolean;
      span?: OperationSpan;
    },
  ): void {
    if (this.refreshing.has(full)) return;
    this.refreshing.add(full);
    const refresh = async (): Promise<void> => {
      const { core } = this;
      const l2 = core.l2;
      let leaseKey: string | undefined;
      if (how.guarded && options.lease && l2) {
        const lease = core.keys.lease(full);
        const leaseMs = leaseMsOf(options.lease);
        const granted = await core.tolerate(() => l2.send(["SET", lease, "1", "NX", "PX", leaseMs]));
        if (granted === null && how.awaitHolder) {
          await this.runs.awaitLeaseHolder(key, full, options.schema, leaseMs, undefined);
          return;
        }
        // Not taken (another instance is loading it) or not known to be: what is served meanwhile will do.
        if (granted !== "OK") return;
        leaseKey = lease;
      }
      if (leaseKey || how.due) {
        const current = await this.read.readRemote(key, full);
        if (current && current.fresh > Date.now() && !how.due?.(current)) {
          if (leaseKey) this.runs.releaseLease(leaseKey);
          core.l1?.set(full, current, Date.now());
          return;
        }
      }
      try {
        const background = { ...options, waitUntil: undefined };
        await this.runs.load(key, full, loader, background, leaseKey, how.replaces, undefined, how.span);
      } catch (error) {
        if (leaseKey) this.runs.releaseLease(leaseKey);
        throw error;
      }
    };
    void this.core.runInBackground(() => refresh().finally(() => this.refreshed(full)), options.waitUntil);
  }
}

/**
 * A `getOrSet` flight that starts as a batched read: a fresh L2 entry resolves it from the batch's
 * loop; anything else continues as {@link LoadPolicy.afterLookup} (stale, miss, load) within the
 * call's budget, charged with the read.
 */
class Flight<T> extends BatchedRead<T> {
  constructor(
    path: ReadPath,
    private readonly policy: LoadPolicy,
    private readonly slot: Running,
    key: string,
    full: string,
    private readonly loader: Loader<T>,
    private readonly options: GetOrSetOptions<T>,
  ) {
    super(path, key, full);
  }

  protected hit(value: unknown, entry: Entry): void {
    this.policy.flights.landed(this.slot);
    try {
      this.policy.refreshAheadIfDue(this.key, this.full, this.loader, this.options, entry);
    } catch (error) {
      this.reject(error); // an invalid refreshAhead, as on the general path
      return;
    }
    this.resolve(value as T);
  }

  protected settle(found: Promise<Found | undefined>): void {
    found
      .then((result) =>
        this.policy.afterLookup(
          this.key,
          this.full,
          this.loader,
          this.options,
          result,
          this.budget(),
          undefined,
        ),
      )
      .then(
        (value) => {
          this.policy.flights.landed(this.slot);
          this.resolve(value);
        },
        (error: unknown) => {
          this.policy.flights.landed(this.slot);
          this.reject(error);
        },
      );
  }
}
