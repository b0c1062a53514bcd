import { CacheError } from "../errors.js";
import type { L2 } from "../tiers/l2.js";
import { pipelined } from "./replies.js";

/**
 * The gathering half of a report: one SCAN over the database, each key placed in tiercache's
 * layout and counted per environment prefix, namespace and version, with a random sample of each
 * group kept for `MEMORY USAGE`.
 */

const SCAN_COUNT = 1000;
const SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;
/** Kept per group while scanning; the memory stage takes a share of each. */
const RESERVOIR = 32;

type Kind = "entry" | "unversioned" | "counter" | "tag" | "analytics" | "registry" | "internal";

/** Where a key sits in tiercache's layout, or undefined for a key tiercache did not write. */
function classify(
  key: string,
): { prefix: string | null; namespace: string; kind: Kind; version?: string; slot?: number } | undefined {
  let prefix: string | null = null;
  let rest: string;
  if (key.startsWith("tc:")) rest = key.slice(3);
  else {
    const colon = key.indexOf(":");
    if (colon < 1 || !key.startsWith("tc:", colon + 1)) return undefined;
    prefix = key.slice(0, colon);
    if (!SEGMENT.test(prefix)) return undefined;
    rest = key.slice(colon + 4);
  }
  if (rest === "versions") return { prefix, namespace: "", kind: "registry" };
  const colon = rest.indexOf(":");
  const namespace = rest.slice(0, colon);
  if (colon < 1 || !SEGMENT.test(namespace)) return undefined;
  const tail = rest.slice(colon + 1);
  if (tail.startsWith("~t:")) return { prefix, namespace, kind: "tag" };
  if (tail.startsWith("~a:")) return { prefix, namespace, kind: "analytics", slot: Number(tail.slice(3)) };
  if (tail.startsWith("~:c:")) return { prefix, namespace, kind: "counter" };
  if (tail.startsWith("~:")) return { prefix, namespace, kind: "unversioned" };
  if (tail.startsWith("~")) return { prefix, namespace, kind: "internal" };
  const version = tail.slice(0, tail.indexOf(":"));
  if (!SEGMENT.test(version)) return undefined;
  return { prefix, namespace, kind: "entry", version };
}

/** Keys of one version (or of the unversioned space) of a namespace. */
export interface Group {
  keys: number;
  seen: number;
  sample: string[];
  /** Estimated from the measured sample. */
  bytes?: number;
}

export interface NamespaceTally {
  versions: Map<string, Group>;
  unversioned: Group;
  counters: number;
  tagMarks: number;
  internal: number;
  /** Analytics buckets recent enough to be read once the scan is over. */
  buckets: string[];
}

/** Tallies per environment prefix, then per namespace. */
export type Tallies = Map<string | null, Map<string, NamespaceTally>>;

export interface Scan {
  environments: Tallies;
  /** Prefixes whose version registry exists. */
  registries: Set<string | null>;
  scanned: number;
  /** Scanning stopped at `maxKeys`. */
  truncated: boolean;
}

export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

export const newGroup = (): Group => ({ keys: 0, seen: 0, sample: [] });

export const newTally = (): NamespaceTally => ({
  versions: new Map(),
  unversioned: newGroup(),
  counters: 0,
  tagMarks: 0,
  internal: 0,
  buckets: [],
});

/** Reservoir sampling (algorithm R): every key of the group equally likely to be measured. */
function offer(group: Group, key: string): void {
  group.keys++;
  group.seen++;
  if (group.sample.length < RESERVOIR) group.sample.push(key);
  else {
    const at = Math.floor(Math.random() * group.seen);
    if (at < RESERVOIR) group.sample[at] = key;
  }
}

/**
 * SCANs (never `KEYS`) with one batch in flight, until the end or `maxKeys`; Redis failures are
 * thrown. Analytics buckets of slots after `bucketsAfter` are kept for reading.
 */
export async function scanKeys(
  l2: L2,
  maxKeys: number,
  onProgress: ((scanned: number) => void) | undefined,
  bucketsAfter: number,
): Promise<Scan> {
  const environments: Tallies = new Map();
  const registries = new Set<string | null>();
  let cursor = "0";
  let scanned = 0;
  do {
    const reply = await l2.send(["SCAN", cursor, "MATCH", "*tc:*", "COUNT", SCAN_COUNT], "stats");
    if (!Array.isArray(reply) || !Array.isArray(reply[1]))
      throw new CacheError("UNAVAILABLE", "stats: bad SCAN reply");
    cursor = String(reply[0]);
    for (const key of reply[1]) {
      if (typeof key !== "string") continue;
      scanned++;
      const place = classify(key);
      if (!place) continue;
      if (place.kind === "registry") {
        registries.add(place.prefix);
        continue;
      }
      const namespaces = getOrCreate(environments, place.prefix, () => new Map<string, NamespaceTally>());
      const ns = getOrCreate(namespaces, place.namespace, newTally);
      if (place.kind === "entry") {
        const version = place.version as string;
        offer(getOrCreate(ns.versions, version, newGroup), key);
      } else if (place.kind === "unversioned") offer(ns.unversioned, key);
      else if (place.kind === "counter") ns.counters++;
      else if (place.kind === "tag") ns.tagMarks++;
      else {
        ns.internal++;
        const slot = place.slot ?? Number.NaN;
        if (place.kind === "analytics" && slot > bucketsAfter) ns.buckets.push(key);
      }
    }
    onProgress?.(scanned);
  } while (cursor !== "0" && scanned < maxKeys);
  return { environments, registries, scanned, truncated: cursor !== "0" };
}

/** `MEMORY USAGE` of a share of each group's sample, scaled to its key count; returns keys measured. */
export async function measure(l2: L2, groups: Group[], sampleSize: number): Promise<number> {
  const withKeys = groups.filter((group) => group.keys > 0);
  if (sampleSize <= 0 || withKeys.length === 0) return 0;
  const share = Math.max(1, Math.floor(sampleSize / withKeys.length));
  const picks = withKeys.flatMap((group) => group.sample.slice(0, share).map((key) => ({ group, key })));
  const sizes = await pipelined(
    l2,
    picks.slice(0, Math.max(sampleSize, withKeys.length)).map(({ key }) => ["MEMORY", "USAGE", key]),
  );
  const totals = new Map<Group, { bytes: number; n: number }>();
  picks.forEach(({ group }, i) => {
    const size = sizes[i];
    if (typeof size !== "number") return; // expired since the scan, or not measured
    const total = totals.get(group) ?? { bytes: 0, n: 0 };
    total.bytes += size;
    total.n++;
    totals.set(group, total);
  });
  let measured = 0;
  for (const [group, { bytes, n }] of totals) {
    group.bytes = Math.round((bytes / n) * group.keys);
    measured += n;
  }
  return measured;
}
