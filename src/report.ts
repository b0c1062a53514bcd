import { COUNTERS, type Counter, SLOT_MS } from "./analytics.js";
import { CacheError } from "./errors.js";
import type { L2 } from "./tiers/l2.js";
import type { RedisArg, RedisReply } from "./transports/types.js";

/**
 * What the whole database holds, across every environment prefix, namespace and version:
 * `cache.report()` and `npx tiercache stats`. SCAN only (never `KEYS`), one batch of keys in flight,
 * stopping at `maxKeys`; memory is estimated from `MEMORY USAGE` on a bounded random sample.
 */

/** Options of {@link Cache.report}. */
export interface ReportOptions {
  /** Stop scanning after this many keys (the report then says `truncated`); default 1,000,000. */
  maxKeys?: number;
  /** At most this many `MEMORY USAGE` calls in all, spread over the groups; default 500 (0: no memory estimate). */
  sampleSize?: number;
  /** Called after each SCAN batch with the number of keys scanned so far. */
  onProgress?(scanned: number): void;
}

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

export interface VersionReport {
  version: string;
  /** Entries of this version. */
  keys: number;
  /** `MEMORY USAGE` of the sampled keys, scaled to `keys`; null when nothing was sampled. */
  approxBytes: number | null;
  /** From the version registry (epoch ms); null when the version is not registered. */
  firstSeen: number | null;
  /** A stale-versions flush removed its entries. */
  flushed: boolean;
  analytics?: { hour: Usage; day: Usage };
}

export interface NamespaceReport {
  namespace: string;
  versions: VersionReport[];
  /** Entries outside the versioned space (`versioned: false`). */
  unversioned: { keys: number; approxBytes: number | null };
  counters: number;
  tagMarks: number;
  /** Epoch, leases, locks, analytics buckets. */
  internal: number;
  /** Present when some instance of the namespace pushed analytics in the last day. */
  analytics?: { hour: Usage; day: Usage };
}

export interface EnvironmentReport {
  /** The `REDIS_ENV` prefix; null for none (production by default). */
  prefix: string | null;
  namespaces: NamespaceReport[];
}

export interface CacheReport {
  generatedAt: number;
  scannedKeys: number;
  /** Scanning stopped at `maxKeys`: counts are lower bounds. */
  truncated: boolean;
  /** Keys measured with `MEMORY USAGE`. */
  sampledKeys: number;
  environments: EnvironmentReport[];
}

const SCAN_COUNT = 1000;
const SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;
const HOUR_SLOTS = 6;
const DAY_SLOTS = 144;
/** Kept per group while scanning; the memory stage takes a share of each. */
const RESERVOIR = 32;
const PIPELINE_CHUNK = 100;

type Kind = "entry" | "unversioned" | "counter" | "tag" | "analytics" | "registry" | "internal";

