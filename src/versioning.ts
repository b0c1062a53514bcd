import { CacheError } from "./errors.js";
import type { KeySpace } from "./keys.js";
import type { L2 } from "./tiers/l2.js";
import type { RedisReply } from "./transports/types.js";
import type { Logger } from "./types.js";

/**
 * The version registry: one hash per environment, `[<prefix>:]tc:versions`, field
 * `<namespace>:<version>` → the epoch ms the version was first seen (`HSETNX`, so the first instance
 * of a deploy dates it and later ones never move it). Versions are ordered by that date, not by
 * name (a commit SHA says nothing about order): "newer" means first seen later. A version whose stale
 * entries were flushed keeps its field, marked `<ms>:flushed`, so that an old deployment still
 * serving (Skew Protection) or cold-starting later can never register again as the newest and
 * flush the versions after it.
 *
 * Fields carry the namespace because a namespace is the unit a cache flushes: two caches (or two
 * apps) sharing an environment prefix under different namespaces must not count each other's
 * versions when deciding what is stale.
 */

/** One registered version of this namespace. */
export interface VersionRecord {
  version: string;
  firstSeen: number;
  /** Its entries were removed by a stale-versions flush (it may have written more since). */
  flushed: boolean;
}

/** How the registered versions split for a stale-versions flush. */
export interface VersionPlan {
  /** Versions older than the current one and the `keep` before it, oldest first. */
  stale: VersionRecord[];
  /** The current version is first seen after every other registered version. */
  newest: boolean;
  /** The newest version registered before the current one (for the log line). */
  previous: string | undefined;
}

/** What the first contact of an instance needs: Redis, the key layout, and where to log. */
export interface RegistryContext {
  l2: L2;
  keys: KeySpace;
  logger: Logger;
}

/** How long the auto-flush lock holds: long enough for a big flush, short enough to retry after a crash. */
const FLUSH_LOCK_MS = 30_000;
const FLUSHED = ":flushed";

export function registryKey(keys: KeySpace): string {
  return `${keys.root}versions`;
}

function field(keys: KeySpace, version: string): string {
  return `${keys.namespace}:${version}`;
}

/**
 * Splits this namespace's registered versions around `current`: everything first seen after it is
 * kept (an older deployment never deletes a newer one's keys), and so are the `keep` versions just
 * before it (rollback). A current version missing from the registry (a dry run before it registered)
 * counts as the newest. Ties in first-seen time are broken by name, so every instance agrees.
 */
export function planVersions(records: readonly VersionRecord[], current: string, keep: number): VersionPlan {
  const ordered = [...records].sort((a, b) => a.firstSeen - b.firstSeen || (a.version < b.version ? -1 : 1));
  let index = ordered.findIndex((record) => record.version === current);
  if (index === -1) index = ordered.length;
  return {
    stale: ordered.slice(0, Math.max(0, index - keep)),
    newest: index >= ordered.length - 1,
    previous: ordered[index - 1]?.version,
  };
}

/**
 * The version a warm start reads from: the newest one first seen before `current`, when a
 * stale-versions flush keeps it (`keep` ≥ 1) and it was not flushed. None while `current` is not
 * in the registry: its place among the versions is unknown, and a newer version is never a source.
 */
export function warmSourceVersion(
  records: readonly VersionRecord[],
  current: string,
  keep: number,
): string | undefined {
  if (keep < 1 || !records.some((record) => record.version === current)) return undefined;
  const { previous } = planVersions(records, current, keep);
  const record = records.find((candidate) => candidate.version === previous);
  return record && !record.flushed ? record.version : undefined;
}

/** This namespace's registered versions, from an `HGETALL` reply of the registry. */
export function parseRegistry(reply: RedisReply | Error | undefined, keys: KeySpace): VersionRecord[] {
  if (reply instanceof Error) throw new CacheError("UNAVAILABLE", `version registry: ${reply.message}`);
  if (!Array.isArray(reply))
    throw new CacheError("UNAVAILABLE", "version registry: HGETALL answered with a non-array");
  const records: VersionRecord[] = [];
  const mine = `${keys.namespace}:`;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = reply[i];
    const value = reply[i + 1];
    if (typeof name !== "string" || !name.startsWith(mine) || typeof value !== "string") continue;
    const flushed = value.endsWith(FLUSHED);
    const firstSeen = Number(flushed ? value.slice(0, -FLUSHED.length) : value);
    // A field someone else wrote by hand is ignored rather than allowed to reorder the versions.
    if (Number.isSafeInteger(firstSeen))
      records.push({ version: name.slice(mine.length), firstSeen, flushed });
  }
  return records;
}

/** Reads this namespace's registered versions. */
export async function readVersions(l2: L2, keys: KeySpace): Promise<VersionRecord[]> {
  return parseRegistry(await l2.send(["HGETALL", registryKey(keys)], "versions"), keys);
}

/** Marks versions whose entries were just flushed, so later cold starts don't scan for them again. */
export async function markFlushed(l2: L2, keys: KeySpace, records: readonly VersionRecord[]): Promise<void> {
  if (records.length === 0) return;
  const fields = records.flatMap((record) => [field(keys, record.version), `${record.firstSeen}${FLUSHED}`]);
  await l2.send(["HSET", registryKey(keys), ...fields], "versions");
}

/**
 * The first contact of an instance with Redis: registers its version (one round trip: `HSETNX` and
 * `HGETALL` pipelined) and, when it is newer than every other version of its namespace and some
 * version beyond the kept ones was never flushed, takes a short lock (`SET NX PX`) so that of many
 * concurrent cold starts one runs `flushStale`. Returns the versions that instance flushed.
 * Run it in the background: nothing here belongs on a request's path.
 */
export async function registerVersion(
  context: RegistryContext,
  keep: number,
  flushStale: (() => Promise<{ versions?: string[] }>) | undefined,
  learn?: (records: readonly VersionRecord[]) => void,
): Promise<string[]> {
  const { l2, keys, logger } = context;
  const now = Date.now();
  const [added, all] = await l2.pipeline(
    [
      ["HSETNX", registryKey(keys), field(keys, keys.version), now],
      ["HGETALL", registryKey(keys)],
    ],
    "versions",
  );
  if (added instanceof Error) throw new CacheError("UNAVAILABLE", `version registry: ${added.message}`);
  const records = parseRegistry(all, keys);
  learn?.(records);
  const firstSeen = records.find((record) => record.version === keys.version)?.firstSeen ?? now;
  logger.info?.("Cache version initialized", {
    namespace: keys.namespace,
    version: keys.version,
    firstSeen: new Date(firstSeen).toISOString(),
    registeredNow: added === 1,
  });
  const plan = planVersions(records, keys.version, keep);
  if (!plan.newest) {
    logger.debug?.(`Cache version ${keys.version} is not the newest: leaving newer versions alone`);
    return [];
  }
  if (!flushStale || !plan.stale.some((record) => !record.flushed)) return [];
  const lock = await l2.send([
    "SET",
    `${keys.namespaceRoot}~flush-lock`,
    keys.version,
    "NX",
    "PX",
    FLUSH_LOCK_MS,
  ]);
  if (lock !== "OK") return []; // another instance of this deploy is flushing
  logger.info?.(`Cache version changed: ${plan.previous} → ${keys.version}, flushing stale versions`);
  return (await flushStale()).versions ?? [];
}
