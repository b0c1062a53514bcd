import { toMs } from "./duration.js";
import { CacheError } from "./errors.js";
import type { LoaderTimeout } from "./types.js";

/** A `loaderTimeout` in milliseconds. */
export interface LoaderTimeoutMs {
  softMs: number | undefined;
  hardMs: number | undefined;
}

/** Checks and converts a `loaderTimeout`; `hard` must leave the loader more time than `soft`. */
export function loaderTimeoutMs(timeout: LoaderTimeout | undefined): LoaderTimeoutMs | undefined {
  if (timeout === undefined) return undefined;
  const softMs = timeout.soft === undefined ? undefined : toMs(timeout.soft, "loaderTimeout.soft");
  const hardMs = timeout.hard === undefined ? undefined : toMs(timeout.hard, "loaderTimeout.hard");
  if (softMs !== undefined && hardMs !== undefined && hardMs <= softMs) {
    throw new CacheError(
      "CONFIG",
      `loaderTimeout.hard (${hardMs} ms) must be longer than loaderTimeout.soft (${softMs} ms)`,
    );
  }
  return { softMs, hardMs };
}

/** What a bounded load falls back to past `soft`: a stale or warm-start value. */
export interface Fallback<T> {
  value: T;
  /** Called when the fallback is served instead of the load's own value. */
  served(): void;
}

/**
 * Waits for `loading` at most `hardMs` (rejecting with LOADER_TIMEOUT) and, when there is a
 * fallback, at most `softMs` (resolving to it). Either way `loading` goes on, handed to `detach`,
 * which must settle it quietly: the caller stops waiting, the load does not stop.
 * The timers never keep a process alive (unref where the runtime has it).
 */
export function bounded<T>(
  key: string,
  loading: Promise<T>,
  limits: LoaderTimeoutMs,
  fallback: Fallback<T> | undefined,
  detach: (loading: Promise<T>) => void,
): Promise<T> {
  const softMs = fallback ? limits.softMs : undefined;
  const { hardMs } = limits;
  if (softMs === undefined && hardMs === undefined) return loading;
  return new Promise<T>((resolve, reject) => {
    const timers: ReturnType<typeof setTimeout>[] = [];
    let waiting = true;
    const stop = (): boolean => {
      if (!waiting) return false;
      waiting = false;
      for (const timer of timers) clearTimeout(timer);
      return true;
    };
    loading.then(
      (value) => stop() && resolve(value),
      (error: unknown) => stop() && reject(error),
    );
    if (softMs !== undefined && fallback) {
      timers.push(
        later(softMs, () => {
          if (!stop()) return;
          detach(loading);
          fallback.served();
          resolve(fallback.value);
        }),
      );
    }
    if (hardMs !== undefined) {
      timers.push(
        later(hardMs, () => {
          if (!stop()) return;
          detach(loading);
          reject(
            new CacheError(
              "LOADER_TIMEOUT",
              `loader of "${key}" did not finish within ${hardMs} ms (it goes on in the background)`,
            ),
          );
        }),
      );
    }
  });
}

function later(ms: number, run: () => void): ReturnType<typeof setTimeout> {
  const timer = setTimeout(run, ms);
  (timer as { unref?: () => void }).unref?.();
  return timer;
}
