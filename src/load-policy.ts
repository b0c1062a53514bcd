import { fraction } from "./config.js";
import type { CacheCore } from "./core.js";
import { toMs } from "./duration.js";
import type { Entry } from "./entry.js";
import { asError, CacheError } from "./errors.js";
import { bounded, loaderTimeoutMs } from "./loader-timeout.js";
import { BatchedRead, type Found, type ReadPath } from "./read-path.js";
import { validate } from "./schema.js";
import type { OperationSpan } from "./telemetry.js";
import type { Budget } from "./tiers/budget.js";
import { CLOCK_SKEW_MS, parseWriteBack, TOMBSTONE_MS, writeBackCommand } from "./tombstone.js";
import type { Duration, GetOrSetOptions, LoaderContext, Schema } from "./types.js";
import { checkWriteOptions } from "./write-options.js";
import type { PreparedWrite, WritePath } from "./write-path.js";

type Loader<T> = (context: LoaderContext) => T | Promise<T>;

/**
 * A flight key's slot in the single-flight registry; `flight` is emptied when it lands. It holds
 * the count of invalidations (coherence.ts) its flight began at; `replaced` once a later flight of
 * the same key (begun after an invalidation) took its place in the registry.
 */
interface Running {
  flight: Promise<unknown> | undefined;
  invalidations: number;
  replaced: boolean;
}

/** Empty slots kept before a sweep: bounds the registry at the running flights plus this. */
const SWEEP_LANDED = 1024;

const loadedValue = <T>(loaded: { value: T }): T => loaded.value;

/**
 * The load policy of `getOrSet`: what happens when the read path has no fresh entry. One loader
 * run per key per instance at a time (single-flight); a stale entry served while one background
 * refresh runs (`staleWhileRevalidate`) or when the loader fails (`staleIfError`); an optional
 * Redis lease so cold instances do not all load the same key.
 */
