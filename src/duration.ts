import type { Duration } from "./types.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/** Milliseconds of a {@link Duration}; a negative, non-finite or unparseable value is a clear TypeError. */
export function toMs(duration: Duration, what = "duration"): number {
  if (typeof duration === "number") {
    if (Number.isFinite(duration) && duration >= 0) return duration;
  } else if (typeof duration === "string") {
    const match = PATTERN.exec(duration);
    if (match) return Math.round(Number(match[1]) * (UNIT_MS[match[2] as string] as number));
  }
  throw new TypeError(
    `tiercache: invalid ${what} ${JSON.stringify(duration)}: use milliseconds (a number ≥ 0) or a string like "30s", "5m", "1h", "1d"`,
  );
}
