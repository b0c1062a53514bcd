/** An `AbortError` carrying the signal's reason (a timeout, usually). */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const error = new Error(`Redis command aborted: ${reason instanceof Error ? reason.message : "aborted"}`, {
    cause: reason,
  });
  error.name = "AbortError";
  return error;
}

/**
 * Settles like `work`, but rejects as soon as `signal` aborts — whatever `work` does later is dropped.
 * Neither client honours a signal once a command is on the wire, so every deadline goes through here.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    if (signal.aborted) {
      work.catch(() => {});
      return onAbort();
    }
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
