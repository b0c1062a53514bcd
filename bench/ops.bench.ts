/**
 * Cost of the production-operations features (issue 15), each against the same cache without it:
 *   node --import tsx bench/ops.bench.ts
 * Encryption per L2 read and write (node-redis, L1 off so every read goes to Redis); OpenTelemetry on
 * the L1 hit and the L2 read, without `telemetry`, with `otel()` and no SDK registered, and with an
 * SDK (tracer and meter providers, spans batched to memory). Variants run in interleaved rounds and
 * each reports its median round, so a machine whose load drifts during the run (shared CI cores)
 * shifts every variant alike. Starts its own redis-server on a free loopback port and stops it.
 */
import { randomBytes } from "node:crypto";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } from "@opentelemetry/sdk-trace-base";
import { type Cache, type CacheOptions, createCache } from "../src/index.js";
import { otel } from "../src/otel.js";
import { nodeRedis } from "../src/transports/node-redis.js";
import { startRedisServer } from "../test/support/redis-server.js";

const ROUNDS = 21;
const server = await startRedisServer();
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** µs per operation of each variant: the median over interleaved rounds of `perRound` sequential runs. */
async function compare(
  variants: [string, () => Promise<unknown>][],
  perRound: number,
): Promise<Map<string, number>> {
  const samples = new Map(variants.map(([name]) => [name, [] as number[]]));
  for (const [, run] of variants) for (let i = 0; i < perRound; i++) await run(); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, run] of variants) {
      const started = performance.now();
      for (let i = 0; i < perRound; i++) await run();
      samples.get(name)?.push(((performance.now() - started) * 1000) / perRound);
    }
  }
  return new Map([...samples].map(([name, values]) => [name, median(values)]));
}

const quiet = { warn: () => {} };
const on = (options: CacheOptions): Cache =>
  createCache({
    redis: nodeRedis({ url: server.url }),
    env: {},
    prefix: "bench",
    ttl: "1h",
    logger: quiet,
    ...options,
  });

try {
  const small = { id: 42, name: "Ada Lovelace", roles: ["admin", "author"], updatedAt: "2024-01-01" };
  const large = { rows: Array.from({ length: 1000 }, (_, i) => ({ i, name: `row ${i}`, score: i * 1.5 })) };
  const key = randomBytes(32).toString("base64");
  const plain = on({ l1: false });
  const sealed = on({ l1: false, encryption: { key } });
  console.log("| operation (node-redis, loopback) | plain µs/op | encrypted µs/op | cost |");
  console.log("|---|---:|---:|---:|");
  for (const [label, value, perRound] of [
    [`${JSON.stringify(small).length} B value`, small, 200],
    [`${JSON.stringify(large).length.toLocaleString("en-US")} B value (gzipped)`, large, 20],
  ] as const) {
    await plain.set("p", value);
    await sealed.set("s", value);
    const result = await compare(
      [
        ["write plain", () => plain.set("p", value)],
        ["write encrypted", () => sealed.set("s", value)],
        ["read plain", () => plain.get("p")],
        ["read encrypted", () => sealed.get("s")],
      ],
      perRound,
    );
    for (const op of ["write", "read"]) {
      const off = result.get(`${op} plain`) ?? Number.NaN;
      const onCost = result.get(`${op} encrypted`) ?? Number.NaN;
      console.log(
        `| L2 ${op}, ${label} | ${fmt(off)} | ${fmt(onCost)} | ${onCost >= off ? "+" : ""}${fmt(onCost - off)} µs |`,
      );
    }
  }
  await Promise.all([plain.close(), sealed.close()]);

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
  console.log("\n| get | telemetry | µs/op | cost |");
  console.log("|---|---|---:|---:|");
  for (const [tier, l1, perRound] of [
    ["L1 hit", {}, 20_000],
    ["L2 read (L1 off)", { l1: false as const }, 200],
  ] as const) {
    const caches = variants.map(
      ([name, options]) => [name, on({ ...l1, prefix: "bench-otel", ...options })] as const,
    );
    await caches[0]?.[1].set("user:42", small);
    const result = await compare(
      caches.map(([name, cache]) => [name, () => cache.get("user:42")]),
      perRound,
    );
    exporter.reset();
    const base = result.get("no telemetry") ?? Number.NaN;
    for (const [name] of variants) {
      const us = result.get(name) ?? Number.NaN;
      const cost = name === "no telemetry" ? "—" : `${us >= base ? "+" : ""}${fmt(us - base, 2)} µs`;
      console.log(`| ${tier} | ${name} | ${fmt(us, 2)} | ${cost} |`);
    }
    await Promise.all(caches.map(([, cache]) => cache.close()));
  }
} finally {
  await server.stop();
}
