import { carriesTag, type Entry } from "./entry.js";
import { scanAndUnlink } from "./flush.js";
import { formatMark, Invalidations, parseMark, type TagMark } from "./invalidation.js";
import { globToRegExp, type KeySpace } from "./keys.js";
import { PendingInvalidations } from "./pending.js";
import { allAnswered, writeReplay } from "./replay-writes.js";
import { type LoadTicket, Supersession } from "./supersession.js";
import type { Budget } from "./tiers/budget.js";
import type { L1 } from "./tiers/l1.js";
import type { L2 } from "./tiers/l2.js";
import { createdOf, isTombstone, randomToken, tombstoneCommand } from "./tombstone.js";
import type { RedisArg, RedisReply } from "./transports/types.js";
import type { CacheEvent, DeferredOperation, InvalidationResult, WaitUntil } from "./types.js";

/** Runs an L2 operation under the cache's `failSilently` policy: undefined instead of a swallowed error. */
export type Tolerate = <T>(work: () => Promise<T>) => Promise<T | undefined>;

/** How long after a failed replay the next contact may try again. */
const REPLAY_RETRY_MS = 250;

/** What coherence needs from the cache around it. */
export interface CoherenceHost {
  readonly l1: L1 | null;
  readonly l2: L2 | null;
  readonly keys: KeySpace;
  readonly syncMs: number;
  tolerate: Tolerate;
  emit(event: CacheEvent): void;
  debug(message: string): void;
  /** Hands off work no request waits for (a replay): to `waitUntil` when there is one. */
  detach(work: Promise<unknown>): void;
}

/**
 * Invalidation that reaches every instance without pub/sub. Invalidations write a new random epoch
 * token to Redis (`SET … GET`, so a token can never come back after Redis loses its data); reads
 * learn it for free (it rides in the MGET of the value) or, on L1 hits, in the background — at most
 * once per `l1.syncMs`. When it changed, L1 and the known tag marks are dropped. Tags are judged by
 * time: an entry written before its tag's last invalidation is gone (or stale). Deletes leave
 * tombstones so that a loader that started before them cannot write its value back (tombstone.ts);
 * invalidations Redis could not take are kept and replayed (pending.ts, replay-writes.ts). What
 * this instance's own invalidations overtake (loads, reads on their way) is supersession.ts's.
 */
export class Coherence {
  private readonly state: Invalidations;
  private readonly pending = new PendingInvalidations();
  private readonly local = new Supersession();
  private replaying = false;
  private replayAfter = 0;

  constructor(private readonly host: CoherenceHost) {
    this.state = new Invalidations(host.syncMs);
  }

  /** One MSET of the tag marks and one epoch bump, whatever the number of entries. */
  async invalidateTags(tags: readonly string[], soft: boolean): Promise<InvalidationResult> {
    const { l1, l2, keys } = this.host;
    const mark: TagMark = { at: Date.now(), soft };
    const wanted = new Set(tags);
    this.local.counted();
    for (const tag of tags) this.state.rememberOwn(tag, mark);
    l1?.deleteWhere((_key, entry) => {
      if (!carriesTag(entry, wanted)) return false;
      if (!soft) return true;
      entry.fresh = Math.min(entry.fresh, mark.at);
      return false;
    });
    if (!l2) return { deferred: false };
    const stored = formatMark(mark);
    const token = randomToken();
    const replies = await this.attempt(
      () =>
        l2
          .pipeline(
            [["MSET", ...tags.flatMap((tag) => [keys.tag(tag), stored])], this.bump(token)],
            "invalidateTags",
          )
          .then(allAnswered),
      () => this.pending.addTags(tags, mark),
      "invalidateTags",
    );
    if (!replies) return { deferred: true };
    this.ownBump(replies[1], token);
    return { deferred: false };
  }

