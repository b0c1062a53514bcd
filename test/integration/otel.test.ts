import { trace } from "@opentelemetry/api";
import { type DataPoint, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { otel } from "../../src/otel.js";
import type { Transport } from "../../src/transports/types.js";
import type { CacheOptions } from "../../src/types.js";
import { type Backend, cacheOn, openBackend } from "../support/backends.js";
import { isolatedRedisUrl } from "../support/redis-db.js";

/** A reader the test collects from by hand. */
class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const SECRET_VALUE = "do-not-trace-this-value";
const SECRET_KEY = "user:ada@example.com";

function telemetryFixture() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = (name?: string): ReadableSpan[] =>
    exporter.getFinishedSpans().filter((span) => name === undefined || span.name === name);
  /** Data points of one metric, summed or listed. */
  const points = async (name: string): Promise<DataPoint<unknown>[]> => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === name);
    return (metric?.dataPoints ?? []) as DataPoint<unknown>[];
  };
  const sum = async (name: string, attributes: Record<string, unknown> = {}) =>
    (await points(name))
      .filter((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
      .reduce((total, p) => total + (p.value as number), 0);
  return { exporter, tracerProvider, meterProvider, reader, spans, points, sum };
}

describe.each(["node-redis", "upstash"] as const)("OpenTelemetry on %s", (backendName) => {
  let backend: Backend;
  let t: ReturnType<typeof telemetryFixture>;
  beforeAll(async () => {
    backend = await openBackend(backendName, await isolatedRedisUrl());
  });
  afterAll(async () => {
    await backend.close();
  });
  beforeEach(() => {
    t = telemetryFixture();
  });

  const traced = (options: CacheOptions = {}, otelOptions = {}) =>
    cacheOn(backend, {
      timeoutMs: 5000,
      namespace: "shop",
      version: "v7",
      telemetry: otel({ tracerProvider: t.tracerProvider, meterProvider: t.meterProvider, ...otelOptions }),
      ...options,
    });

  it("get: a span per miss and L2 hit with semantic attributes, none per L1 hit; hit counters per tier", async () => {
    const writer = traced();
    expect(await writer.get(SECRET_KEY)).toBeUndefined();
    await writer.set(SECRET_KEY, SECRET_VALUE);
    expect(await writer.get(SECRET_KEY)).toBe(SECRET_VALUE); // L1: no span
    const reader = traced({ prefix: writer.keys.prefix });
    expect(await reader.get(SECRET_KEY)).toBe(SECRET_VALUE); // L2
    const gets = t.spans("tiercache.get");
    expect(gets.map((s) => s.attributes["tiercache.hit"])).toEqual(["miss", "l2"]);
    expect(gets[0]?.attributes).toMatchObject({
      "db.system": "redis",
      "db.system.name": "redis",
      "db.operation.name": "get",
      "tiercache.namespace": "shop",
      "tiercache.version": "v7",
      "tiercache.transport": backendName,
    });
    expect(gets[0]?.attributes).not.toHaveProperty("tiercache.key");
    expect(t.spans("tiercache.set")).toHaveLength(1);
    expect(await t.sum("tiercache.hits", { "tiercache.tier": "l1" })).toBe(1);
    expect(await t.sum("tiercache.hits", { "tiercache.tier": "l2" })).toBe(1);
    expect(await t.sum("tiercache.misses")).toBe(1);
    // Redis latency histogram by command, never by key.
    const redis = await t.points("tiercache.redis.duration");
    const commands = redis.map((p) => p.attributes["db.operation.name"]);
    expect(commands).toContain("MGET"); // the entry and the epoch, read together
    expect(commands).toContain("SET");
    expect(JSON.stringify(redis)).not.toContain(SECRET_KEY);
    await Promise.all([writer.close(), reader.close()]);
  });

  it("getOrSet: the load is a child span; loads and loader duration recorded; stale served is a stale hit", async () => {
    const cache = traced({ staleWhileRevalidate: "1m" });
    await cache.getOrSet("p", () => SECRET_VALUE, { ttl: 30 });
    const [outer] = t.spans("tiercache.getOrSet");
    const [load] = t.spans("tiercache.load");
    expect(outer?.attributes["tiercache.hit"]).toBe("miss");
    expect(load?.parentSpanContext?.spanId).toBe(outer?.spanContext().spanId);
    expect(load?.spanContext().traceId).toBe(outer?.spanContext().traceId);
    expect(await t.sum("tiercache.loads")).toBe(1);
    const [duration] = await t.points("tiercache.load.duration");
    expect(duration?.value).toMatchObject({ count: 1 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await cache.getOrSet("p", () => "refreshed", { ttl: 30_000 })).toBe(SECRET_VALUE);
    expect(t.spans("tiercache.getOrSet").map((s) => s.attributes["tiercache.hit"])).toEqual([
      "miss",
      "stale",
    ]);
    expect(await t.sum("tiercache.stale")).toBe(1);
    await cache.close();
  });

  it("set, delete, invalidateTags, flush and route each have a span", async () => {
    const cache = traced();
    await cache.set("a", 1, { tags: ["t:1"] });
    expect(await cache.delete("a", "b")).toBeGreaterThanOrEqual(0);
    await cache.invalidateTags(["t:1", "t:2"]);
    await cache.flush({ scope: "version", dryRun: true });
    await cache.setMany([
      { key: "m1", value: 1 },
      { key: "m2", value: 2 },
    ]);
    expect(await cache.deletePattern("m*")).toBe(2);
    const handler = cache.route(async () => Response.json({ ok: true }), { ttl: 60 });
    const res = await handler(new Request("http://app.test/items/42"));
    await res.arrayBuffer();
    expect(t.spans("tiercache.delete")[0]?.attributes).toMatchObject({ "tiercache.keys.count": 2 });
    expect(t.spans("tiercache.invalidateTags")[0]?.attributes).toMatchObject({
      "tiercache.tags.count": 2,
      "db.operation.name": "invalidateTags",
    });
    expect(t.spans("tiercache.flush")[0]?.attributes).toMatchObject({ "tiercache.flush.scope": "version" });
    expect(t.spans("tiercache.setMany")[0]?.attributes).toMatchObject({ "tiercache.keys.count": 2 });
    expect(t.spans("tiercache.deletePattern")[0]?.attributes).toMatchObject({ "tiercache.removed": 2 });
    expect(t.spans("tiercache.deletePattern")[0]?.attributes).not.toHaveProperty("tiercache.pattern");
    const [route] = t.spans("tiercache.route");
    expect(route?.attributes).toMatchObject({
      "http.request.method": "GET",
      "http.response.status_code": 200,
      "tiercache.route.result": "miss",
    });
    expect(route?.attributes).not.toHaveProperty("url.path");
    await cache.close();
  });

  it("traceKeys puts keys on spans; traceL1Hits makes a span per L1 hit", async () => {
    const cache = traced({}, { traceKeys: true, traceL1Hits: true });
    await cache.set(SECRET_KEY, 1);
    await cache.get(SECRET_KEY);
    const [hit] = t.spans("tiercache.get");
    expect(hit?.attributes).toMatchObject({ "tiercache.hit": "l1", "tiercache.key": SECRET_KEY });
    await cache.close();
  });

  it("no value and no token in any attribute, event or status, even for failures", async () => {
    const cache = traced();
    await cache.set(SECRET_KEY, SECRET_VALUE);
    await cache
      .getOrSet("fails", () => {
        throw new Error(`database said ${SECRET_VALUE}`);
      })
      .catch(() => {});
    await cache.get(SECRET_KEY);
    const [failed] = t.spans("tiercache.load");
    expect(failed?.status.code).toBe(2); // ERROR
    expect(failed?.attributes["error.type"]).toBe("Error");
    const failedLoads = (await t.points("tiercache.load.duration")).filter(
      (p) => p.attributes["tiercache.load.failed"] === true,
    );
    expect(failedLoads.map((p) => (p.value as { count: number }).count)).toEqual([1]);
    const recorded = JSON.stringify({
      spans: t
        .spans()
        .map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status })),
      metrics: (await t.reader.collect()).resourceMetrics,
    });
    expect(recorded).not.toContain(SECRET_VALUE);
    expect(recorded).not.toContain(SECRET_KEY);
    expect(recorded).not.toContain("test-token-backends");
    await cache.close();
  });
});

