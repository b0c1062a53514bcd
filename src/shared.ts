import type { CacheOptions } from "./types.js";

/**
 * Caches `createCache` handed out, by options and the environment they were read with. On
 * `globalThis` rather than in this module: Next.js evaluates a package once per bundle layer (route
 * handlers, server components, pages) and again after each dev reload, and each copy would otherwise
 * hold its own L1 and its own Redis connection.
 */
const REGISTRY = Symbol.for("tiercache.shared");

interface Closable {
  close(): Promise<void>;
}

function registry(): Map<string, Closable> {
  const slot = globalThis as { [REGISTRY]?: Map<string, Closable> };
  slot[REGISTRY] ??= new Map();
  return slot[REGISTRY];
}

/**
 * The process-wide instance for `options`, created by `create` the first time. Only options that are
 * plain data — configuration from the environment, no transport object, logger or callback — are
 * shared: two such calls with equal options and environment could not behave differently anyway.
 * `env` is the variables tiercache reads, already picked from `options.env` or `process.env`.
 */
export function sharedInstance<C extends Closable>(
  options: CacheOptions,
  env: Record<string, string>,
  create: () => C,
): C {
  // `env` counts by the variables read from it: a Worker's `env` (bindings and all) is not plain data.
  const { env: _source, ...rest } = options;
  if (rest.redis !== undefined || !isPlainData(rest)) return create();
  const key = JSON.stringify([rest, env], sortedKeys);
  const instances = registry();
  const existing = instances.get(key);
  if (existing) return existing as C;
  const created = create();
  instances.set(key, created);
  return created;
}

/** After `close()` the next `createCache` makes a new instance. */
export function forgetShared(instance: Closable): void {
  const instances = registry();
  for (const [key, value] of instances) if (value === instance) instances.delete(key);
}

/** Equal options written in another order are the same options. */
function sortedKeys(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function isPlainData(value: unknown): boolean {
  if (value === null || value === undefined) return true;
  const type = typeof value;
  if (type === "string" || type === "boolean" || (type === "number" && Number.isFinite(value))) return true;
  if (Array.isArray(value)) return value.every(isPlainData);
  if (type !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return false;
  return Object.values(value as object).every(isPlainData);
}
