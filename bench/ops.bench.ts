/**
 * Cost of the production-operations features (issue 15), each against the same cache without it:
 *   node --import tsx bench/ops.bench.ts
 * Encryption per L2 read and write (node-redis, L1 off so every read goes to Redis); OpenTelemetry on
 * the L1 hit and the L2 read, without `telemetry`, with `otel()` and no SDK registered, and with an
 * SDK (tracer and meter providers, spans kept in memory). Starts its own redis-server on a free
 * loopback port and stops it at the end.
 */
import { randomBytes } from "node:crypto";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { Bench } from "tinybench";
import { type CacheOptions, createCache } from "../src/index.js";
import { otel } from "../src/otel.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { startRedisServer } from "../test/support/redis-server.js";

const server = await startRedisServer();
const rows: string[] = [];
const row = (...cells: (string | number)[]) => rows.push(`| ${cells.join(" | ")} |`);
const fmt = (n: number, digits = 1) => n.toFixed(digits);
/** Mean microseconds per run over total time (as core.bench.ts: not the mean of per-run rates). */
const micros = (bench: Bench, name: string) => {
  const result = bench.tasks.find((t) => t.name === name)?.result as { period?: number } | undefined;
  return result?.period ? result.period * 1000 : Number.NaN;
};

try {
  const quiet = { warn: () => {} };
  const small = { id: 42, name: "Ada Lovelace", roles: ["admin", "author"], updatedAt: "2024-01-01" };
  const large = { rows: Array.from({ length: 1000 }, (_, i) => ({ i, name: `row ${i}`, score: i * 1.5 })) };
  const key = randomBytes(32).toString("base64");
  const cacheWith = (encryption: boolean) =>
    createCache({
      redis: nodeRedis({ url: server.url }),
      env: {},
      prefix: "bench",
      ttl: "1h",
      l1: false,
      logger: quiet,
      ...(encryption ? { encryption: { key } } : {}),
    });
  const plain = cacheWith(false);
  const sealed = cacheWith(true);
  for (const [label, value] of [
    ["~90 B value", small],
    [`${JSON.stringify(large).length.toLocaleString("en-US")} B value (gzipped)`, large],
  ] as const) {
    await plain.set("p", value);
    await sealed.set("s", value);
    const bench = new Bench({ time: 1500, warmup: true, warmupTime: 300 });
    bench
      .add("write plain", () => plain.set("p", value))
      .add("write encrypted", () => sealed.set("s", value))
      .add("read plain", () => plain.get("p"))
      .add("read encrypted", () => sealed.get("s"));
    await bench.run();
    for (const op of ["write", "read"]) {
      const off = micros(bench, `${op} plain`);
      const on = micros(bench, `${op} encrypted`);
      row(`L2 ${op}, ${label}`, fmt(off), fmt(on), `+${fmt(on - off)} µs`);
    }
  }
  await Promise.all([plain.close(), sealed.close()]);
  console.log("| operation (node-redis, loopback) | plain µs/op | encrypted µs/op | cost |");
  console.log("|---|---:|---:|---:|");
  for (const line of rows) console.log(line);

  // --- OpenTelemetry ------------------------------------------------------------------------------
  class Reader extends MetricReader {
    protected async onShutdown(): Promise<void> {}
    protected async onForceFlush(): Promise<void> {}
  }
  const exporter = new InMemorySpanExporter();
  const sdk = {
    tracerProvider: new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] }),
    meterProvider: new MeterProvider({ readers: [new Reader()] }),
  };
  const variants: [string, Pick<CacheOptions, "telemetry">][] = [
    ["no telemetry", {}],
    ["otel(), no SDK registered", { telemetry: otel() }],
    ["otel() with an SDK", { telemetry: otel(sdk) }],
  ];
  const otelRows: string[] = [];
  for (const [tier, l1] of [
    ["L1 hit", undefined],
    ["L2 read (L1 off)", false],
  ] as const) {
    const bench = new Bench({ time: 1500, warmup: true, warmupTime: 300 });
    const caches = variants.map(([name, options]) => {
      const cache = createCache({
        redis: nodeRedis({ url: server.url }),
        env: {},
        prefix: "bench-otel",
        ttl: "1h",
        logger: quiet,
        ...(l1 === false ? { l1: false as const } : {}),
        ...options,
      });
      bench.add(name, () => cache.get("user:42"));
      return cache;
    });
    await caches[0]?.set("user:42", small);
    for (const cache of caches) await cache.get("user:42");
    await bench.run();
    exporter.reset(); // spans kept in memory would grow with the run
    const base = micros(bench, "no telemetry");
    for (const [name] of variants) {
      const us = micros(bench, name);
      otelRows.push(
        `| ${tier} | ${name} | ${fmt(us, 2)} | ${name === "no telemetry" ? "—" : `+${fmt(us - base, 2)} µs`} |`,
      );
    }
    await Promise.all(caches.map((cache) => cache.close()));
  }
  console.log("\n| get | telemetry | µs/op | cost |");
  console.log("|---|---|---:|---:|");
  for (const line of otelRows) console.log(line);
} finally {
  await server.stop();
}
