import { describe, invalidArgument } from "./input.js";
import type { Duration } from "./types.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/**
 * The longest duration tiercache accepts: 3650 days (about ten years). Redis refuses a `PX` whose
 * expiry (now + PX) overflows a signed 64-bit millisecond count, and JavaScript numbers lose whole
 * milliseconds long before that (past 2^53); a ttl plus its stale windows stays far inside both.
 */
export const MAX_DURATION_MS = 3650 * 86_400_000;

/**
 * Milliseconds of a {@link Duration}: a number of ms or a string like `"5m"`, from 0 to
 * {@link MAX_DURATION_MS}. Anything else is a CacheError `INVALID_ARGUMENT` naming the value given.
 */
export function toMs(duration: Duration, what = "duration"): number {
  let ms: number | undefined;
  if (typeof duration === "number") ms = duration;
  else if (typeof duration === "string") {
    const match = PATTERN.exec(duration);
    if (match) ms = Math.round(Number(match[1]) * (UNIT_MS[match[2] as string] as number));
  }
  if (ms === undefined || !(ms >= 0)) {
    throw invalidArgument(
      `invalid ${what} ${describe(duration)}: use milliseconds (a number ≥ 0) or a string like "30s", "5m", "1h", "1d"`,
    );
  }
  if (ms > MAX_DURATION_MS) {
    throw invalidArgument(`invalid ${what} ${describe(duration)}: at most "3650d" (${MAX_DURATION_MS} ms)`);
  }
  return ms;
}
