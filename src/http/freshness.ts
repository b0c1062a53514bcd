import { cacheControl, seconds } from "./cache-control.js";

/** How long a response may be served, as a shared cache reads it from the response itself. */
export interface Freshness {
  /** Left of its freshness lifetime now (its `Age` already subtracted). */
  freshMs: number;
  /** `stale-while-revalidate`: served stale this long past freshness while one refresh runs. */
  staleWhileRevalidateMs: number;
  /** `stale-if-error`: served stale this long past freshness when the handler fails. */
  staleIfErrorMs: number;
  /** How old the response already was when the handler returned it (its `Age` header). */
  ageMs: number;
}

/**
 * A response's freshness under the shared-cache rules of RFC 9111 §4.2.1: `s-maxage` over `max-age`,
 * then `Expires` minus `Date` (or minus now without a `Date`), less the `Age` it arrived with.
 * Undefined when the response says nothing explicit (a shared cache may then use heuristics; a
 * route uses its own `ttl` or the cache's). `max-age=0` without `stale-while-revalidate` is not
 * worth storing: freshMs 0, no windows.
 */
export function responseFreshness(headers: Headers, now: number): Freshness | undefined {
  const directives = cacheControl(headers.get("cache-control"));
  const ageMs = (Number(headers.get("age")) || 0) * 1000;
  let lifetimeMs: number | undefined;
  const maxAge = seconds(directives, "s-maxage") ?? seconds(directives, "max-age");
  if (maxAge !== undefined) lifetimeMs = maxAge * 1000;
  else {
    const expires = headers.get("expires");
    if (expires !== null) {
      const expiresAt = Date.parse(expires);
      const date = Date.parse(headers.get("date") ?? "");
      // An invalid Expires ("0", "-1") means already expired (RFC 9111 §5.3).
      lifetimeMs = Number.isNaN(expiresAt) ? 0 : Math.max(0, expiresAt - (Number.isNaN(date) ? now : date));
    }
  }
  if (lifetimeMs === undefined) return undefined;
  return {
    freshMs: Math.max(0, lifetimeMs - ageMs),
    staleWhileRevalidateMs: (seconds(directives, "stale-while-revalidate") ?? 0) * 1000,
    staleIfErrorMs: (seconds(directives, "stale-if-error") ?? 0) * 1000,
    ageMs,
  };
}
