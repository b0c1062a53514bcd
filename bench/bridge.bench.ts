/**
 * The bridge's cost: GET through the bridge versus the same GET over TCP, on loopback, in one run.
 *   node --import tsx bench/bridge.bench.ts
 * Starts its own redis-server and the bridge (as the CLI runs it, in its own process, so the load
 * generator does not share the bridge's event loop), stops both, prints a markdown table and
 * writes it into the "## Bridge (issue 2)" section of bench/RESULTS.md.
 */
import { readFile, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { Redis } from "@upstash/redis";
import { createClient } from "redis";
import { startRedisServer } from "../test/support/redis-server.js";
import { startBridgeProcess } from "./support/bridge-process.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const WARMUP_MS = 500;
const CONCURRENCY = [1, 32];
const TOKEN = "bench-token-0123456789"; // the CLI refuses tokens under 16 characters
const KEY = "bench:bridge:user";
const VALUE = JSON.stringify({ id: 42, name: "Ada Lovelace", roles: ["admin", "author"] });

interface Result {
  client: string;
  concurrency: number;
  rps: number;
  p50: number;
  p99: number;
  /** Share of one core the bridge process used meanwhile. */
  bridgeCpu: number;
}

/** Closed loop: `concurrency` callers each issue `get` back to back for SECONDS, after a warm-up. */
async function measure(
  get: () => Promise<unknown>,
  concurrency: number,
  cpuSeconds: () => number,
): Promise<Omit<Result, "client">> {
  const latencies: number[] = [];
  let recording = false;
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const start = performance.now();
      const value = await get();
      if (value !== VALUE) throw new Error(`unexpected GET reply: ${String(value).slice(0, 80)}`);
      if (recording) latencies.push(performance.now() - start);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  recording = true;
  const started = performance.now();
  const cpuStarted = cpuSeconds();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  recording = false;
  const elapsed = performance.now() - started;
  const bridgeCpu = (cpuSeconds() - cpuStarted) / (elapsed / 1000);
  stop = true;
  await Promise.all(workers);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN;
  return { concurrency, rps: latencies.length / (elapsed / 1000), p50: at(0.5), p99: at(0.99), bridgeCpu };
}

const loadBefore = loadavg()[0]!;
const redisServer = await startRedisServer();
const results: Result[] = [];
try {
  const redisUrl = `${redisServer.url}/0`;
  // As tiercache's TCP transport uses it: no per-command AbortSignal timeout.
  const tcp = createClient({ url: redisUrl, commandOptions: { timeout: 0 } });
  await tcp.connect();
  await tcp.set(KEY, VALUE);
  const bridge = await startBridgeProcess(redisUrl, TOKEN);
  try {
    const body = JSON.stringify(["GET", KEY]);
    const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    const httpGet = () =>
      new Promise<unknown>((resolve, reject) => {
        const req = request(bridge.url, { method: "POST", agent, headers }, (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk) => {
            text += chunk;
          });
          res.on("end", () => resolve((JSON.parse(text) as { result: unknown }).result));
        });
        req.on("error", reject);
        req.end(body);
      });
    const fetchGet = async () => {
      const res = await fetch(bridge.url, { method: "POST", headers, body });
      return ((await res.json()) as { result: unknown }).result;
    };
    const upstash = new Redis({
      url: bridge.url,
      token: TOKEN,
      enableTelemetry: false,
      automaticDeserialization: false,
    });
    const upstashSerial = new Redis({
      url: bridge.url,
      token: TOKEN,
      enableTelemetry: false,
      automaticDeserialization: false,
      enableAutoPipelining: false,
    });
    const clients: [string, () => Promise<unknown>][] = [
      ["TCP: node-redis", () => tcp.get(KEY)],
      ["bridge: node:http keep-alive", httpGet],
      ["bridge: fetch (undici, keep-alive)", fetchGet],
      ["bridge: @upstash/redis (auto-pipelining)", () => upstash.get(KEY)],
      ["bridge: @upstash/redis (no auto-pipelining)", () => upstashSerial.get(KEY)],
    ];
    for (const concurrency of CONCURRENCY) {
      for (const [client, get] of clients) {
        results.push({ client, ...(await measure(get, concurrency, bridge.cpuSeconds)) });
        const r = results.at(-1)!;
        console.error(`${client} c=${concurrency}: ${fmt(r.rps)} req/s, p50 ${ms(r.p50)}, p99 ${ms(r.p99)}`);
      }
    }
    agent.destroy();
  } finally {
    await bridge.stop();
    tcp.destroy();
  }
} finally {
  await redisServer.stop();
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}
function ms(n: number): string {
  return `${n.toFixed(3)} ms`;
}
function find(client: string, concurrency: number): Result {
  return results.find((r) => r.client === client && r.concurrency === concurrency)!;
}

