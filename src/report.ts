import { pairs, pipelined } from "./report/replies.js";
import { measure, type NamespaceTally, newGroup, newTally, scanKeys } from "./report/scan.js";
import { dayAgoSlot, readAnalytics, type Usage } from "./report/usage.js";
import type { L2 } from "./tiers/l2.js";

export type { Usage } from "./report/usage.js";

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

/** Builds the report over `l2`; Redis failures are thrown (a report with holes would mislead). */
export async function buildReport(
  l2: L2,
  options: ReportOptions = {},
  now = Date.now(),
): Promise<CacheReport> {
  const sampleSize = options.sampleSize ?? 500;
  const { environments, registries, scanned, truncated } = await scanKeys(
    l2,
    options.maxKeys ?? 1_000_000,
    options.onProgress,
    dayAgoSlot(now),
  );

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
      const registered = registry.get(prefix) ?? new Map<string, Registered>();
      const names = new Set([
        ...namespaces.keys(),
        ...[...registered.keys()].map((f) => f.split(":")[0] as string),
      ]);
      return {
        prefix,
        namespaces: [...names].sort().map((namespace) => {
          const ns = namespaces.get(namespace) ?? newTally();
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

/** A version's record in its prefix's registry, by `namespace:version`. */
interface Registered {
  firstSeen: number;
  flushed: boolean;
}

const byPrefix = (a: string | null, b: string | null) => (a === null ? -1 : b === null ? 1 : a < b ? -1 : 1);

async function readRegistries(
  l2: L2,
  prefixes: Set<string | null>,
): Promise<Map<string | null, Map<string, Registered>>> {
  const list = [...prefixes];
  const replies = await pipelined(
    l2,
    list.map((prefix) => ["HGETALL", `${prefix === null ? "" : `${prefix}:`}tc:versions`]),
  );
  const result = new Map<string | null, Map<string, Registered>>();
  list.forEach((prefix, i) => {
    const fields = new Map<string, Registered>();
    for (const [field, value] of pairs(replies[i])) {
      const firstSeen = Number.parseInt(value, 10);
      if (field.includes(":") && Number.isFinite(firstSeen))
        fields.set(field, { firstSeen, flushed: value.endsWith(":flushed") });
    }
    result.set(prefix, fields);
  });
  return result;
}
