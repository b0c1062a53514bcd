import type { CacheCore, Tier } from "./core.js";
import { isSealed, UnreadableEntry } from "./encryption.js";
import { type Entry, parseEntry } from "./entry.js";
import { asError } from "./errors.js";
import { validate } from "./schema.js";
import type { Budget } from "./tiers/budget.js";
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

/**
 * The read path: L1 → Redis → coherence (epoch, tag marks) → schema. It finds what can be served,
 * fresh or stale; what to do with a stale entry or a miss is the load policy's business.
 */
export class ReadPath {
  constructor(private readonly core: CacheCore) {}

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
    coherence.syncInBackground(now, () => this.core.scheduler(options.waitUntil));
    this.core.analytics?.tick(now, options.waitUntil);
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
    const [remote, older] = previous
      ? await this.readRemoteOrPrevious(key, full, previous, budget)
      : [await this.readRemote(key, full, budget), undefined];
    if (older && schema) {
      const checked = await validate(schema, older.value);
      // A shape that changed between the versions is a plain miss; the entry stays for its own version.
      return checked.ok ? { entry: older, tier: "l2", value: checked.value, warm: true } : undefined;
    }
    if (remote && (!local || remote.fresh > local.entry.fresh)) {
      const checked = schema ? await this.conforming(full, remote, schema) : remote;
      if (checked) {
        if (this.core.coherence.admits(full, remote)) l1?.set(full, remote, Date.now());
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
    return this.servable(key, full, await this.core.coherence.read(full, budget), true, budget);
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
    const current = await this.servable(key, full, stored, true, budget);
    if (current || typeof olderStored !== "string") return [current, undefined];
    // Never deleted from here, even if corrupt: it belongs to the other version.
    const older = await this.servable(key, previous, olderStored, false, budget).catch(() => undefined);
    return [undefined, older];
  }

  private async servable(
    key: string,
    full: string,
    stored: string | null | undefined,
    own: boolean,
    budget: Budget | undefined,
  ): Promise<Entry | undefined> {
    const { coherence, config } = this.core;
    if (typeof stored !== "string") return undefined;
    let entry: Entry;
    try {
      // With encryption on, only sealed entries are served: a plain one could have been planted.
      const parsed = config.keyring
        ? isSealed(stored)
          ? config.keyring.open(full, stored)
          : Promise.reject(new UnreadableEntry("not encrypted, while encryption is on"))
        : parseEntry(stored);
      entry = parsed instanceof Promise ? await parsed : parsed;
    } catch (error) {
      // The other version's entry is never deleted or reported from here: it is that version's.
      if (!own) return undefined;
      // Not deleted: another instance may hold the key this one lacks; the next write replaces it.
      if (error instanceof UnreadableEntry) return this.core.unreadable(key, error.message);
      if (isSealed(stored)) return this.core.unreadable(key, "encryption is not configured here");
      config.logger.warn(`corrupt entry at ${key} deleted: ${asError(error).message}`);
      this.core.unlinkQuietly(full);
      return undefined;
    }
    if (entry.stale <= Date.now()) return undefined;
    if (entry.tags.length > 0 && !(await coherence.passesTags(entry, budget))) return undefined;
    return entry;
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