  /**
   * Removes full keys from both tiers, leaving tombstones in Redis, and bumps the epoch. Returns how
   * many entries Redis held (tombstones not counted), or L1's count without Redis or while deferred.
   */
  async deleteKeys(fulls: readonly string[]): Promise<number> {
    const { l1, l2 } = this.host;
    const at = Date.now();
    let local = 0;
    for (const full of fulls) if (l1?.delete(full)) local++;
    this.local.supersede((full) => fulls.includes(full), fulls);
    if (!l2 || fulls.length === 0) return local;
    const token = randomToken();
    const replies = await this.attempt(
      () =>
        l2
          .pipeline([...fulls.map((full) => tombstoneCommand(full, at)), this.bump(token)], "delete")
          .then(allAnswered),
      () => this.pending.addKeys(fulls, at),
      "delete",
    );
    if (!replies) return local;
    this.pending.forgetKeys(fulls);
    this.ownBump(replies[fulls.length], token);
    return replies.slice(0, fulls.length).filter((reply) => typeof reply === "string" && !isTombstone(reply))
      .length;
  }

  /** Deletes the keys matching a pattern of this key space from both tiers, then bumps the epoch. */
  async deletePattern(pattern: string): Promise<number> {
    const { l1, l2 } = this.host;
    const at = Date.now();
    const matcher = globToRegExp(pattern);
    const local = l1?.deleteWhere((key) => matcher.test(key)) ?? 0;
    this.local.supersede((full) => matcher.test(full));
    if (!l2) return local;
    const removed = await this.attempt(
      async () => {
        const count = await scanAndUnlink(
          l2,
          { pattern, matches: (key) => matcher.test(key) },
          false,
          undefined,
        );
        const token = randomToken();
        this.ownBump(await l2.send(this.bump(token)), token);
        return count;
      },
      () => this.pending.addPattern(pattern, at),
      "deletePattern",
    );
    return removed ?? local;
  }

  /**
   * Sends a SET's Redis write. When it fails, other instances would keep reading the old value:
   * the key's delete is kept pending and replayed instead.
   */
  async store(
    commands: readonly (readonly RedisArg[])[],
    fulls: readonly string[],
    budget?: Budget,
    writtenAt = Date.now(),
  ): Promise<void> {
    const l2 = this.host.l2;
    // Noted at the new entries' own time: reading them back from Redis must still fill L1.
    this.local.supersede((full) => fulls.includes(full), fulls, writtenAt);
    if (!l2 || commands.length === 0) return;
    const at = Date.now();
    const replies = await this.attempt(
      async () => {
        if (commands.length === 1) return [await l2.send(commands[0] as RedisArg[], "SET", budget)];
        return allAnswered(await l2.pipeline(commands, "SET", budget));
      },
      () => this.pending.addKeys(fulls, at),
      "set",
    );
    if (replies) this.pending.forgetKeys(fulls);
  }

  /** The stored text at `full`, with the epoch riding in the same MGET when a check is due. */
  read(
    full: string,
    budget?: Budget,
    raw?: Promise<string | null | undefined>,
  ): Promise<string | null | undefined> {
    const { l2, keys, tolerate } = this.host;
    if (!l2) return Promise.resolve(undefined);
    const pendingValue = (raw ?? tolerate(() => l2.get(full, budget))).then((value) =>
      this.screen(full, value),
    );
    if (!this.state.claimEpochCheck(Date.now())) return pendingValue;
    const pendingEpoch = tolerate(() => l2.get(keys.epoch));
    return Promise.all([pendingValue, pendingEpoch]).then(([value, epoch]) => {
      if (epoch !== undefined) this.applyEpoch(epoch);
      return value;
    });
  }

  /**
   * Like {@link Coherence.read}, with the text at `previous` (the previous version's copy of the
   * key, for a warm start) in the same MGET. That one comes back only when `full` holds nothing —
   * a tombstone there is an invalidation of the key — and no invalidation waiting for Redis hides it.
   */
  readWithPrevious(
    full: string,
    previous: string,
    budget?: Budget,
  ): Promise<[string | null | undefined, string | null]> {
    const { l2, tolerate } = this.host;
    if (!l2) return Promise.resolve([undefined, null]);
    const raw = tolerate(() => l2.get(full, budget));
    const older = tolerate(() => l2.get(previous, budget));
    const value = this.read(full, budget, raw);
    return Promise.all([raw, older, value]).then(([stored, old, screened]) => [
      screened,
      stored === null && typeof old === "string" && this.live(full, old) ? old : null,
    ]);
  }

