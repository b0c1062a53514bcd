import type { CacheCore, Tier } from "./core.js";
import { isSealed, UnreadableEntry } from "./encryption.js";
import { type Entry, parseEntry } from "./entry.js";
import { asError } from "./errors.js";
import { validate } from "./schema.js";
import type { Budget } from "./tiers/budget.js";
import type { BatchRead, L2 } from "./tiers/l2.js";
import type { GetOptions, Schema, WaitUntil } from "./types.js";

/** A servable entry, where it was found, and what the caller gets from it. */
export interface Found {
  entry: Entry;
  tier: Tier;
  /** What the caller gets: the schema's output when one was given, else the entry's value. */
  value: unknown;
  /** The previous version's entry of the key (`warmStart`): the load policy decides what becomes of it. */
  warm?: boolean;
}

let capturedResolve: (value: never) => void = () => {};
let capturedReject: (error: unknown) => void = () => {};
/** A promise executor that keeps the settle functions: no closure per promise. */
function capture(resolve: (value: never) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/**
 * One caller's read of a key from Redis, done in the loop over its batch's MGET replies: a fresh
 * entry there is decoded, stored in L1, counted as a hit and handed to {@link hit} — no promise
 * per step, the caller's {@link promise} the only one. Anything else (a miss, a stale, corrupt or
 * tagged entry, a failure) takes the general path, whose answer (what {@link ReadPath.lookup}
 * would have found) goes to {@link settle}.
 */
export abstract class BatchedRead<T> implements BatchRead {
  readonly promise: Promise<T>;
  protected readonly resolve: (value: T | PromiseLike<T>) => void;
  protected readonly reject: (error: unknown) => void;
  /**
   * When the read's batch opened (set as it joins; one clock read per batch): what the call's budget
   * is charged by the time the reply came.
   */
  joinedAt = 0;
  private spent: Budget | undefined;

  constructor(
    protected readonly path: ReadPath,
    readonly key: string,
    readonly full: string,
  ) {
    this.promise = new Promise<T>(capture);
    this.resolve = capturedResolve as (value: T | PromiseLike<T>) => void;
    this.reject = capturedReject;
  }

  /**
   * The call's budget of one `timeoutMs` for its Redis work, already charged with the batch's read:
   * made only off the fast path (tag marks, a lease, a write-back draw on it).
   */
  budget(): Budget | undefined {
    if (this.spent) return this.spent;
    const budget = this.path.core.l2?.budget();
    budget?.spend(Date.now() - this.joinedAt);
    this.spent = budget;
    return budget;
  }

  /** The value of a fresh entry read from Redis (already counted as a hit), and the entry. Must not throw. */
  protected abstract hit(value: unknown, entry: Entry): void;
  /** What the lookup found, for every other outcome. Must not throw. */
  protected abstract settle(found: Promise<Found | undefined>): void;

  reply(text: string | null): void {
    const { path } = this;
    let found: Promise<Found | undefined>;
    try {
      const now = Date.now();
      const stored = path.core.coherence.screen(this.full, text);
      const remote = path.servable(this.key, this.full, stored, now, this);
      if (remote !== undefined && !(remote instanceof Promise) && remote.fresh > now) {
        this.hit(path.freshFromRemote(this.key, this.full, remote, now), remote);
        return;
      }
      found = path.preferred(this.full, path.localNow(this.full), remote, undefined);
    } catch (error) {
      found = Promise.reject(error);
    }
    this.settle(found);
  }

  fail(error: unknown): void {
    const { path } = this;
    // As a failed read in lookup: tolerated (failSilently, or a closed cache), what L1 holds, if anything.
    this.settle(
      path.core
        .tolerate(() => Promise.reject(error))
        .then(() => path.preferred(this.full, path.localNow(this.full), undefined, undefined)),
    );
  }
}

/** `get` through Redis: the fresh value, or undefined (a miss). */
class FreshRead<T> extends BatchedRead<T | undefined> {
  protected hit(value: unknown): void {
    this.resolve(value as T);
  }

  protected settle(found: Promise<Found | undefined>): void {
    const { core } = this.path;
    this.resolve(
      found.then((result) =>
        result && result.entry.fresh > Date.now()
          ? (core.hit(this.key, result.value, result.tier) as T)
          : core.miss(this.key),
      ),
    );
  }
}

/**
 * The read path: L1 → Redis → coherence (epoch, tag marks) → schema. It finds what can be served,
 * fresh or stale; what to do with a stale entry or a miss is the load policy's business.
 */
export class ReadPath {
  /** The last L2 batch this path read in: its epoch check has been considered. */
  private lastBatch = 0;
  /** When this path first joined that batch. */
  private lastBatchAt = 0;

  /** Who runs an L1 hit's epoch check when the call gave no `waitUntil`: made once, not per hit. */
  private readonly defaultScheduler: () => WaitUntil | undefined;

  constructor(readonly core: CacheCore) {
    this.defaultScheduler = () => core.scheduler(undefined);
  }

  /**
   * A fresh L1 entry found without a single await: the hot path of every warm invocation, so a
   * hit costs one resolved promise rather than a chain of them.
   */
  freshInL1(full: string | Promise<string>, options: GetOptions<unknown>): Entry | undefined {
    const { l1, config, coherence } = this.core;
    if (typeof full !== "string" || options.schema || !l1 || !config.enabled) return undefined;
    const now = Date.now();
    const entry = l1.get(full, now);
    if (!entry || entry.fresh <= now) return undefined;
    const { waitUntil } = options;
    coherence.syncInBackground(now, waitUntil ? () => waitUntil : this.defaultScheduler);
    this.core.analytics?.tick(now, waitUntil);
    return entry;
  }

  /**
   * Finds a servable entry (fresh or stale), preferring L1, asking Redis when L1 has no fresh one.
   * `warm`: when the current version has nothing at all, the previous version's servable entry
   * (fresh or stale) that passes `schema`, read in the same MGET (see {@link ReadPath.readRemoteOrPrevious}).
   */
  async lookup(
    key: string,
    full: string,
    schema: Schema<unknown> | undefined,
    waitUntil?: WaitUntil,
    budget?: Budget,
    warm = false,
  ): Promise<Found | undefined> {
    const { l1, l2 } = this.core;
    void this.core.ensureRegistered(true, waitUntil);
    const now = Date.now();
    this.core.analytics?.tick(now, waitUntil);
    const localEntry = l1?.get(full, now);
    const localChecked =
      localEntry && (schema ? await this.conforming(full, localEntry, schema) : localEntry);
    const local: Found | undefined =
      localEntry && localChecked ? { entry: localEntry, tier: "l1", value: localChecked.value } : undefined;
    if (local && local.entry.fresh > now)
      this.core.coherence.syncInBackground(now, () => this.core.scheduler(waitUntil));
    if ((local && local.entry.fresh > now) || !l2) return local;
    // A cold instance's first reads wait for its registry read (already sent): it names the version
    // to warm from, and a read that went without it would be a miss, a database load per key.
    if (warm && schema && !local) await this.core.registryKnown();
    const previous = warm && schema && !local ? this.core.warmSource(full) : undefined;
    if (previous) {
      const [remote, older] = await this.readRemoteOrPrevious(key, full, previous, budget);
      if (older && schema) {
        const checked = await validate(schema, older.value);
        // A shape that changed between the versions is a plain miss; the entry stays for its own version.
        return checked.ok ? { entry: older, tier: "l2", value: checked.value, warm: true } : undefined;
      }
      return this.preferred(full, local, remote, schema);
    }
    return this.preferred(full, local, this.readRemote(key, full, budget), schema);
  }

  /**
   * Whether a read can take the batched path: a plain key, no schema, Redis configured, cache on,
   * and none of what needs the general path's steps — encryption, per-slot cluster reads, deferred
   * invalidations to screen against (telemetry is the callers' test: a span wraps the general path).
   */
  batchable(full: string | Promise<string>, options: GetOptions<unknown>): full is string {
    const { core } = this;
    const { l2, config } = core;
    return (
      typeof full === "string" &&
      !options.schema &&
      l2 !== null &&
      config.enabled &&
      !config.keyring &&
      !l2.perSlot &&
      !core.coherence.deferring
    );
  }

  /** `get` of a key L1 has no fresh entry for, through this tick's MGET (see {@link batchable}). */
  fresh<T>(key: string, full: string, waitUntil: WaitUntil | undefined): Promise<T | undefined> {
    const read = new FreshRead<T>(this, key, full);
    this.readBatched(read, waitUntil);
    return read.promise;
  }

  /**
   * Reads `read.full` in this tick's MGET (with the epoch when a check is due), for a caller without
   * a schema whose key is not fresh in L1; see {@link BatchedRead}. Only with Redis configured.
   */
  readBatched<T>(read: BatchedRead<T>, waitUntil: WaitUntil | undefined): void {
    const { core } = this;
    const l2 = core.l2 as L2;
    void core.ensureRegistered(true, waitUntil);
    // Once per batch, before its first value: the epoch, when a check is due.
    if (l2.openBatch === 0 || l2.openBatch !== this.lastBatch) {
      const now = Date.now();
      core.coherence.joinEpochCheck(now);
      core.analytics?.tick(now, waitUntil);
      read.joinedAt = now;
      l2.enqueue(read.full, read);
      this.lastBatch = l2.openBatch;
      this.lastBatchAt = now;
      return;
    }
    read.joinedAt = this.lastBatchAt;
    l2.enqueue(read.full, read);
  }

  /** The L1 entry at `full` as lookup finds it without a schema (fresh or stale). */
  localNow(full: string): Found | undefined {
    const entry = this.core.l1?.get(full, Date.now());
    return entry && { entry, tier: "l1", value: entry.value };
  }

  /** A fresh entry just read from Redis: kept in L1 (unless invalidated here since), counted as a hit; its value. */
  freshFromRemote(key: string, full: string, entry: Entry, now: number): unknown {
    if (this.core.coherence.admits(full, entry)) this.core.l1?.set(full, entry, now);
    return this.core.hit(key, entry.value, "l2");
  }

  /** The fresher of L1's entry and Redis's (which must pass the schema, if any); L1's when Redis has none. */
  async preferred(
    full: string,
    local: Found | undefined,
    fromRemote: Entry | undefined | Promise<Entry | undefined>,
    schema: Schema<unknown> | undefined,
  ): Promise<Found | undefined> {
    const remote = await fromRemote;
    if (remote && (!local || remote.fresh > local.entry.fresh)) {
      const checked = schema ? await this.conforming(full, remote, schema) : remote;
      if (checked) {
        if (this.core.coherence.admits(full, remote)) this.core.l1?.set(full, remote, Date.now());
        return { entry: remote, tier: "l2", value: checked.value };
      }
    }
    return local;
  }

  /**
   * The servable entry stored in Redis at `full`: corrupt ones are deleted, invalidated ones
   * skipped. Its reads draw on the call's `budget` when one is given.
   */
  async readRemote(key: string, full: string, budget?: Budget): Promise<Entry | undefined> {
    const stored = await this.core.coherence.read(full, budget);
    return this.servable(key, full, stored, Date.now(), budget && { budget: () => budget });
  }

  /**
   * The current version's entry and, in the same MGET, the previous version's at `previous` — that
   * one only when the current key holds nothing at all (a tombstone means it was invalidated) and
   * it is still servable (fresh or stale) after its tags' invalidations.
   */
  async readRemoteOrPrevious(
    key: string,
    full: string,
    previous: string,
    budget?: Budget,
  ): Promise<[Entry | undefined, Entry | undefined]> {
    const [stored, olderStored] = await this.core.coherence.readWithPrevious(full, previous, budget);
    const call = budget && { budget: () => budget };
    const current = await this.servable(key, full, stored, Date.now(), call);
    if (current || typeof olderStored !== "string") return [current, undefined];
    // Never deleted from here, even if corrupt: it belongs to the other version.
    const older = await Promise.resolve(
      this.servable(key, previous, olderStored, Date.now(), call, false),
    ).catch(() => undefined);
    return [undefined, older];
  }

  /**
   * The servable entry in the text Redis holds at `full` (null or undefined: none), already screened
   * by coherence. Synchronous unless the text is compressed or encrypted or the entry's tags need
   * their marks fetched (within the budget `call` gives, when it gives one). `own: false` (another
   * version's copy, for a warm start): an unreadable one is neither deleted nor reported.
   */
  servable(
    key: string,
    full: string,
    stored: string | null | undefined,
    now: number,
    call?: { budget(): Budget | undefined },
    own = true,
  ): Entry | undefined | Promise<Entry | undefined> {
    if (typeof stored !== "string") return undefined;
    const { keyring } = this.core.config;
    let parsed: Entry | Promise<Entry>;
    try {
      // With encryption on, only sealed entries are served: a plain one could have been planted.
      parsed = keyring
        ? isSealed(stored)
          ? keyring.open(full, stored)
          : Promise.reject(new UnreadableEntry("not encrypted, while encryption is on"))
        : parseEntry(stored);
    } catch (error) {
      return this.unservable(key, full, stored, error, own);
    }
    if (parsed instanceof Promise) {
      return parsed.then(
        (entry) => this.unexpired(entry, Date.now(), call),
        (error: unknown) => this.unservable(key, full, stored, error, own),
      );
    }
    return this.unexpired(parsed, now, call);
  }

  private unexpired(
    entry: Entry,
    now: number,
    call: { budget(): Budget | undefined } | undefined,
  ): Entry | undefined | Promise<Entry | undefined> {
    if (entry.stale <= now) return undefined;
    if (entry.tags.length === 0) return entry;
    return this.core.coherence
      .passesTags(entry, call?.budget())
      .then((passes) => (passes ? entry : undefined));
  }

  private unservable(key: string, full: string, stored: string, error: unknown, own: boolean): undefined {
    // The other version's entry is never deleted or reported from here: it is that version's.
    if (!own) return undefined;
    // Not deleted: another instance may hold the key this one lacks; the next write replaces it.
    if (error instanceof UnreadableEntry) return this.core.unreadable(key, error.message);
    if (isSealed(stored)) return this.core.unreadable(key, "encryption is not configured here");
    this.core.config.logger.warn(`corrupt entry at ${key} deleted: ${asError(error).message}`);
    this.core.unlinkQuietly(full);
    return undefined;
  }

  /**
   * How many of the keys (each given in both key spaces) exist in Redis, or in L1 when there is none.
   * The head of each value tells an entry from a delete's tombstone.
   */
  async countExisting(pairs: readonly string[][]): Promise<number> {
    const { l1, l2, coherence } = this.core;
    const now = Date.now();
    const inL1 = pairs.filter((pair) => pair.some((full) => l1?.get(full, now))).length;
    if (!l2 || pairs.length === 0) return inL1;
    const fulls = pairs.flat();
    const replies = await this.core.tolerate(() =>
      l2.pipeline(
        fulls.map((full) => ["GETRANGE", full, 0, 63]),
        "EXISTS",
      ),
    );
    if (!replies) return inL1;
    const live = new Set(
      fulls.filter((full, i) => {
        const head = replies[i];
        return typeof head === "string" && coherence.live(full, head);
      }),
    );
    return pairs.filter((pair) => pair.some((full) => live.has(full))).length;
  }

  /**
   * Schema check on read: the schema's output, or undefined for a mismatch — a miss, and the entry
   * is deleted so it is reloaded. The entry itself is left as stored (a transform runs on every read).
   */
  async conforming(
    full: string,
    entry: Entry,
    schema: Schema<unknown>,
  ): Promise<{ value: unknown } | undefined> {
    const checked = await validate(schema, entry.value);
    if (checked.ok) return { value: checked.value };
    this.core.debug(`Cache entry fails schema, deleting ${full}`);
    this.core.l1?.delete(full);
    this.core.unlinkQuietly(full);
    return undefined;
  }
}