describe("OpenTelemetry without Redis reachability, and without opting in", () => {
  it("counts errors and breaker transitions", async () => {
    const t = telemetryFixture();
    const down: Transport = {
      kind: "node-redis",
      send: () => Promise.reject(new Error("connection refused")),
      pipeline: () => Promise.reject(new Error("connection refused")),
      close: async () => {},
    };
    const cache = createCache({
      redis: down,
      env: {},
      logger: { warn() {} },
      breaker: { failureThreshold: 1, resetMs: 60_000 },
      telemetry: otel({ tracerProvider: t.tracerProvider, meterProvider: t.meterProvider }),
    });
    expect(await cache.get("k")).toBeUndefined();
    expect(await t.sum("tiercache.errors")).toBeGreaterThanOrEqual(1);
    expect(await t.sum("tiercache.breaker.transitions", { "tiercache.breaker.state": "open" })).toBe(1);
    const failedRound = (await t.points("tiercache.redis.duration")).find((p) => p.attributes["error.type"]);
    expect(failedRound).toBeDefined();
  });

  it("a globally registered provider is used by otel() and ignored by a cache without telemetry", async () => {
    const t = telemetryFixture();
    trace.setGlobalTracerProvider(t.tracerProvider);
    try {
      const plain = createCache({ redis: false, env: {} });
      await plain.get("k");
      await plain.getOrSet("k", () => 1);
      expect(t.spans()).toHaveLength(0);
      const traced = createCache({
        redis: false,
        env: {},
        telemetry: otel({ meterProvider: t.meterProvider }),
      });
      await traced.get("k");
      expect(t.spans("tiercache.get")).toHaveLength(1);
    } finally {
      trace.disable();
    }
  });
});