const table = [
  "| client | concurrency | req/s | p50 | p99 | bridge CPU |",
  "|---|---:|---:|---:|---:|---:|",
  ...results.map(
    (r) =>
      `| ${r.client} | ${r.concurrency} | ${fmt(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ` +
      `${r.client.startsWith("bridge") && Number.isFinite(r.bridgeCpu) ? `${Math.round(r.bridgeCpu * 100)}%` : "—"} |`,
  ),
].join("\n");
const tcp1 = find("TCP: node-redis", 1);
const http1 = find("bridge: node:http keep-alive", 1);
const fetch1 = find("bridge: fetch (undici, keep-alive)", 1);
const http32 = find("bridge: node:http keep-alive", 32);
const fetch32 = find("bridge: fetch (undici, keep-alive)", 32);
const pipelined32 = find("bridge: @upstash/redis (auto-pipelining)", 32);
const added = http1.p50 - tcp1.p50;
const summary = [
  `- Added at p50, concurrency 1: **${ms(added)}** with a lean HTTP client (node:http), ` +
    `${ms(fetch1.p50 - tcp1.p50)} with fetch — goal < 1 ms: **${added < 1 ? "met" : "not met"}**.`,
  `- Concurrency 32: the bridge sustains **${fmt(http32.rps)} single-GET requests/s** (node:http client) — ` +
    `goal ≥ 5,000 req/s: **${http32.rps >= 5000 ? "met" : "not met"}**. A fetch client tops out at ` +
    `${fmt(fetch32.rps)} req/s here: undici's fetch in the client process, not the bridge (see its CPU column), is the limit.`,
  `- \`@upstash/redis\` with auto-pipelining folds concurrent GETs into one \`/pipeline\` request: ` +
    `${fmt(pipelined32.rps)} GETs/s at concurrency 32 — batches, not single requests.`,
].join("\n");

const section = [
  "## Bridge (issue 2)",
  "",
  `\`node --import tsx bench/bridge.bench.ts\` — GET of a ${VALUE.length}-byte value on loopback; bridge started by the CLI in ` +
    `its own process (2 shared Redis connections); closed loop, ${SECONDS} s per row after ${WARMUP_MS} ms warm-up. ` +
    `${cpus().length}× ${cpus()[0]?.model ?? "CPU"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. ` +
    "Client, bridge and redis-server share the machine's cores; *bridge CPU* is the bridge process's " +
    `share of one core during the row. Load average (1 min) before the run: ${loadBefore.toFixed(2)}.`,
  "",
  table,
  "",
  summary,
  "",
].join("\n");
console.log(`${table}\n\n${summary}`);

const resultsFile = fileURLToPath(new URL("RESULTS.md", import.meta.url));
const existing = await readFile(resultsFile, "utf8").catch(() => "# Benchmark results\n");
const start = existing.indexOf("## Bridge (issue 2)");
let updated: string;
if (start === -1) {
  updated = `${existing.trimEnd()}\n\n${section}`;
} else {
  const next = existing.indexOf("\n## ", start + 1);
  updated = existing.slice(0, start) + section + (next === -1 ? "" : `\n${existing.slice(next + 1)}`);
}
await writeFile(resultsFile, updated);
