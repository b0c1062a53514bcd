import { COUNTERS, type Counter, SLOT_MS } from "../analytics.js";
import type { L2 } from "../tiers/l2.js";
import { pairs, pipelined } from "./replies.js";
import { getOrCreate, type NamespaceTally, type Tallies } from "./scan.js";

/** The analytics half of a report: the buckets instances pushed, summed over the last hour and day. */

/** Reads, loads and errors summed over every instance that pushed analytics (`analytics: true`). */
export interface Usage {
  hits: { l1: number; l2: number };
  staleServed: number;
  misses: number;
  loads: number;
  errors: number;
  /** Hits (and stale served) over reads, 0…1; null without reads. */
  hitRate: number | null;
}

export interface NamespaceUsage {
  total: { hour: Usage; day: Usage };
  versions: Map<string, { hour: Usage; day: Usage }>;
}

const HOUR_SLOTS = 6;
const DAY_SLOTS = 144;

/** The last slot too old to be read: the report's longest window is a day. */
export const dayAgoSlot = (now: number): number => Math.floor(now / SLOT_MS) - DAY_SLOTS;

/** Sums the buckets each namespace collected while scanning, per version and for the namespace. */
export async function readAnalytics(
  l2: L2,
  environments: Tallies,
  now: number,
): Promise<Map<NamespaceTally, NamespaceUsage>> {
  const wanted = [...environments.values()].flatMap((namespaces) =>
    [...namespaces.values()].flatMap((ns) => ns.buckets.map((key) => ({ ns, key }))),
  );
  const replies = await pipelined(
    l2,
    wanted.map(({ key }) => ["HGETALL", key]),
  );
  const current = Math.floor(now / SLOT_MS);
  const sums = new Map<
    NamespaceTally,
    Map<string, { hour: Record<Counter, number>; day: Record<Counter, number> }>
  >();
  wanted.forEach(({ ns, key }, i) => {
    const slot = Number(key.slice(key.lastIndexOf(":") + 1));
    const inHour = slot > current - HOUR_SLOTS;
    const byVersion = getOrCreate(sums, ns, () => new Map());
    for (const [field, value] of pairs(replies[i])) {
      const cut = field.lastIndexOf(":");
      const version = field.slice(0, cut);
      const counter = field.slice(cut + 1) as Counter;
      if (!COUNTERS.includes(counter)) continue;
      const sum = getOrCreate(byVersion, version, () => ({ hour: zero(), day: zero() }));
      const n = Number(value) || 0;
      sum.day[counter] += n;
      if (inHour) sum.hour[counter] += n;
    }
  });
  const result = new Map<NamespaceTally, NamespaceUsage>();
  for (const [ns, byVersion] of sums) {
    const hour = zero();
    const day = zero();
    const versions = new Map<string, { hour: Usage; day: Usage }>();
    for (const [version, sum] of byVersion) {
      versions.set(version, { hour: toUsage(sum.hour), day: toUsage(sum.day) });
      for (const counter of COUNTERS) {
        hour[counter] += sum.hour[counter];
        day[counter] += sum.day[counter];
      }
    }
    result.set(ns, { total: { hour: toUsage(hour), day: toUsage(day) }, versions });
  }
  return result;
}

const zero = (): Record<Counter, number> => ({ l1: 0, l2: 0, stale: 0, miss: 0, load: 0, error: 0 });

function toUsage(sum: Record<Counter, number>): Usage {
  const served = sum.l1 + sum.l2 + sum.stale;
  const reads = served + sum.miss;
  return {
    hits: { l1: sum.l1, l2: sum.l2 },
    staleServed: sum.stale,
    misses: sum.miss,
    loads: sum.load,
    errors: sum.error,
    hitRate: reads === 0 ? null : served / reads,
  };
}
