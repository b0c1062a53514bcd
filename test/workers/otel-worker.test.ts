import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tcpAsOnWorkerd } from "../support/workerd-bundle.js";

/**
 * tiercache/otel inside workerd: `@opentelemetry/api` and the SDK bundled for the browser platform
 * (as wrangler does; the SDK's Node build needs `os` and `util`), spans and metrics recorded for the
 * reads of an L1-only cache.
 */
const root = fileURLToPath(new URL("../../", import.meta.url));

const ENTRY = `
import { createCache } from "./src/index.ts";
import { otel } from "./src/otel.ts";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
class Reader extends MetricReader { async onShutdown() {} async onForceFlush() {} }
let state;
export default {
  async fetch(req, env) {
    if (!state) {
      const exporter = new InMemorySpanExporter();
      const reader = new Reader();
      const telemetry = otel({
        tracerProvider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
        meterProvider: new MeterProvider({ readers: [reader] }),
      });
      state = { exporter, reader, cache: createCache({ env, redis: false, telemetry }) };
    }
    const { exporter, reader, cache } = state;
    await cache.get("a");
    await cache.getOrSet("a", () => 1);
    await cache.get("a");
    const { resourceMetrics } = await reader.collect();
    const hits = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === "tiercache.hits");
    return Response.json({
      spans: exporter.getFinishedSpans().map((s) => [s.name, s.attributes["tiercache.hit"] ?? null]),
      hits: hits?.dataPoints.map((p) => [p.attributes["tiercache.tier"], p.value]) ?? [],
    });
  },
};
`;

describe("tiercache/otel in workerd", () => {
  let mf: Miniflare;
  beforeAll(async () => {
    const result = await build({
      stdin: { contents: ENTRY, resolveDir: root, sourcefile: "otel-worker.js", loader: "js" },
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      conditions: ["workerd", "worker", "browser"],
      plugins: [tcpAsOnWorkerd],
      logLevel: "silent",
    });
    const script = result.outputFiles[0]?.text ?? "";
    mf = new Miniflare({
      modules: [{ type: "ESModule", path: `${root}worker.mjs`, contents: script }],
      compatibilityDate: "2026-04-01",
    });
    await mf.ready;
  }, 60_000);
  afterAll(async () => {
    await mf?.dispose();
  });

  it("records spans and metrics", async () => {
    const res = await mf.dispatchFetch("http://worker.test/");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      spans: [
        ["tiercache.get", "miss"],
        ["tiercache.load", null],
        ["tiercache.getOrSet", "miss"],
      ],
      hits: [
        ["l1", 1],
        ["l2", 0],
      ],
    });
  });
});
