/**
 * OpenTelemetry for tiercache: `createCache({ telemetry: otel() })`. The only module of the package
 * that imports `@opentelemetry/api` (an optional peer dependency): apps that never import
 * `tiercache/otel` never have it resolved by their bundler nor loaded at run time.
 *
 * @example
 * import { createCache } from "tiercache";
 * import { otel } from "tiercache/otel";
 * export const cache = createCache({ telemetry: otel() });
 *
 * @module
 */
import {
  type Attributes,
  type Context,
  type Counter,
  context,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from "@opentelemetry/api";
import type { Counts } from "./core.js";
import { CacheError } from "./errors.js";
import {
  type Hit,
  NO_ATTRIBUTES,
  type Operation,
  type OperationSpan,
  type SpanAttributes,
  type Telemetry,
  type TelemetryFactory,
  type TelemetryScope,
} from "./telemetry.js";
import type { BreakerState } from "./types.js";

/** Options of {@link otel}. */
export interface OtelOptions {
  /** Default: the global tracer provider (`trace.getTracerProvider()`), looked up on first use. */
  tracerProvider?: TracerProvider;
  /**
   * Default: the global meter provider, looked up when the first cache is created — register the
   * SDK before that (in Next.js, `instrumentation.ts` runs first).
   */
  meterProvider?: MeterProvider;
  /** Put user keys on spans (`tiercache.key`), and route paths and tags; default false (they can hold identifiers). */
  traceKeys?: boolean;
  /** A span for every L1 hit; default false, so the hot path pays one counter increment only. */
  traceL1Hits?: boolean;
}

const SCOPE = "tiercache";

/**
 * OpenTelemetry spans and metrics for {@link createCache}'s `telemetry` option. Spans: `tiercache.get`,
 * `tiercache.getOrSet` (with `tiercache.load` as a child), `tiercache.set`, `tiercache.delete`,
 * `tiercache.setMany`, `tiercache.deletePattern`, `tiercache.invalidateTags`, `tiercache.flush`,
 * `tiercache.route`, carrying `db.system` =
 * `redis`, `db.operation.name`, `tiercache.hit` (`l1`/`l2`/`stale`/`miss`), `tiercache.namespace`
 * and `tiercache.version` — never a value, never a secret, keys only with `traceKeys`. Metrics:
 * `tiercache.hits` (by tier), `tiercache.misses`, `tiercache.stale`, `tiercache.loads`,
 * `tiercache.errors`, `tiercache.breaker.transitions`, and the histograms `tiercache.load.duration`
 * and `tiercache.redis.duration` (seconds).
 */
export function otel(options: OtelOptions = {}): TelemetryFactory {
  return {
    instrument: (scope) => {
      const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(SCOPE);
      let meters = shared.get(meter);
      if (!meters) {
        meters = instruments(meter);
        shared.set(meter, meters);
      }
      return new OtelTelemetry(scope, options, meters);
    },
  };
}

/** One set of instruments per meter, whatever the number of `otel()` calls and caches using it. */
const shared = new WeakMap<Meter, Instruments>();

interface Instruments {
  errors: Counter;
  breaker: Counter;
  loadDuration: Histogram;
  redisDuration: Histogram;
  /** Adds a cache's counts to the observable counters. */
  track(counts: Readonly<Counts>, base: Attributes): void;
}

/**
 * Hits, misses, stale served and loads are observable counters over the caches' own counts, read
 * at collection: the hot path (an L1 hit) adds nothing to what it does without telemetry. Caches
 * of one namespace and version (say, two in one process) are summed: one series each.
 */
function instruments(meter: Meter): Instruments {
  const hits = meter.createObservableCounter("tiercache.hits", {
    description: "Reads served fresh from the cache, by tier",
  });
  const misses = meter.createObservableCounter("tiercache.misses", {
    description: "Reads that found no servable entry",
  });
  const stale = meter.createObservableCounter("tiercache.stale", {
    description: "Stale values served (revalidating or on loader error)",
  });
  const loads = meter.createObservableCounter("tiercache.loads", {
    description: "Loader runs that returned",
  });
  const series = new Map<
    string,
    { base: Attributes; l1: Attributes; l2: Attributes; counts: Readonly<Counts>[] }
  >();
  meter.addBatchObservableCallback(
    (result) => {
      for (const { base, l1, l2, counts } of series.values()) {
        const sum = (pick: (c: Readonly<Counts>) => number) => counts.reduce((n, c) => n + pick(c), 0);
        result.observe(
          hits,
          sum((c) => c.l1),
          l1,
        );
        result.observe(
          hits,
          sum((c) => c.l2),
          l2,
        );
        result.observe(
          misses,
          sum((c) => c.misses),
          base,
        );
        result.observe(
          stale,
          sum((c) => c.stale),
          base,
        );
        result.observe(
          loads,
          sum((c) => c.loads),
          base,
        );
      }
    },
    [hits, misses, stale, loads],
  );
  const seconds = (name: string, description: string) =>
    meter.createHistogram(name, {
      description,
      unit: "s",
      advice: {
        explicitBucketBoundaries: [
          0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
        ],
      },
    });
  return {
    errors: meter.createCounter("tiercache.errors", { description: "Failed Redis operations" }),
    breaker: meter.createCounter("tiercache.breaker.transitions", {
      description: "Circuit breaker state changes",
    }),
    loadDuration: seconds("tiercache.load.duration", "Loader run time"),
    redisDuration: seconds("tiercache.redis.duration", "Redis round trip time, per command or pipeline"),
    track(counts, base) {
      const id = JSON.stringify(base);
      let entry = series.get(id);
      if (!entry) {
        entry = {
          base,
          l1: { ...base, "tiercache.tier": "l1" },
          l2: { ...base, "tiercache.tier": "l2" },
          counts: [],
        };
        series.set(id, entry);
      }
      entry.counts.push(counts);
    },
  };
}

class OtelTelemetry implements Telemetry {
  readonly traceKeys: boolean;
  readonly traceL1Hits: boolean;
  private readonly base: Attributes;
  private readonly metricBase: Attributes;
  /** The attributes of each operation's span when it adds none: built once. */
  private readonly byOperation = new Map<Operation, Attributes>();
  private tracerInstance: Tracer | undefined;

  constructor(
    scope: TelemetryScope,
    private readonly options: OtelOptions,
    private readonly meters: Instruments,
  ) {
    this.traceKeys = options.traceKeys === true;
    this.traceL1Hits = options.traceL1Hits === true;
    this.metricBase = { "tiercache.namespace": scope.namespace, "tiercache.version": scope.version };
    this.base = {
      "db.system": "redis",
      "db.system.name": "redis",
      "tiercache.transport": scope.transport,
      ...this.metricBase,
    };
    meters.track(scope.counts, this.metricBase);
  }

  private get tracer(): Tracer {
    this.tracerInstance ??= (this.options.tracerProvider ?? trace.getTracerProvider()).getTracer(SCOPE);
    return this.tracerInstance;
  }

  span<T>(
    operation: Operation,
    attributes: SpanAttributes,
    work: (span: OperationSpan) => Promise<T>,
  ): Promise<T> {
    const span = this.tracer.startSpan(`${SCOPE}.${operation}`, {
      kind: SpanKind.INTERNAL,
      attributes: this.attributes(operation, attributes),
    });
    // No SDK, or not sampled: nothing to record, nothing to make current, no promise layer added.
    if (!span.isRecording()) return work(UNRECORDED);
    return this.recorded(span, work);
  }

  private async recorded<T>(span: Span, work: (span: OperationSpan) => Promise<T>): Promise<T> {
    const active = trace.setSpan(context.active(), span);
    try {
      return await context.with(active, () => work(new Handle(span, active, this)));
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  l1Hit(operation: Operation, attributes: SpanAttributes): void {
    this.tracer
      .startSpan(`${SCOPE}.${operation}`, {
        kind: SpanKind.INTERNAL,
        attributes: { ...this.attributes(operation, attributes), "tiercache.hit": "l1" },
      })
      .end();
  }

  /** A child span of `parent` (explicitly: without a context manager nothing would link them). */
  async child<T>(parent: Context, operation: "load", work: () => Promise<T>): Promise<T> {
    const span = this.tracer.startSpan(
      `${SCOPE}.${operation}`,
      { kind: SpanKind.INTERNAL, attributes: this.metricBase },
      parent,
    );
    try {
      return await context.with(trace.setSpan(parent, span), work);
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  load(durationMs: number, didFail: boolean): void {
    this.meters.loadDuration.record(durationMs / 1000, {
      ...this.metricBase,
      "tiercache.load.failed": didFail,
    });
  }

  error(operation: string): void {
    this.meters.errors.add(1, { ...this.metricBase, "db.operation.name": operation });
  }

  breaker(state: BreakerState): void {
    this.meters.breaker.add(1, { ...this.metricBase, "tiercache.breaker.state": state });
  }

  redis(operation: string, durationMs: number, didFail: boolean): void {
    this.meters.redisDuration.record(durationMs / 1000, {
      ...this.metricBase,
      "db.system.name": "redis",
      "db.operation.name": operation,
      ...(didFail ? { "error.type": "redis" } : {}),
    });
  }

  private attributes(operation: Operation, extra: SpanAttributes): Attributes {
    if (extra === NO_ATTRIBUTES) {
      let shared = this.byOperation.get(operation);
      if (!shared) {
        shared = Object.freeze({ ...this.base, "db.operation.name": operation });
        this.byOperation.set(operation, shared);
      }
      return shared;
    }
    const attributes: Attributes = { ...this.base, "db.operation.name": operation };
    for (const [name, value] of Object.entries(extra)) if (value !== undefined) attributes[name] = value;
    return attributes;
  }
}

/** The span handle of an operation nobody records: every call is a no-op, the load runs as is. */
const UNRECORDED: OperationSpan = {
  hit() {},
  set() {},
  child: (_operation, work) => work(),
};

class Handle implements OperationSpan {
  constructor(
    private readonly span: Span,
    private readonly active: Context,
    private readonly telemetry: OtelTelemetry,
  ) {}

  hit(hit: Hit): void {
    this.span.setAttribute("tiercache.hit", hit);
  }

  set(name: string, value: string | number | boolean): void {
    this.span.setAttribute(name, value);
  }

  child<T>(operation: "load", work: () => Promise<T>): Promise<T> {
    return this.telemetry.child(this.active, operation, work);
  }
}

/**
 * Marks a span failed by error type only: a loader's error message can hold anything (a value, a
 * connection string), so only tiercache's own messages — which never carry a secret — are recorded.
 */
function failed(span: Span, error: unknown): void {
  const type =
    error instanceof CacheError ? error.code : error instanceof Error ? error.name || "Error" : typeof error;
  span.setAttribute("error.type", type);
  span.setStatus({
    code: SpanStatusCode.ERROR,
    ...(error instanceof CacheError ? { message: error.message } : {}),
  });
}
