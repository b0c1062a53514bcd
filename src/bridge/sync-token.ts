/**
 * The `upstash-sync-token` of read-your-writes. On Upstash it names a point in the primary's
 * write history; a replica answers a request only once it has caught up with the token the client
 * sends back. Behind the bridge there is one Redis, so every answer already sees every write: the
 * token only has to behave like Upstash's for the client — present on every response, new after
 * every write, never older than a token the client sent.
 *
 * It is a decimal counter. It starts from the clock (microseconds), so a restarted bridge still
 * answers tokens newer than the ones its previous run gave out, and it moves up to any newer
 * token a client presents.
 */
export interface SyncTokens {
  /** The current token, after taking in the one a client sent (if it is a newer counter). */
  observe(sent: string | undefined): string;
  /** A token newer than every one given out so far, for the answer to a write. */
  advance(): string;
}

export function syncTokens(now: () => number = Date.now): SyncTokens {
  let counter = now() * 1000;
  return {
    observe(sent) {
      if (sent !== undefined && /^\d{1,16}$/.test(sent)) {
        const value = Number(sent);
        if (Number.isSafeInteger(value) && value > counter) counter = value;
      }
      return String(counter);
    },
    advance() {
      counter = Math.max(counter + 1, now() * 1000);
      return String(counter);
    },
  };
}
