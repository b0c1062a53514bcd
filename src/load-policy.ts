import type { CacheCore } from "./core.js";
import { toMs } from "./duration.js";
import { asError, CacheError } from "./errors.js";
import type { Found, ReadPath } from "./read-path.js";
import { validate } from "./schema.js";
import type { OperationSpan } from "./telemetry.js";
import type { Budget } from "./tiers/budget.js";
import { CLOCK_SKEW_MS, parseWriteBack, TOMBSTONE_MS, writeBackCommand } from "./tombstone.js";
import type { Duration, GetOrSetOptions, LoaderContext, Schema } from "./types.js";
import { checkWriteOptions } from "./write-options.js";
import type { PreparedWrite, WritePath } from "./write-path.js";

type Loader<T> = (context: LoaderContext) => T | Promise<T>;

/**
 * The load policy of `getOrSet`: what happens when the read path has no fresh entry. One loader
 * run per key per instance at a time (single-flight); a stale entry served while one background
 * refresh runs (`staleWhileRevalidate`) or when the loader fails (`staleIfError`); an optional
 * Redis lease so cold instances do not all load the same key.
 */
export class LoadPolicy {
  /** Flights by key, with the count of invalidations (coherence.ts) they began at. */
  private readonly inflight = new Map<string, { promise: Promise<unknown>; invalidations: number }>();
  private readonly schemaIds = new WeakMap<Schema<unknown>, number>();
  private lastSchemaId = 0;
  private readonly refreshing = new Set<string>();

  constructor(
    private readonly core: CacheCore,
    private readonly read: ReadPath,
    private readonly write: WritePath,
  ) {}

  async getOrLoad<T>(
    key: string,
    fullKey: string | Promise<string>,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    span?: OperationSpan,
  ): Promise<T> {
    checkWriteOptions(options);
    const full = typeof fullKey === "string" ? fullKey : await fullKey;
    if (!this.core.config.enabled) {
      span?.hit("miss");
      return (await this.load(key, full, loader, options, undefined, undefined, undefined, span)).value;
    }
    // Callers share a flight only when they would get the same value: same key, same schema.
    const flightKey = options.schema ? `${full}\u0000${this.schemaId(options.schema)}` : full;
    const { coherence } = this.core;
    const running = this.inflight.get(flightKey);
    // A flight begun before an invalidation may bring back what it invalidated: a caller arriving
    // after it starts a flight of its own (the earlier one still answers its own callers).
    if (running && running.invalidations === coherence.invalidations) {
      span?.set("tiercache.coalesced", true);
      return running.promise as Promise<T>;
    }
    const flight: Promise<T> = this.resolve(key, full, loader, options, span).finally(() => {
      if (this.inflight.get(flightKey)?.promise === flight) this.inflight.delete(flightKey);
    });
    this.inflight.set(flightKey, { promise: flight, invalidations: coherence.invalidations });
    return flight;
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
    // One timeoutMs for all the Redis work this call awaits: read, lease, write-back.
    const budget = core.l2?.budget();
    const found = await this.read.lookup(key, full, options.schema, options.waitUntil, budget);
    const now = Date.now();
    if (found && found.entry.fresh > now) {
      span?.hit(found.tier);
      return core.hit(key, found.value, found.tier) as T;
    }
    const stale = found?.entry;
    const staleValue = found?.value as T;
    const windows = stale ? options.staleWindows?.(staleValue) : undefined;
    const swrMs =
      windows?.staleWhileRevalidate ??
      toMs(options.staleWhileRevalidate ?? core.config.staleWhileRevalidateMs, "staleWhileRevalidate");
    if (stale && now < stale.fresh + swrMs) {
      span?.hit("stale");
      core.counts.stale++;
      core.emit({ type: "stale", key, tier: found.tier });
      core.debug(`Cache STALE (${found.tier}) ${key}`);
      this.refreshInBackground(key, full, loader, options, stale.created, span);
      return staleValue;
    }
    core.miss(key);
    span?.hit("miss");
    let leaseKey: string | undefined;
    const l2 = core.l2;
    if (options.lease && l2 && !stale) {
      const leaseMs = Math.ceil(options.lease === true ? 2000 : toMs(options.lease, "lease"));
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

  private refreshInBackground<T>(
    key: string,
    full: string,
    loader: Loader<T>,
    options: GetOrSetOptions<T>,
    replaces: number,
    span: OperationSpan | undefined,
  ): void {
    if (this.refreshing.has(full)) return;
    this.refreshing.add(full);
    void this.core.runInBackground(
      () =>
        this.load(
          key,
          full,
          loader,
          { ...options, waitUntil: undefined },
          undefined,
          replaces,
          undefined,
          span,
        ).finally(() => this.refreshing.delete(full)),
      options.waitUntil,
    );
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
