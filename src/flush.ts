import { wholeNumber } from "./config.js";
import { CacheError } from "./errors.js";
import { escapeGlob, type KeySpace } from "./keys.js";
import type { L1 } from "./tiers/l1.js";
import type { L2 } from "./tiers/l2.js";
import { randomToken } from "./tombstone.js";
import type { RedisArg } from "./transports/types.js";
import type { FlushOptions, FlushResult, FlushScope, Logger } from "./types.js";
import { markFlushed, planVersions, readVersions, type VersionRecord } from "./versioning.js";

/** Keys SCAN looks at per call: each call and each UNLINK of its matches stays well under a millisecond. */
const SCAN_COUNT = 1000;

/** What a flush reaches: both tiers of one cache, its key layout, its logger. */
export interface FlushContext {
  l1: L1 | null;
  l2: L2 | null;
  keys: KeySpace;
  logger: Logger;
  keepVersions: number;
}

/** The keys of one scope: a SCAN pattern, and the exact test each candidate must pass. */
interface Selection {
  pattern: string;
  matches(key: string): boolean;
  /** The versions a version-based scope removes; for stale-versions, their registry records too. */
  versions?: string[];
  stale?: VersionRecord[];
  /** Epochs the scope reaches: kept (a deleted one reads as "never bumped") and given new tokens. */
  epochs?: Set<string>;
}

const SCOPES: readonly FlushScope[] = ["stale-versions", "version", "namespace", "environment", "database"];

export function isFlushScope(value: unknown): value is FlushScope {
  return SCOPES.includes(value as FlushScope);
}

/**
 * Removes this cache's keys of one scope from Redis (SCAN + UNLINK, one batch in memory at a time)
 * and from this instance's L1. Redis failures are thrown, whatever `failSilently` says: a deploy
 * step has to know its flush did not happen.
 */
export async function runFlush(context: FlushContext, options: FlushOptions = {}): Promise<FlushResult> {
  const scope = options.scope ?? "stale-versions";
  if (!isFlushScope(scope)) throw new CacheError("CONFIG", `unknown flush scope ${JSON.stringify(scope)}`);
  const dryRun = options.dryRun === true;
  const started = Date.now();
  if (scope === "database") return flushDatabase(context, dryRun, started);
  const selection = await select(context, scope, options);
  if (selection.versions?.length === 0) return { scope, removed: 0, versions: [] };
  const inL1 = dryRun ? 0 : (context.l1?.deleteWhere((key) => selection.matches(key)) ?? 0);
  const { l2, keys, logger } = context;
  if (!l2) return withVersions({ scope, removed: inL1 }, selection);
  const removed = await scanAndUnlink(l2, selection, dryRun, options.onProgress);
  if (!dryRun && selection.stale) await markFlushed(l2, keys, selection.stale);
  // Other instances drop their L1 copies within `l1.syncMs` (their namespace's epoch moved).
  // A stale-versions flush removes nothing current instances hold, so it leaves their L1 alone.
  if (!dryRun && !selection.stale) {
    const epochs = new Set([keys.epoch, ...(selection.epochs ?? [])]);
    for (const reply of await l2.pipeline(
      [...epochs].map((epoch) => ["SET", epoch, randomToken()]),
      "flush",
    ))
      count(reply);
  }
  const what = selection.versions ? `of versions ${selection.versions.join(", ")}` : `(scope ${scope})`;
  logger.info?.(
    `${dryRun ? "Would flush" : "Flushed"} ${removed} keys ${what} in ${Date.now() - started} ms`,
  );
  return withVersions({ scope, removed }, selection);
}

function withVersions(result: FlushResult, selection: Selection): FlushResult {
  return selection.versions ? { ...result, versions: selection.versions } : result;
}

/**
 * The keys of a scope. Patterns are anchored at this environment's root, so production's `tc:*`
 * never reaches `preview:tc:*`; each candidate is then checked segment by segment, because a glob
 * such as `tc:ns:v1:*` says nothing about where `:` falls in what it matches.
 */
