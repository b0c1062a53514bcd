import { CacheError } from "../errors.js";
import type { DeployHookOptions, FlushOptions, FlushResult } from "../types.js";

/** What {@link deployHook} needs of a cache. */
export interface FlushingCache {
  flush(options?: FlushOptions): Promise<FlushResult>;
}

/** Shorter secrets can be guessed online; a deploy hook is reachable by anyone who finds its URL. */
const MIN_SECRET_LENGTH = 16;

/**
 * A Web handler that runs `cache.flush({ scope })` when called with `POST` and
 * `Authorization: Bearer <secret>` (a deploy step, a GitHub Action, a cron), answering
 * `{ scope, removed }` as JSON. Anything else gets 405 or 401 and deletes nothing. The secret is
 * compared in constant time: both sides are hashed (SHA-256, Web Crypto, edge-safe) and the digests
 * compared byte by byte without an early exit, so neither the content nor the length of the secret
 * leaks through timing.
 */
export function deployHook(
  cache: FlushingCache,
  options: DeployHookOptions,
): (req: Request) => Promise<Response> {
  const { secret } = options;
  if (typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH) {
    throw new CacheError("CONFIG", `deployHook needs a secret of at least ${MIN_SECRET_LENGTH} characters`);
  }
  const scope = options.scope ?? "stale-versions";
  // Hashed on first use: Workers allow no async work at module scope, where hooks are created.
  let expected: Promise<Uint8Array> | undefined;
  return async (req) => {
    if (req.method !== "POST") return json({ error: "method not allowed" }, 405, { allow: "POST" });
    const given = /^Bearer (.+)$/i.exec(req.headers.get("authorization") ?? "")?.[1] ?? "";
    expected ??= sha256(secret);
    if (!equalDigests(await expected, await sha256(given))) {
      return json({ error: "unauthorized" }, 401, { "www-authenticate": 'Bearer realm="tiercache"' });
    }
    try {
      const { removed, versions } = await cache.flush({ scope });
      return json(versions ? { scope, removed, versions } : { scope, removed }, 200);
    } catch (error) {
      // CacheError messages name operations, never credentials (transports redact them).
      return json({ error: error instanceof Error ? error.message : "flush failed" }, 503);
    }
  };
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Both are 32-byte digests: every byte is visited whatever the first difference. */
function equalDigests(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] ?? 0);
  return difference === 0;
}

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}