export class LoadPolicy {
  /** Single-flight: each flight key's slot, holding its running flight (empty ones kept, see `landed`). */
  private readonly inflight = new Map<string, Running>();
  /** Empty slots still in `inflight`. */
  private landedKept = 0;
  private readonly schemaIds = new WeakMap<Schema<unknown>, number>();
  private lastSchemaId = 0;
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
  ) {}

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
      return this.load(key, full, loader, options, undefined, undefined, undefined, span).then(loadedValue);
    }
    // Callers share a flight only when they would get the same value: same key, same schema.
    const flightKey = options.schema ? `${full}\u0000${this.schemaId(options.schema)}` : full;
    const { invalidations } = this.core.coherence;
    const known = this.inflight.get(flightKey);
    // A flight begun before an invalidation may bring back what it invalidated: a caller arriving
    // after it starts a flight of its own (the earlier one still answers its own callers).
    if (known?.flight && known.invalidations === invalidations) {
      span?.set("tiercache.coalesced", true);
      return known.flight as Promise<T>;
    }
    // The key's slot is reused from flight to flight: nothing per flight stays reachable from it.
    let slot: Running;
    if (known && !known.flight) {
      slot = known;
      this.landedKept--;
    } else {
      if (known) known.replaced = true;
      slot = { flight: undefined, invalidations, replaced: false };
      this.inflight.set(flightKey, slot);
    }
    slot.invalidations = invalidations;
    if (!span && this.read.batchable(full, options)) {
      // The common case, an L2 hit, settles in the batch's loop: one promise for the caller.
      const read = new Flight(this.read, this, slot, key, full, loader, options);
      slot.flight = read.promise;
      this.read.readBatched(read, options.waitUntil);
      return read.promise;
    }
    const flight = this.resolve(key, full, loader, options, span);
    slot.flight = flight;
    const over = () => this.landed(slot);
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

  /**
   * A flight is over: the next caller of its key starts a new one. Its slot stays, empty, until
   * enough have landed to sweep them at once: V8 shrinks a Map as it empties and grows it again as it
   * fills, and at 100 flights a tick that rehashing cost about 0.5 µs per read (measured).
   */
  landed(slot: Running): void {
    slot.flight = undefined;
    if (slot.replaced || ++this.landedKept < SWEEP_LANDED) return;
    for (const [flightKey, entry] of this.inflight) if (!entry.flight) this.inflight.delete(flightKey);
    this.landedKept = 0;
  }

  private schemaId(schema: Schema<unknown>): number {
    let id = this.schemaIds.get(schema);
    if (id === undefined) {
      id = ++this.lastSchemaId;
      this.schemaIds.set(schema, id);
    }
    return id;
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
    found: Found | undefined,
    budget: Budget | undefined,
    span: OperationSpan | undefined,
  ): Promise<T> {
    const { core } = this;
    const now = Date.now();
    if (found?.warm) {
      span?.hit("stale");
      this.warmServed.set(full, { schema: options.schema, value: found.value });
      this.refreshInBackground(key, full, loader, options, { guarded: true, awaitHolder: true, span });
      return this.serveWarm(key, found.value as T);
    }
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
        const loaded = await this.awaitLeaseHolder(key, full, options.schema, leaseMs, budget);
        if (loaded) {
          span?.hit("l2");
          return core.hit(key, loaded.value, "l2") as T;
        }
      }
    }
    try {
      return (await this.load(key, full, loader, options, leaseKey, stale?.created, budget, span)).value;
    } catch (error) {
      if (leaseKey) this.releaseLease(leaseKey);
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
          await this.awaitLeaseHolder(key, full, options.schema, leaseMs, undefined);
          return;
        }
        // Not taken (another instance is loading it) or not known to be: what is served meanwhile will do.
        if (granted !== "OK") return;
        leaseKey = lease;
      }
      if (leaseKey || how.due) {
        const current = await this.read.readRemote(key, full);
        if (current && current.fresh > Date.now() && !how.due?.(current)) {
          if (leaseKey) this.releaseLease(leaseKey);
          core.l1?.set(full, current, Date.now());
          return;
        }
      }
      try {
        const background = { ...options, waitUntil: undefined };
        await this.load(key, full, loader, background, leaseKey, how.replaces, undefined, how.span);
      } catch (error) {
        if (leaseKey) this.releaseLease(leaseKey);
        throw error;
      }
    };
    void this.core.runInBackground(() => refresh().finally(() => this.refreshed(full)), options.waitUntil);
  }

  /**
   * Polls Redis for the value another instance's lease holder is loading, until the lease ends or is
   * released without a value (the holder's loader failed): then this instance loads for itself.
   */
  private async awaitLeaseHolder(
    key: string,
    full: string,
    schema: Schema<unknown> | undefined,
    leaseMs: number,
    budget: Budget | undefined,
  ): Promise<Found | undefined> {
    const { core } = this;
    const l2 = core.l2;
    if (!l2) return undefined;
    const lease = core.keys.lease(full);
    const until = Date.now() + leaseMs;
    let pause = 10;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(pause, Math.max(1, until - Date.now()))));
      pause = Math.min(pause * 2, 100);
      // Both reads join one MGET.
      const [entry, held] = await Promise.all([
        this.read.readRemote(key, full, budget),
        core.tolerate(() => l2.get(lease, budget)),
      ]);
      if (entry && entry.fresh > Date.now()) {
        const checked = schema ? await this.read.conforming(full, entry, schema) : { value: entry.value };
        if (checked) {
          if (core.coherence.admits(full, entry)) core.l1?.set(full, entry, Date.now());
          return { entry, tier: "l2", value: checked.value };
        }
      }
      if (held === null) return undefined;
    }
    return undefined;
  }

  /** Lets the instances waiting on this lease load for themselves at once. */
  private releaseLease(lease: string): void {
    this.core.l2?.send(["DEL", lease]).catch(() => {});
  }

  /**
   * Runs the loader, checks its value, puts it in L1 at once and in Redis in the background — or,
   * for a lease holder, awaited and with the lease released, since other instances are polling for it.
   * An invalidation of the key made while the loader ran wins: the caller gets the value, neither
   * tier keeps it (see Coherence.endLoad here, and the conditional write-back in Redis).
   * `replaces`: when the entry the load refreshes was written, which its write-back may overwrite.
   */
  private async load<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    leaseKey?: string,
    replaces?: number,
    budget?: Budget,
    span?: OperationSpan,
  ): Promise<{ value: T }> {
    const { core } = this;
    let ttl: Duration | undefined = options.ttl;
    let skip = !core.config.enabled;
    const context: LoaderContext = {
      key,
      setTtl: (value) => {
        ttl = toMs(value, "ttl");
      },
      skipCache: () => {
        skip = true;
      },
    };
    // An invalidation of its tags made while the loader runs must still hit this value: it is
    // dated from before the load, not from the write.
    const ticket = core.coherence.beginLoad(full);
    const createdAt = ticket.startedAt;
    const started = performance.now();
    let loaded: T;
    try {
      loaded = span ? await span.child("load", async () => loader(context)) : await loader(context);
    } catch (error) {
      core.coherence.endLoad(ticket);
      core.telemetry?.load(performance.now() - started, true);
      throw error;
    }
    const durationMs = performance.now() - started;
    core.telemetry?.load(durationMs, false);
    core.counts.loads++;
    core.emit({ type: "load", key, durationMs });
    let value = loaded;
    let write: PreparedWrite | undefined;
    try {
      if (options.schema) {
        const checked = await validate(options.schema, loaded);
        if (!checked.ok)
          throw new CacheError("SCHEMA", `loader value for "${key}" fails the schema: ${checked.message}`);
        value = checked.value;
      }
      if (skip) {
        if (leaseKey) this.releaseLease(leaseKey);
        return { value };
      }
      try {
        // The loader's own value is cached (a schema's transform is applied on every read).
        const windows = options.staleWindows?.(loaded);
        const staleWhileRevalidate = windows?.staleWhileRevalidate ?? options.staleWhileRevalidate;
        const staleIfError = windows?.staleIfError ?? options.staleIfError;
        write = await this.write.prepare(
          key,
          full,
          loaded,
          { ...options, ttl, staleWhileRevalidate, staleIfError },
          createdAt,
        );
      } catch (error) {
        if (!core.config.failSilently) throw error;
        core.config.logger.warn(`not cached: ${asError(error).message}`);
        return { value };
      }
    } finally {
      if (!write) core.coherence.endLoad(ticket);
    }
    // Redis keeps its own tombstones for TOMBSTONE_MS only: a load older than that is not written back.
    const l2 = Date.now() - createdAt < TOMBSTONE_MS - CLOCK_SKEW_MS ? core.l2 : null;
    if (!core.coherence.endLoad(ticket, write.entry)) {
      core.debug(`Cache load of ${key} superseded by an invalidation: not cached`);
      if (leaseKey) this.releaseLease(leaseKey);
      return { value };
    }
    const entry = write.entry;
    core.l1?.set(full, entry, Date.now());
    const command = write.command && writeBackCommand(write.command, createdAt, replaces);
    // Redis refused it: the key was deleted or set since the load began, maybe on another instance,
    // where a set is no invalidation this instance would ever hear of. Our copy goes too.
    const settle = (reply: unknown) => {
      const l1 = core.l1;
      const outcome = parseWriteBack(reply);
      if (l1 && outcome && outcome !== "written" && l1.get(full, Date.now())?.created === entry.created)
        l1.delete(full);
    };
    if (leaseKey && core.l2) {
      const lease = core.l2;
      const commands = command && l2 ? [command, ["DEL", leaseKey]] : [["DEL", leaseKey]];
      const replies = await core.tolerate(() => lease.pipeline(commands, "SET", budget));
      if (command && l2) settle(replies?.[0]);
    } else if (command && l2) {
      // Only a write this call awaits draws on its budget; one handed to waitUntil has its own deadline.
      const own = core.scheduler(options.waitUntil) ? undefined : budget;
      await core.runInBackground(
        () => core.tolerate(() => l2.send(command, "SET", own)).then(settle),
        options.waitUntil,
      );
    }
    return { value };
  }
}

function leaseMsOf(lease: true | Duration): number {
  return Math.ceil(lease === true ? 2000 : toMs(lease, "lease"));
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
    this.policy.landed(this.slot);
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
          this.policy.landed(this.slot);
          this.resolve(value);
        },
        (error: unknown) => {
          this.policy.landed(this.slot);
          this.reject(error);
        },
      );
  }
}