async function select(context: FlushContext, scope: FlushScope, options: FlushOptions): Promise<Selection> {
  const { keys } = context;
  const under = (root: string): Selection => {
    const epochs = new Set<string>();
    return {
      pattern: `${escapeGlob(root)}*`,
      matches: (key) => {
        if (!key.startsWith(root)) return false;
        if (!isEpochKey(key, keys)) return true;
        epochs.add(key);
        return false;
      },
      epochs,
    };
  };
  switch (scope) {
    case "environment":
      return under(keys.root);
    case "namespace":
      return under(keys.namespaceRoot);
    case "version":
      return {
        pattern: `${escapeGlob(`${keys.namespaceRoot}${keys.version}:`)}*`,
        matches: (key) => versionOf(key, keys) === keys.version,
        versions: [keys.version],
      };
    default: {
      const keep = wholeNumber("keepVersions", options.keepVersions ?? context.keepVersions);
      const records = context.l2 ? await readVersions(context.l2, keys) : [];
      const stale = planVersions(records, keys.version, keep).stale;
      const names = new Set(stale.map((record) => record.version));
      return {
        pattern: `${escapeGlob(keys.namespaceRoot)}*`,
        matches: (key) => names.has(versionOf(key, keys) ?? ""),
        versions: [...names],
        stale,
      };
    }
  }
}

/**
 * `[<prefix>:]tc:<namespace>:~e` (or `…:~e:{[<prefix>:]tc:<namespace>}` on a cluster), the
 * invalidation epoch of some namespace of this environment.
 */
function isEpochKey(key: string, keys: KeySpace): boolean {
  const end = key.indexOf(":", keys.root.length);
  if (end === -1) return false;
  const namespaceRoot = key.slice(0, end);
  return key === `${namespaceRoot}:~e` || key === `${namespaceRoot}:~e:{${namespaceRoot}}`;
}

/** The version segment of an entry key of this namespace (`~` and bookkeeping included), if any. */
function versionOf(key: string, keys: KeySpace): string | undefined {
  if (!key.startsWith(keys.namespaceRoot)) return undefined;
  const end = key.indexOf(":", keys.namespaceRoot.length);
  return end === -1 ? undefined : key.slice(keys.namespaceRoot.length, end);
}

/**
 * One SCAN cursor walk; the UNLINK of each batch rides in the same round trip as the next SCAN, so a
 * flush costs one round trip per batch (one HTTP request each on REST).
 */
export async function scanAndUnlink(
  l2: L2,
  selection: Pick<Selection, "pattern" | "matches">,
  dryRun: boolean,
  onProgress: ((removed: number) => void) | undefined,
): Promise<number> {
  let cursor = "0";
  let batch: string[] = [];
  let removed = 0;
  do {
    const commands: RedisArg[][] = batch.length > 0 ? [["UNLINK", ...batch]] : [];
    commands.push(["SCAN", cursor, "MATCH", selection.pattern, "COUNT", SCAN_COUNT]);
    const replies = await l2.pipeline(commands, "flush");
    if (batch.length > 0) {
      removed += count(replies[0]);
      onProgress?.(removed);
    }
    const scan = replies[replies.length - 1];
    if (!Array.isArray(scan) || !Array.isArray(scan[1]))
      throw new CacheError("UNAVAILABLE", "flush: bad SCAN reply");
    cursor = String(scan[0]);
    batch = scan[1].filter((key): key is string => typeof key === "string" && selection.matches(key));
    if (dryRun && batch.length > 0) {
      removed += batch.length;
      batch = [];
      onProgress?.(removed);
    }
  } while (cursor !== "0");
  if (batch.length > 0) {
    removed += count(await l2.send(["UNLINK", ...batch], "flush"));
    onProgress?.(removed);
  }
  return removed;
}

function count(reply: unknown): number {
  if (reply instanceof Error) throw new CacheError("UNAVAILABLE", `flush: ${reply.message}`);
  return typeof reply === "number" ? reply : 0;
}

/** `FLUSHDB ASYNC`: Redis frees the memory in the background instead of blocking on a big database. */
async function flushDatabase(context: FlushContext, dryRun: boolean, started: number): Promise<FlushResult> {
  const { l1, l2, logger } = context;
  const local = l1?.entries ?? 0;
  if (!dryRun) l1?.clear();
  if (!l2) return { scope: "database", removed: local };
  const removed = count(await l2.send(["DBSIZE"], "flush"));
  if (!dryRun) {
    // The epoch goes with the database; a value no instance can have seen makes this namespace's
    // instances drop their L1 (other namespaces' epochs are gone, which their instances see as a move
    // only if they had seen one).
    // One after the other: on a cluster FLUSHDB goes to every primary and the SET to one of them,
    // so in one pipeline the SET could land first and be flushed.
    count(await l2.send(["FLUSHDB", "ASYNC"], "flush"));
    count(await l2.send(["SET", context.keys.epoch, randomToken()], "flush"));
  }
  logger.info?.(
    `${dryRun ? "Would flush" : "Flushed"} ${removed} keys (scope database) in ${Date.now() - started} ms`,
  );
  return { scope: "database", removed };
}
