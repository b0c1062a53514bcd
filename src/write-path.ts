import { fraction } from "./config.js";
import type { CacheCore } from "./core.js";
import { toMs } from "./duration.js";
import { compressText, createEntry, type Entry } from "./entry.js";
import { checkTags } from "./input.js";
import type { Budget } from "./tiers/budget.js";
import { TOMBSTONE_MS, tombstone } from "./tombstone.js";
import type { RedisArg } from "./transports/types.js";
import type { SetManyEntry, SetOptions } from "./types.js";

/** Stored texts longer than this are gzipped before they go to Redis. */
const COMPRESS_ABOVE = 16 * 1024;
/** Stored texts longer than this (after compression) skip Redis with a warning: Upstash caps requests at 1 MB. */
const MAX_L2_VALUE = 1024 * 1024;

/** An entry ready to go: what L1 keeps, and the Redis command that stores it (none without Redis). */
export interface PreparedWrite {
  full: string;
  entry: Entry;
  command: RedisArg[] | undefined;
}

/**
 * The write path: entry building (times, jitter, tags), compression and size caps, then the L1 and
 * Redis writes.
 */
export class WritePath {
  constructor(private readonly core: CacheCore) {}

  /** Stores one value in L1 and Redis (awaited, within the call's `budget` if it has one). */
  async store(
    key: string,
    full: string,
    value: unknown,
    options: SetOptions,
    budget?: Budget,
  ): Promise<void> {
    const { l1, coherence } = this.core;
    void this.core.ensureRegistered();
    const write = await this.prepare(key, full, value, options);
    l1?.set(full, write.entry, Date.now());
    await coherence.store(write.command ? [write.command] : [], [full], budget);
  }

  /** Stores several entries; the Redis writes leave in one round trip. */
  async storeMany(entries: readonly SetManyEntry[]): Promise<void> {
    const { l1, keys, coherence } = this.core;
    const writes = await Promise.all(
      entries.map(async (e) => this.prepare(e.key, await keys.entry(e.key, e.versioned), e.value, e)),
    );
    const now = Date.now();
    for (const write of writes) l1?.set(write.full, write.entry, now);
    const commands = writes.flatMap((write) => (write.command ? [write.command] : []));
    await coherence.store(
      commands,
      writes.map((write) => write.full),
    );
  }

  /** Builds the entry and its Redis write: a SET, or a tombstone in place of the old value when this one is too large for Redis. */
  async prepare(
    key: string,
    full: string,
    value: unknown,
    options: SetOptions,
    createdAt?: number,
  ): Promise<PreparedWrite> {
    const { config } = this.core;
    const now = Date.now();
    const baseTtlMs = toMs(options.ttl ?? config.ttlMs, "ttl");
    const jitter = options.jitter !== undefined ? fraction("jitter", options.jitter) : config.jitter;
    const ttlMs = jitter > 0 ? Math.round(baseTtlMs * (1 - Math.random() * jitter)) : baseTtlMs;
    const swrMs = toMs(options.staleWhileRevalidate ?? config.staleWhileRevalidateMs, "staleWhileRevalidate");
    const sieMs = toMs(options.staleIfError ?? config.staleIfErrorMs, "staleIfError");
    const fresh = now + ttlMs;
    const times = { created: createdAt ?? now, fresh, stale: fresh + Math.max(swrMs, sieMs) };
    const { entry, text, valueJson } = createEntry(key, value, times, checkTags(options.tags));
    if (!this.core.l2) return { full, entry, command: undefined };
    const stored = config.keyring
      ? await config.keyring.seal(full, entry, valueJson)
      : text.length > COMPRESS_ABOVE
        ? await compressText(text, times.created)
        : text;
    if (stored.length > MAX_L2_VALUE) {
      config.logger.warn(`value for ${key} is ${stored.length} bytes, over ${MAX_L2_VALUE}: kept in L1 only`);
      // The previous value must not stay behind in Redis for other instances to serve, nor a loader
      // that started before this write put its older value back.
      return { full, entry, command: ["SET", full, tombstone(times.created), "PX", TOMBSTONE_MS] };
    }
    // PX takes whole milliseconds only: a fractional ttl would make every write an error reply.
    return { full, entry, command: ["SET", full, stored, "PX", Math.max(1, Math.ceil(times.stale - now))] };
  }
}
