import { varySuffix } from "./vary.js";

/**
 * The default cache key of a request: host, path, the query sorted by parameter name, and the
 * values of the `vary` request headers. The method is left out so a HEAD finds the GET's entry;
 * the scheme is left out because http and https serve the same resource.
 *
 * @param vary lower-case header names, sorted (see {@link normalizeVary})
 */
export function requestKey(req: Request, vary: readonly string[]): string {
  const url = new URL(req.url);
  // A stable sort by name: `?b=1&a=2` and `?a=2&b=1` share an entry, while repeated names keep
  // their order (`?id=2&id=1` may mean something else than `?id=1&id=2`).
  url.searchParams.sort();
  const query = url.searchParams.toString();
  const key = `route:${url.host}${url.pathname}${query ? `?${query}` : ""}`;
  return key + varySuffix(req, vary);
}

/** Header names as {@link requestKey} wants them: lower case, deduplicated, sorted. */
export function normalizeVary(names: readonly string[] = []): string[] {
  return [...new Set(names.map((name) => name.trim().toLowerCase()).filter(Boolean))].sort();
}