/** Where a key sits in tiercache's layout, or undefined for a key tiercache did not write. */
export function classify(
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

interface Group {
  keys: number;
  seen: number;
  sample: string[];
  /** Estimated from the measured sample. */
  bytes?: number;
}

interface NamespaceTally {
  versions: Map<string, Group>;
  unversioned: Group;
  counters: number;
  tagMarks: number;
  internal: number;
  buckets: string[];
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

const newGroup = (): Group => ({ keys: 0, seen: 0, sample: [] });

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

/** Builds the report over `l2`; Redis failures are thrown (a report with holes would mislead). */
export async function buildReport(
  l2: L2,
  options: ReportOptions = {},
  now = Date.now(),
): Promise<CacheReport> {
  const maxKeys = options.maxKeys ?? 1_000_000;
  const sampleSize = options.sampleSize ?? 500;
  const environments = new Map<string | null, Map<string, NamespaceTally>>();
  const registries = new Set<string | null>();
  const tally = (prefix: string | null, namespace: string): NamespaceTally => {
    const namespaces = getOrCreate(environments, prefix, () => new Map<string, NamespaceTally>());
    let found = namespaces.get(namespace);
    if (!found) {
      found = {
        versions: new Map(),
        unversioned: newGroup(),
        counters: 0,
        tagMarks: 0,
        internal: 0,
        buckets: [],
      };
      namespaces.set(namespace, found);
    }
    return found;
  };

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
      const ns = tally(place.prefix, place.namespace);
      if (place.kind === "entry") {
        const version = place.version as string;
        offer(getOrCreate(ns.versions, version, newGroup), key);
      } else if (place.kind === "unversioned") offer(ns.unversioned, key);
      else if (place.kind === "counter") ns.counters++;
      else if (place.kind === "tag") ns.tagMarks++;
      else {
        ns.internal++;
        const slot = place.slot ?? Number.NaN;
        if (place.kind === "analytics" && slot > Math.floor(now / SLOT_MS) - DAY_SLOTS) ns.buckets.push(key);
      }
    }
    options.onProgress?.(scanned);
  } while (cursor !== "0" && scanned < maxKeys);
  const truncated = cursor !== "0";

  const groups = [...environments.values()].flatMap((namespaces) =>
    [...namespaces.values()].flatMap((ns) => [...ns.versions.values(), ns.unversioned]),
  );
  const sampledKeys = await measure(l2, groups, sampleSize);
  const registry = await readRegistries(l2, registries);
  const usage = await readAnalytics(l2, environments, now);

  return {
    generatedAt: now,
    scannedKeys: scanned,
    truncated,
    sampledKeys,
    environments: [...new Set([...environments.keys(), ...registries])].sort(byPrefix).map((prefix) => {
      const namespaces = environments.get(prefix) ?? new Map<string, NamespaceTally>();
      const registered = registry.get(prefix) ?? new Map<string, { firstSeen: number; flushed: boolean }>();
      const names = new Set([
        ...namespaces.keys(),
        ...[...registered.keys()].map((f) => f.split(":")[0] as string),
      ]);
      return {
        prefix,
        namespaces: [...names].sort().map((namespace) => {
          const ns = namespaces.get(namespace) ?? tally(prefix, namespace);
          const versionNames = new Set([
            ...ns.versions.keys(),
            ...[...registered.keys()]
              .filter((f) => f.startsWith(`${namespace}:`))
              .map((f) => f.slice(namespace.length + 1)),
          ]);
          const nsUsage = usage.get(ns);
          const versions = [...versionNames].map((version): VersionReport => {
            const group = ns.versions.get(version) ?? newGroup();
            const record = registered.get(`${namespace}:${version}`);
            const versionUsage = nsUsage?.versions.get(version);
            return {
              version,
              keys: group.keys,
              approxBytes: group.bytes ?? null,
              firstSeen: record?.firstSeen ?? null,
              flushed: record?.flushed ?? false,
              ...(versionUsage ? { analytics: versionUsage } : {}),
            };
          });
          versions.sort(
            (a, b) =>
              (a.firstSeen ?? Infinity) - (b.firstSeen ?? Infinity) || (a.version < b.version ? -1 : 1),
          );
          return {
            namespace,
            versions,
            unversioned: { keys: ns.unversioned.keys, approxBytes: ns.unversioned.bytes ?? null },
            counters: ns.counters,
            tagMarks: ns.tagMarks,
            internal: ns.internal,
            ...(nsUsage ? { analytics: nsUsage.total } : {}),
          };
        }),
      };
    }),
  };
}

const byPrefix = (a: string | null, b: string | null) => (a === null ? -1 : b === null ? 1 : a < b ? -1 : 1);

/** `MEMORY USAGE` of a share of each group's sample, scaled to its key count; returns keys measured. */
async function measure(l2: L2, groups: Group[], sampleSize: number): Promise<number> {
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

async function readRegistries(
  l2: L2,
  prefixes: Set<string | null>,
): Promise<Map<string | null, Map<string, { firstSeen: number; flushed: boolean }>>> {
  const list = [...prefixes];
  const replies = await pipelined(
    l2,
    list.map((prefix) => ["HGETALL", `${prefix === null ? "" : `${prefix}:`}tc:versions`]),
  );
  const result = new Map<string | null, Map<string, { firstSeen: number; flushed: boolean }>>();
  list.forEach((prefix, i) => {
    const fields = new Map<string, { firstSeen: number; flushed: boolean }>();
    for (const [field, value] of pairs(replies[i])) {
      const firstSeen = Number.parseInt(value, 10);
      if (field.includes(":") && Number.isFinite(firstSeen))
        fields.set(field, { firstSeen, flushed: value.endsWith(":flushed") });
    }
    result.set(prefix, fields);
  });
  return result;
}

interface NamespaceUsage {
  total: { hour: Usage; day: Usage };
  versions: Map<string, { hour: Usage; day: Usage }>;
}

async function readAnalytics(
  l2: L2,
  environments: Map<string | null, Map<string, NamespaceTally>>,
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

/** Field/value pairs of an HGETALL reply (a flat array on both transports). */
function pairs(reply: RedisReply | Error | undefined): [string, string][] {
  if (reply instanceof Error) throw new CacheError("UNAVAILABLE", `stats: ${reply.message}`);
  const out: [string, string][] = [];
  if (Array.isArray(reply))
    for (let i = 0; i + 1 < reply.length; i += 2) out.push([String(reply[i]), String(reply[i + 1])]);
  return out;
}

/** Commands in pipelines of {@link PIPELINE_CHUNK}, one in flight at a time. */
async function pipelined(l2: L2, commands: RedisArg[][]): Promise<(RedisReply | Error)[]> {
  const replies: (RedisReply | Error)[] = [];
  for (let i = 0; i < commands.length; i += PIPELINE_CHUNK) {
    replies.push(...(await l2.pipeline(commands.slice(i, i + PIPELINE_CHUNK), "stats")));
  }
  return replies;
}
