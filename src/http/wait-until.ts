import type { WaitUntil } from "../types.js";

/**
 * `@vercel/functions` is an optional peer: the specifier is assembled at run time so bundlers
 * (esbuild, webpack, Vite, Turbopack) neither resolve it nor fail the build when it is absent.
 */
const VERCEL_FUNCTIONS = ["@vercel", "functions"].join("/");
/** The slot Vercel's runtime fills per request; `@vercel/functions` reads its `waitUntil` from there. */
const VERCEL_REQUEST_CONTEXT = Symbol.for("@vercel/request-context");

let vercelWaitUntil: Promise<WaitUntil | undefined> | undefined;

/**
 * The `waitUntil` for background work of one request, in order of preference:
 * 1. a `waitUntil` method on any argument after the request — Cloudflare's `fetch(req, env, ctx)`,
 *    Hono's `app.mount()` (which passes `c.executionCtx`), Vercel Edge's `(req, ctx)`;
 * 2. `@vercel/functions`' `waitUntil`, while a Vercel request is live: outside one it silently drops
 *    the promise (e.g. under `next start`), which would leave the write floating unobserved;
 * 3. `undefined`: the cache then uses its own `waitUntil` option, or awaits the work.
 */
export function waitUntilFrom(
  args: readonly unknown[],
): WaitUntil | undefined | Promise<WaitUntil | undefined> {
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
  if (!inVercelRequest()) return undefined;
  vercelWaitUntil ??= loadVercelWaitUntil();
  return vercelWaitUntil;
}

interface HasWaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

function inVercelRequest(): boolean {
  const slot = (globalThis as Record<symbol, { get?: () => Partial<HasWaitUntil> | undefined } | undefined>)[
    VERCEL_REQUEST_CONTEXT
  ];
  return typeof slot?.get?.()?.waitUntil === "function";
}

async function loadVercelWaitUntil(): Promise<WaitUntil | undefined> {
  try {
    const module: { waitUntil?: unknown } = await import(
      /* webpackIgnore: true */ /* turbopackIgnore: true */ /* @vite-ignore */ VERCEL_FUNCTIONS
    );
    return typeof module.waitUntil === "function" ? (module.waitUntil as WaitUntil) : undefined;
  } catch {
    // Not installed (or not traced into the deployment): fall back to the cache's own or awaiting.
    return undefined;
  }
}
