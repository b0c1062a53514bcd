import { parseArgs } from "node:util";
import type { CacheReport, Usage } from "../report.js";
import { commandCache, progressLines, runOn } from "./command-cache.js";
import { commandOptions } from "./command-options.js";

const USAGE = `usage: tiercache stats [--json] [--max-keys N] [--sample N]

What the Redis configured by the environment holds (as createCache() reads it: REDIS_URL or
REDIS_HOST…, UPSTASH_REDIS_REST_URL/TOKEN or KV_REST_API_URL/TOKEN), across every REDIS_ENV prefix,
namespace and version: key counts, approximate memory (MEMORY USAGE on a sample), the version
registry, tag marks, and — from instances running with analytics: true — hit rates, loads and
errors over the last hour and day. SCAN only, never KEYS; progress on stderr.

  --json       the report as JSON on stdout (for scripts)
  --max-keys   stop scanning after N keys (default 1000000; the report says it is truncated)
  --sample     at most N MEMORY USAGE calls in all (default 500; 0 skips the memory estimate)

Exit code: 0 done, 1 Redis failed, 2 bad usage or configuration.`;

/** `tiercache stats`: never prints a secret — the transport is named by kind only. */
export async function main(args: string[]): Promise<number> {
  const options = commandOptions("stats", args, parse, USAGE);
  if (typeof options === "number") return options;
  const opened = await commandCache("stats", {});
  if (typeof opened === "number") return opened;
  const { cache } = opened;
  return runOn("stats", cache, async () => {
    const report = await cache.report({
      maxKeys: options.maxKeys,
      sampleSize: options.sample,
      onProgress: progressLines((scanned) => `${scanned.toLocaleString("en-US")} keys scanned`),
    });
    console.log(options.json ? JSON.stringify(report, null, 2) : table(report));
  });
}

function parse(args: string[]) {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: "boolean", default: false },
      "max-keys": { type: "string" },
      sample: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const count = (name: string, value: string | undefined, min: number) => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value) || Number(value) < min)
      throw new Error(`${name} must be a whole number ≥ ${min}`);
    return Number(value);
  };
  return {
    json: values.json,
    maxKeys: count("--max-keys", values["max-keys"], 1),
    sample: count("--sample", values.sample, 0),
    help: values.help,
  };
}

const bytes = (n: number | null) =>
  n === null
    ? "—"
    : n < 1024
      ? `${n} B`
      : n < 1024 ** 2
        ? `${(n / 1024).toFixed(1)} KB`
        : `${(n / 1024 ** 2).toFixed(1)} MB`;
const date = (ms: number | null) => (ms === null ? "—" : new Date(ms).toISOString().replace(/\.\d+Z$/, "Z"));
const rate = (usage: Usage) => (usage.hitRate === null ? "—" : `${(usage.hitRate * 100).toFixed(1)}%`);
const usageLine = (usage: Usage) =>
  `${rate(usage)} hits (l1 ${usage.hits.l1}, l2 ${usage.hits.l2}, stale ${usage.staleServed}, miss ${usage.misses}), loads ${usage.loads}, errors ${usage.errors}`;

/** Columns padded to their widest cell. */
function columns(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** The human view: one table of key counts, then the analytics per namespace. */
export function table(report: CacheReport): string {
  const rows = [["environment", "namespace", "version", "keys", "~memory", "first seen", ""]];
  const analytics: string[] = [];
  for (const env of report.environments) {
    const prefix = env.prefix ?? "(none)";
    for (const ns of env.namespaces) {
      for (const v of ns.versions) {
        rows.push([
          prefix,
          ns.namespace,
          v.version,
          String(v.keys),
          bytes(v.approxBytes),
          date(v.firstSeen),
          v.flushed ? "flushed" : "",
        ]);
      }
      if (ns.unversioned.keys > 0)
        rows.push([
          prefix,
          ns.namespace,
          "(unversioned)",
          String(ns.unversioned.keys),
          bytes(ns.unversioned.approxBytes),
          "",
          "",
        ]);
      rows.push([prefix, ns.namespace, "(tag marks)", String(ns.tagMarks), "", "", ""]);
      if (ns.counters > 0) rows.push([prefix, ns.namespace, "(counters)", String(ns.counters), "", "", ""]);
      if (ns.analytics) {
        analytics.push(`${prefix} / ${ns.namespace}`);
        analytics.push(`  last hour: ${usageLine(ns.analytics.hour)}`);
        analytics.push(`  last day:  ${usageLine(ns.analytics.day)}`);
      }
    }
  }
  const head = `${report.scannedKeys.toLocaleString("en-US")} keys scanned${report.truncated ? " (truncated: counts are lower bounds)" : ""}, ${report.sampledKeys} sampled for memory`;
  const tail =
    analytics.length > 0 ? `\n\nAnalytics (all instances with analytics: true)\n${analytics.join("\n")}` : "";
  return `${head}\n\n${columns(rows)}${tail}`;
}