  /**
   * For a batch of reads (read-path.ts): when a check is due, the epoch joins this tick's MGET ahead
   * of the values that follow, so a move drops L1 and the tag marks before those values are checked.
   * A failed epoch read is tolerated as in {@link read}: the values' readers see the batch's failure.
   */
  joinEpochCheck(now: number): void {
    const { l2, keys } = this.host;
    if (!l2 || !this.state.claimEpochCheck(now)) return;
    l2.enqueue(keys.epoch, { reply: (epoch) => this.applyEpoch(epoch), fail: () => {} });
  }

  /** Whether an invalidation waiting for Redis may hide entries: reads then take the general path. */
  get deferring(): boolean {
    return this.pending.size > 0;
  }

  /**
   * Whether what Redis holds at `full` (the head of it is enough) is an entry this instance may
   * serve: not a tombstone, not hidden by an invalidation still waiting for Redis.
   */
  live(full: string, stored: string): boolean {
    if (stored === "" || isTombstone(stored)) return false;
    return this.pending.size === 0 || !this.pending.hides(full, createdOf(stored));
  }

  /**
   * Whether an entry read from Redis survives its tags' invalidations (a soft one shortens its
   * freshness instead). Unknown marks are fetched in one batch and kept until the epoch moves.
   */
  async passesTags(entry: Entry, budget?: Budget): Promise<boolean> {
    const { l2, keys, tolerate } = this.host;
    const unknown = entry.tags.filter((tag) => this.state.mark(tag) === undefined);
    if (unknown.length > 0 && l2) {
      const stored = await Promise.all(unknown.map((tag) => tolerate(() => l2.get(keys.tag(tag), budget))));
      stored.forEach((value, i) => {
        if (value !== undefined) this.state.remember(unknown[i] as string, parseMark(value));
      });
      // A mark that could not be read (Redis failing, or the call's budget spent on the value) may
      // be an invalidation: the entry is not served — the loader's value is always right.
      if (stored.includes(undefined)) return false;
    }
    const { gone, staleFrom } = this.state.verdict(entry, (tag) => this.pending.mark(tag));
    if (staleFrom !== undefined) entry.fresh = Math.min(entry.fresh, staleFrom);
    return !gone;
  }

  /**
   * On an L1 hit, learns of invalidations elsewhere without delaying the hit. The check goes to
   * `waitUntil` when there is one: workerd cancels a request's loose I/O when it answers.
   */
  syncInBackground(now: number, scheduler: () => WaitUntil | undefined): void {
    const { l2, keys, tolerate } = this.host;
    if (!l2 || !this.state.claimEpochCheck(now)) return;
    const check = tolerate(() => l2.get(keys.epoch)).then(
      (epoch) => {
        if (epoch !== undefined) {
          this.applyEpoch(epoch);
          this.contacted();
        }
      },
      () => {},
    );
    // Looked up only when a check is due: an L1 hit in between pays for nothing but the clock test.
    scheduler()?.(check);
  }

  /**
   * Moves with every invalidation this instance makes or learns of (keys, tags, patterns, flushes, an
   * L1 drop). A single flight begun before it moved may carry what was invalidated: later callers
   * must not join it.
   */
  get invalidations(): number {
    return this.local.invalidations;
  }

  /** Registers a getOrSet load, so invalidations of its key made while it runs can supersede it. */
  beginLoad(full: string): LoadTicket {
    return this.local.begin(full);
  }

  /**
   * Ends a load: whether its value may still go to L1 and Redis. Not when its key was deleted or set
   * here, or one of its tags invalidated (here, or elsewhere as far as this instance knows), or L1
   * was dropped for an invalidation elsewhere, since the load began. A soft invalidation leaves it
   * servable as stale only.
   */
  endLoad(ticket: LoadTicket, entry?: Entry): boolean {
    if (!this.local.end(ticket) || !entry) return false;
    const { gone, staleFrom } = this.state.verdict({ created: ticket.startedAt, tags: entry.tags }, (tag) =>
      this.pending.mark(tag),
    );
    if (staleFrom !== undefined) entry.fresh = Math.min(entry.fresh, staleFrom);
    return !gone;
  }

  /** A flush (or anything else dropping entries wholesale) supersedes every load in flight. */
  supersedeAll(): void {
    this.local.supersede(() => true);
  }

