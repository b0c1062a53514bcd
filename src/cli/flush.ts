import { parseArgs } from "node:util";
import { wholeNumber } from "../config.js";
import { isFlushScope } from "../flush.js";
import { commandCache, progressLines, runOn } from "./command-cache.js";
import { commandOptions } from "./command-options.js";

const USAGE = `usage: tiercache flush [--scope <scope>] [--dry-run] [--keep N] [--namespace NAME]

Deletes cached keys from the Redis configured by the environment, as createCache() reads it
(REDIS_URL or REDIS_HOST…, UPSTASH_REDIS_REST_URL/TOKEN or KV_REST_API_URL/TOKEN, REDIS_ENV,
REDIS_CACHE_VERSION or VERCEL_GIT_COMMIT_SHA).

  --scope      stale-versions (default): versions older than the current one and the N before it
               version: the current version      namespace: everything of the namespace
               environment: everything under REDIS_ENV's prefix
               database: FLUSHDB, every key of the database, tiercache's or not
  --dry-run    count, delete nothing
  --keep N     versions kept before the current one (stale-versions; default 1)
  --namespace  default "default"

Exit code: 0 done, 1 Redis failed, 2 bad usage or configuration.`;

/**
 * `tiercache flush`: a deploy step. Prints what it is about to flush, progress for long flushes, and
 * one summary line ("Flushed N keys (scope stale-versions) in X ms"). Never prints a secret: only
 * the transport's kind is named, never its URL or token.
 */
export async function main(args: string[]): Promise<number> {
  const options = commandOptions("flush", args, parse, USAGE);
  if (typeof options === "number") return options;
  const opened = await commandCache("flush", { namespace: options.namespace, keepVersions: options.keep });
  if (typeof opened === "number") return opened;
  const { cache, health } = opened;
  const { transport } = health;
  const { prefix, namespace, version } = cache.keys;
  console.error(
    `tiercache flush: scope ${options.scope}${options.dryRun ? " (dry run)" : ""}, environment ${prefix ?? "production"}, ` +
      `namespace ${namespace}, version ${version}, via ${transport}`,
  );
  const started = performance.now();
  return runOn("flush", cache, async () => {
    const result = await cache.flush({
      scope: options.scope,
      dryRun: options.dryRun,
      onProgress: progressLines((removed) => `${removed} keys ${options.dryRun ? "counted" : "removed"}`),
    });
    const ms = Math.round(performance.now() - started);
    const versions = result.versions?.length ? ` — versions ${result.versions.join(", ")}` : "";
    const verb = options.dryRun ? "Would flush" : "Flushed";
    console.log(`${verb} ${result.removed} keys (scope ${result.scope}) in ${ms} ms${versions}`);
  });
}

function parse(args: string[]) {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      scope: { type: "string", default: "stale-versions" },
      "dry-run": { type: "boolean", default: false },
      keep: { type: "string" },
      namespace: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const scope = values.scope;
  if (!isFlushScope(scope)) throw new Error(`unknown --scope ${JSON.stringify(scope)}`);
  const keep = values.keep === undefined ? undefined : Number(values.keep);
  if (keep !== undefined) wholeNumber("--keep", /^\d+$/.test(values.keep ?? "") ? keep : Number.NaN);
  return { scope, dryRun: values["dry-run"], keep, namespace: values.namespace, help: values.help };
}
