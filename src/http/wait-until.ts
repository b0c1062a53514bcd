import type { WaitUntil } from "../types.js";

/**
 * The slot Vercel's runtime fills for each request. `@vercel/functions`' `waitUntil` is nothing but
 * `globalThis[slot].get().waitUntil`; reading the slot directly gives the same function without an
 * optional module for every bundler to trip over.
 */
const VERCEL_REQUEST_CONTEXT = Symbol.for("@vercel/request-context");

interface HasWaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

/** The live Vercel request's `waitUntil`, or undefined outside one (e.g. under `next start`). */
export function vercelWaitUntil(): WaitUntil | undefined {
  const slot = (globalThis as Record<symbol, { get?: () => Partial<HasWaitUntil> | undefined } | undefined>)[
    VERCEL_REQUEST_CONTEXT
  ];
  const context = slot?.get?.();
  return typeof context?.waitUntil === "function" ? (promise) => context.waitUntil?.(promise) : undefined;
}

/**
 * The `waitUntil` for background work of one request, in order of preference:
 * 1. a `waitUntil` method on any argument after the request — Cloudflare's `fetch(req, env, ctx)`,
 *    Hono's `app.mount()` (which passes `c.executionCtx`), Vercel Edge's `(req, ctx)`;
 * 2. the live Vercel request's (what `@vercel/functions` exports);
 * 3. `undefined`: the cache then uses its own `waitUntil` option, or awaits the work.
 */
export function waitUntilFrom(args: readonly unknown[]): WaitUntil | undefined {
  for (const arg of args) {
    if (
      typeof arg === "object" &&
      arg !== null &&
      typeof (arg as Partial<HasWaitUntil>).waitUntil === "function"
    ) {
      const context = arg as HasWaitUntil;
      // Bound: Cloudflare's ExecutionContext throws "Illegal invocation" when called detached.
      return (promise) => context.waitUntil(promise);
    }
  }
  return vercelWaitUntil();
}