  /** Records this instance's own epoch bump: `previous` is `SET … GET`'s reply, `token` what it wrote. */
  ownBump(previous: RedisReply | Error | undefined, token: string): void {
    if (previous instanceof Error || (previous !== null && typeof previous !== "string")) return;
    if (this.state.observeOwnBump(previous, token)) this.dropL1();
    this.contacted();
  }

  /** Called when Redis answers again (breaker closed, a read succeeded): replays what was deferred. */
  contacted(): void {
    if (this.pending.size === 0 || this.replaying || Date.now() < this.replayAfter) return;
    this.replaying = true;
    this.host.detach(
      this.replay().then((done) => {
        this.replaying = false;
        // A Redis that answers a read but fails the replay is not retried on every request.
        if (!done) this.replayAfter = Date.now() + REPLAY_RETRY_MS;
      }),
    );
  }

  /**
   * Writes every deferred invalidation (replay-writes.ts), ending with one epoch bump so every
   * instance drops its L1; this instance then knows its tag marks as written. Kept for the next
   * contact if it fails.
   */
  private async replay(): Promise<boolean> {
    const { l2, keys } = this.host;
    if (!l2) return true;
    const snapshot = this.pending.snapshot();
    const now = Date.now();
    const token = randomToken();
    const done = await (async () => {
      const replies = await writeReplay(l2, keys, snapshot, now, this.bump(token));
      for (const [tag, mark] of snapshot.tags) this.state.rememberOwn(tag, { ...mark, at: now });
      this.ownBump(replies[replies.length - 1], token);
      return true;
    })().catch(() => false); // reported by L2 already; the next contact tries again
    if (!done) return false;
    this.pending.settle(snapshot);
    const count = snapshot.keys.size + snapshot.tags.size + snapshot.patterns.size;
    this.host.emit({ type: "replayed", count, purged: snapshot.purgeBefore !== undefined });
    this.host.debug(`replayed ${count} deferred invalidations`);
    return true;
  }

  /** Runs an invalidation's Redis work; when it fails, keeps the invalidation pending and says so. */
  private async attempt<T>(
    work: () => Promise<T>,
    keep: () => void,
    operation: DeferredOperation,
  ): Promise<T | undefined> {
    try {
      const result = await work();
      this.contacted();
      return result;
    } catch (error) {
      keep();
      this.host.emit({ type: "deferred", operation, pending: this.pending.size });
      this.host.debug(`${operation} deferred until Redis answers (${this.pending.size} pending)`);
      // With failSilently off the caller still learns that Redis failed; the invalidation is kept.
      return this.host.tolerate(() => Promise.reject(error));
    }
  }

  private bump(token: string): RedisArg[] {
    return ["SET", this.host.keys.epoch, token, "GET"];
  }

  /** What a read may serve of `stored` (tombstones and pending deletes hidden); Redis answered. */
  screen(full: string, stored: string | null | undefined): string | null | undefined {
    if (stored === undefined) return undefined;
    this.contacted();
    return stored === null || this.live(full, stored) ? stored : null;
  }

  /**
   * Whether an entry just read from Redis may go into L1: not when this instance invalidated its key
   * (or everything, by pattern or flush) after the entry was written, nor one of its tags since it
   * passed the tag check. A read that left before a local delete, set or invalidateTags may land
   * after it; its caller may have the old value, L1 must not keep it.
   */
  admits(full: string, entry: Entry): boolean {
    if (!this.local.admits(full, entry.created)) return false;
    if (entry.tags.length === 0) return true;
    const { gone, staleFrom } = this.state.verdict(entry, (tag) => this.pending.mark(tag));
    if (staleFrom !== undefined) entry.fresh = Math.min(entry.fresh, staleFrom);
    return !gone;
  }

  private applyEpoch(epoch: string | null): void {
    if (!this.state.observeEpoch(epoch)) return;
    // A fresh instance's first epoch read counts as a move; with nothing in L1 nothing was dropped.
    if (this.host.l1?.entries) this.host.debug("L1 dropped: invalidation on another instance");
    this.dropL1();
  }

  private dropL1(): void {
    this.local.dropped();
    this.host.l1?.clear();
  }
}
