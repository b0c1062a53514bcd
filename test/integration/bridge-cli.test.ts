import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isolatedRedisUrl } from "../support/redis-db.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TOKEN = `cli-secret-${process.pid}-${Date.now()}`;

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const running = new Set<ChildProcess>();
let redisUrl: string;

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
});

afterAll(() => {
  for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
});

/** Runs `tiercache bridge …` from source, with no token in its environment unless given. */
function bridgeCli(args: string[], env: Record<string, string> = {}): Run {
  const { BRIDGE_TOKEN, UPSTASH_REDIS_REST_TOKEN, REDIS_URL, ...inherited } = process.env;
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "bridge", ...args], {
    cwd: ROOT,
    env: { ...inherited, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const exited = once(child, "exit").then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

/** Waits for the one line announcing the URL. */
async function announcedUrl(run: Run): Promise<string> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const match = /tiercache bridge: (http:\/\/127\.0\.0\.1:\d+) → /.exec(run.output());
    if (match) return match[1]!;
    if (run.child.exitCode !== null) throw new Error(`bridge exited early: ${run.output()}`);
    if (Date.now() > deadline) throw new Error(`no URL announced: ${run.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function ping(url: string, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(url, { method: "POST", body: '["PING"]', headers });
  return { status: res.status, body: await res.json() };
}

describe("tiercache bridge (CLI)", () => {
  it("refuses to start without a token", async () => {
    const run = bridgeCli(["--port", "0", "--redis", redisUrl]);
    expect(await run.exited).not.toBe(0);
    expect(run.output()).toMatch(/refusing to start without a token: pass --token/);
  });

  it("starts with --token, answers, and exits 0 on SIGTERM without ever printing the token", async () => {
    const run = bridgeCli(["--port", "0", "--token", TOKEN, "--redis", redisUrl]);
    const url = await announcedUrl(run);
    expect(await ping(url, TOKEN)).toEqual({ status: 200, body: { result: "PONG" } });
    expect((await ping(url, "wrong")).status).toBe(401);
    expect((await ping(url)).status).toBe(401);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.output().trim().split("\n")).toHaveLength(1);
    expect(run.output()).not.toContain(TOKEN);
    await expect(fetch(url, { method: "POST", body: '["PING"]' })).rejects.toThrow();
  });

  it("takes the token from BRIDGE_TOKEN and REDIS_URL from the environment, and exits 0 on SIGINT", async () => {
    const run = bridgeCli(["--port", "0"], { BRIDGE_TOKEN: TOKEN, REDIS_URL: redisUrl });
    const url = await announcedUrl(run);
    expect(await ping(url, TOKEN)).toEqual({ status: 200, body: { result: "PONG" } });
    run.child.kill("SIGINT");
    expect(await run.exited).toBe(0);
    expect(run.output()).not.toContain(TOKEN);
  });

  it("takes the token from UPSTASH_REDIS_REST_TOKEN", async () => {
    const run = bridgeCli(["--port", "0", "--redis", redisUrl], { UPSTASH_REDIS_REST_TOKEN: TOKEN });
    const url = await announcedUrl(run);
    expect(await ping(url, TOKEN)).toEqual({ status: 200, body: { result: "PONG" } });
    expect((await ping(url, "wrong")).status).toBe(401);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  });

  it("accepts requests without a token only with --insecure, and says so", async () => {
    const run = bridgeCli(["--port", "0", "--insecure", "--redis", redisUrl]);
    const url = await announcedUrl(run);
    expect(run.output()).toMatch(/insecure/);
    expect(await ping(url)).toEqual({ status: 200, body: { result: "PONG" } });
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
  });

  it("fails with a clear message, hiding the Redis password, when Redis refuses the connection", async () => {
    const password = `pw-${TOKEN}`;
    const url = new URL(redisUrl);
    url.password = password;
    const run = bridgeCli(["--port", "0", "--token", TOKEN, "--redis", url.toString()]);
    expect(await run.exited).toBe(1);
    expect(run.output()).toMatch(/cannot connect to Redis at redis:\/\/:\*\*\*@127\.0\.0\.1/);
    expect(run.output()).not.toContain(password);
  });

  it("rejects a bad --port", async () => {
    const run = bridgeCli(["--port", "http", "--token", TOKEN]);
    expect(await run.exited).toBe(2);
    expect(run.output()).toMatch(/--port must be a port number/);
  });
});
