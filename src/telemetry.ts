import type { Counts } from "./core.js";
import type { RedisArg, Topology, Transport } from "./transports/types.js";
import type { BreakerState } from "./types.js";

/**
 * What the cache tells a tracing and metrics backend. The core names no tracing library: the
 * OpenTelemetry implementation lives in `tiercache/otel` (src/otel.ts), the only module that imports
 * `@opentelemetry/api`, so an app that does not use it never has that package resolved or loaded.
 * Without `telemetry` the core only tests one field per operation.
 */
export interface TelemetryFactory {
  /** The telemetry of one cache, told its namespace, version and transport once, at `createCache`. */
  instrument(scope: TelemetryScope): Telemetry;
}

/** What every span and data point of one cache carries. */
export interface TelemetryScope {
  namespace: string;
  version: string;
  /** `"upstash"`, `"node-redis"` or `"none"`. */
  transport: string;
  /**
   * The cache's own counters (hits per tier, misses, stale, loads), kept anyway for `stats()`: read
   * when metrics are collected, so a hit costs the telemetry nothing.
   */
  counts: Readonly<Counts>;
}

/** The instrumentation of one cache (see {@link TelemetryFactory}). */
export interface Telemetry {
  /** Record user keys (and route paths, tags) on spans; off by default, keys can hold identifiers. */
  readonly traceKeys: boolean;
  /** A span for every L1 hit too; off by default, the L1 hit is the hot path. */
  readonly traceL1Hits: boolean;
  /** Runs `work` inside a span; `work`'s errors are recorded by type and passed through. */
  span<T>(
    operation: Operation,
    attributes: SpanAttributes,
    work: (span: OperationSpan) => Promise<T>,
  ): Promise<T>;
  /** A span for one L1 hit that has already happened (only with `traceL1Hits`). */
  l1Hit(operation: Operation, attributes: SpanAttributes): void;
  /** One loader run and how long it took (its count comes from `counts`). */
  load(durationMs: number, failed: boolean): void;
  error(operation: string): void;
  breaker(state: BreakerState): void;
  /** One Redis round trip and how long it took. */
  redis(operation: string, durationMs: number, failed: boolean): void;
}

export type Operation =
  | "get"
  | "getOrSet"
  | "set"
  | "setMany"
  | "delete"
  | "deletePattern"
  | "invalidateTags"
  | "flush"
  | "route";
export type Hit = "l1" | "l2" | "stale" | "miss";
export type SpanAttributes = Readonly<Record<string, string | number | boolean | undefined>>;
/** What an operation adds when it has nothing to add (no allocation per call). */
export const NO_ATTRIBUTES: SpanAttributes = Object.freeze({});

/** The span of one operation, as the cache paths see it. */
export interface OperationSpan {
  /** Where the value came from (`tiercache.hit`). */
  hit(hit: Hit): void;
  set(name: string, value: string | number | boolean): void;
  /** Runs the loader in a child span (the active span inside it, so the loader's own spans nest). */
  child<T>(operation: "load", work: () => Promise<T>): Promise<T>;
}

/** A transport whose round trips are timed for the Redis latency histogram. */
export function timedTransport(transport: Transport, telemetry: Telemetry): Transport {
  // Plain `then`, not an async wrapper: no promise layer more than the round trip itself.
  const time = <T>(operation: string, work: Promise<T>): Promise<T> => {
    const started = performance.now();
    return work.then(
      (result) => {
        telemetry.redis(operation, performance.now() - started, false);
        return result;
      },
      (error: unknown) => {
        telemetry.redis(operation, performance.now() - started, true);
        throw error;
      },
    );
  };
  return {
    kind: transport.kind,
    send: (command: readonly RedisArg[], signal?: AbortSignal) =>
      time(String(command[0]).toUpperCase(), transport.send(command, signal)),
    pipeline: (commands: readonly (readonly RedisArg[])[], signal?: AbortSignal) =>
      time(pipelineName(commands), transport.pipeline(commands, signal)),
    close: () => transport.close(),
    ...(transport.warmup ? { warmup: () => transport.warmup?.() ?? Promise.resolve() } : {}),
    // What L2 asks of the transport beyond its commands: key layout on a cluster, health, secrets.
    ...(transport.slotted ? { slotted: true } : {}),
    ...(transport.topology ? { topology: () => transport.topology?.() as Topology } : {}),
    ...(transport.partlyDown ? { partlyDown: () => transport.partlyDown?.() === true } : {}),
    ...(transport.redact ? { redact: (text: string) => transport.redact?.(text) ?? text } : {}),
  };
}

/** A route handler in a `route` span: method, status, the `x-cache` result, and the path with `traceKeys`. */
export function tracedRoute<R extends Request, A extends unknown[]>(
  telemetry: Telemetry,
  served: (req: R, ...rest: A) => Promise<Response>,
): (req: R, ...rest: A) => Promise<Response> {
  return (req, ...rest) => {
    const path = telemetry.traceKeys ? { "url.path": new URL(req.url).pathname } : {};
    return telemetry.span("route", { "http.request.method": req.method, ...path }, async (span) => {
      const response = await served(req, ...rest);
      span.set("http.response.status_code", response.status);
      const xCache = response.headers.get("x-cache");
      if (xCache) span.set("tiercache.route.result", xCache.toLowerCase());
      return response;
    });
  };
}

/** `PIPELINE SET`, or `PIPELINE` for a mix: a low-cardinality name, never a key. */
function pipelineName(commands: readonly (readonly RedisArg[])[]): string {
  const first = String(commands[0]?.[0] ?? "").toUpperCase();
  return commands.every((command) => String(command[0]).toUpperCase() === first)
    ? `PIPELINE ${first}`
    : "PIPELINE";
}
