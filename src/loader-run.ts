import type { CacheCore } from "./core.js";
import { toMs } from "./duration.js";
import { asError, CacheError } from "./errors.js";
import type { Found, ReadPath } from "./read-path.js";
import { validate } from "./schema.js";
import type { OperationSpan } from "./telemetry.js";
import type { Budget } from "./tiers/budget.js";
import { CLOCK_SKEW_MS, parseWriteBack, TOMBSTONE_MS, writeBackCommand } from "./tombstone.js";
import type { Duration, GetOrSetOptions, LoaderContext, Schema } from "./types.js";
import type { PreparedWrite, WritePath } from "./write-path.js";

export type Loader<T> = (context: LoaderContext) => T | Promise<T>;

/** A `lease` option in whole milliseconds (`true`: 2 s). */
export function leaseMsOf(lease: true | Duration): number {
  return Math.ceil(lease === true ? 2000 : toMs(lease, "lease"));
}

/**
 * One run of a loader, and the lease around it: the value checked, put in L1 and written back to
 * Redis unless an invalidation overtook it; and the wait for another instance's lease holder. When
 * to load (single flight, staleness, refreshes) is the load policy's business (load-policy.ts).
 */
export class LoaderRun {
  constructor(
    private readonly core: CacheCore,
    private readonly read: ReadPath,
    private readonly write: WritePath,
  ) {}

  /**
   * Polls Redis for the value another instance's lease holder is loading, until the lease ends or is
   * released without a value (the holder's loader failed): then this instance loads for itself.
   */
  async awaitLeaseHolder(
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
  releaseLease(lease: string): void {
    this.core.l2?.send(["DEL", lease]).catch(() => {});
  }

  /**
   * Runs the loader, checks its value, puts it in L1 at once and in Redis in the background — or,
   * for a lease holder, awaited and with the lease released, since other instances are polling for it.
   * An invalidation of the key made while the loader ran wins: the caller gets the value, neither
   * tier keeps it (see Coherence.endLoad here, and the conditional write-back in Redis).
   * `replaces`: when the entry the load refreshes was written, which its write-back may overwrite.
   */
  async load<T>(
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
