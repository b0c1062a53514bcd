import { checkTags, describe, invalidArgument } from "./input.js";
import { escapeGlob } from "./keys.js";
import type { GetOrSetOptions, LoaderContext } from "./types.js";

/** What {@link wrap} and {@link invalidating} need of a cache; the `Cache` from `createCache` has it all. */
export interface WrapCache {
  getOrSet<T>(
    key: string,
    loader: (context: LoaderContext) => T | Promise<T>,
    options?: GetOrSetOptions<T>,
  ): Promise<T>;
  delete(...keys: string[]): Promise<number>;
  invalidateTags(tags: readonly string[]): Promise<unknown>;
  deletePattern(glob: string): Promise<number>;
}

/** A key as a function of the arguments, or a template like `"{username}_posts:page_{page}"`. */
export type KeySpec<A extends unknown[]> = string | ((...args: A) => string);
/** A list as it is, or computed from the arguments (and, after a call, its result). */
type FromArgs<A extends unknown[], R, T> = T | ((args: A, result: R) => T);

export interface WrapOptions<A extends unknown[], R> extends Omit<GetOrSetOptions<R>, "tags"> {
  key: KeySpec<A>;
  tags?: readonly string[] | ((...args: A) => readonly string[]);
}

export interface InvalidatingOptions<A extends unknown[], R> {
  /** Keys (or templates) to delete after the call. */
  keys?: FromArgs<A, R, readonly string[]>;
  /** Tags to invalidate after the call. */
  tags?: FromArgs<A, R, readonly string[]>;
  /** Globs (or templates) for `deletePattern` after the call; placeholders are glob-escaped. */
  patterns?: FromArgs<A, R, readonly string[]>;
}

const PLACEHOLDER = /\{([^{}]+)\}/g;

/**
 * Fills `{name}` placeholders from the first argument (an object), or from positional arguments by
 * index (`{0}`). A placeholder with no value is an error, never a key containing "undefined".
 */
export function fillTemplate(
  template: string,
  args: readonly unknown[],
  escapeValue?: (s: string) => string,
): string {
  const named = typeof args[0] === "object" && args[0] !== null ? (args[0] as Record<string, unknown>) : {};
  return template.replace(PLACEHOLDER, (_match, name: string) => {
    const value = /^\d+$/.test(name) ? args[Number(name)] : named[name];
    if (value === undefined || value === null || typeof value === "object" || typeof value === "function") {
      throw new TypeError(
        `tiercache: key template "${template}" needs {${name}}, but the call's arguments have ${value === undefined || value === null ? "no such value" : "a non-scalar value there"}`,
      );
    }
    const text = String(value);
    return escapeValue ? escapeValue(text) : text;
  });
}

export function keyOf<A extends unknown[]>(spec: KeySpec<A>, args: A): string {
  return typeof spec === "function" ? spec(...args) : fillTemplate(spec, args);
}

function resolveList<A extends unknown[], R>(
  spec: FromArgs<A, R, readonly string[]> | undefined,
  args: A,
  result: R,
  escapeValue?: (s: string) => string,
): string[] {
  if (!spec) return [];
  const list = checkList(typeof spec === "function" ? spec(args, result) : spec);
  return list.map((item) => fillTemplate(item, args, escapeValue));
}

function checkList(list: unknown): readonly string[] {
  if (!Array.isArray(list)) throw invalidArgument(`invalidating: expected an array, got ${describe(list)}`);
  return list;
}

/** See {@link Cache.wrap}. */
export function wrap<A extends unknown[], R>(
  cache: WrapCache,
  fn: (...args: A) => R | Promise<R>,
  options: WrapOptions<A, R>,
): (...args: A) => Promise<R> {
  const { key, tags, ...rest } = options;
  // A static list is checked once, here; a computed one on every call (a hit included).
  if (typeof tags !== "function") checkTags(tags, "wrap: tags");
  // async: a bad template or tags callback rejects, like every other failure of the wrapped call.
  return async (...args: A) =>
    cache.getOrSet(keyOf(key, args), () => fn(...args), {
      ...rest,
      tags: typeof tags === "function" ? checkTags(tags(...args), "wrap: tags") : tags,
    });
}

/** See {@link Cache.invalidating}. */
export function invalidating<A extends unknown[], R>(
  cache: WrapCache,
  fn: (...args: A) => R | Promise<R>,
  options: InvalidatingOptions<A, R>,
): (...args: A) => Promise<R> {
  // Static lists are checked here: once `fn` has run, a bad list would leave its change uninvalidated.
  for (const spec of [options.keys, options.tags, options.patterns]) {
    if (spec !== undefined && typeof spec !== "function") checkList(spec);
  }
  return async (...args: A) => {
    const result = await fn(...args);
    const keys = resolveList(options.keys, args, result);
    const tags = resolveList(options.tags, args, result);
    const patterns = resolveList(options.patterns, args, result, escapeGlob);
    await Promise.all([
      keys.length > 0 ? cache.delete(...keys) : undefined,
      cache.invalidateTags(tags),
      ...patterns.map((pattern) => cache.deletePattern(pattern)),
    ]);
    return result;
  };
}
