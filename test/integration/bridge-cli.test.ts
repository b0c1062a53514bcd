import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
let scratch: string;

beforeAll(async () => {
  redisUrl = await isolatedRedisUrl();
  scratch = mkdtempSync(join(tmpdir(), "tiercache-bridge-cli-"));
});

afterAll(() => {
  for (const child of running) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs `tiercache bridge …` from source, with no token in its environment unless given. */
function bridgeCli(args: string[], env: Record<string, string> = {}): Run {
  const { TIERCACHE_BRIDGE_TOKEN, BRIDGE_TOKEN, UPSTASH_REDIS_REST_TOKEN, REDIS_URL, ...inherited } =
    process.env;
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

  it("refuses tokens under 16 characters and blank ones, from argv, the environment or a file, never printing them", async () => {
    const short = "shortTok1234567"; // 15 characters
    const file = join(scratch, "short-token");
    writeFileSync(file, `${short}\n`);
    const blankFile = join(scratch, "blank-token");
    writeFileSync(blankFile, "  \n");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--token", "a"], {}, /the --token is shorter than 16 characters/],
      [["--token", short], {}, /the --token is shorter than 16 characters/],
      [["--token", "   "], {}, /the --token is blank/],
      [["--token", `${TOKEN} with spaces`], {}, /the --token must be visible ASCII/],
      [[], { TIERCACHE_BRIDGE_TOKEN: short }, /the TIERCACHE_BRIDGE_TOKEN is shorter than 16 characters/],
      [["--token-file", file], {}, /the token in .*short-token is shorter than 16 characters/],
      [["--token-file", blankFile], {}, /the token in .*blank-token is blank/],
      [["--token-file", join(scratch, "missing")], {}, /cannot read --token-file .*missing \(ENOENT\)/],
      [["--token", TOKEN, "--token-file", file], {}, /either --token or --token-file, not both/],
    ];
    // One at a time: each is a Node process, and the machine is shared.
    for (const [args, env, message] of cases) {
      const run = bridgeCli(["--port", "0", "--redis", redisUrl, ...args], env);
      expect(await run.exited, args.join(" ")).toBe(2);
      expect(run.output(), args.join(" ")).toMatch(message);
      expect(run.output()).not.toContain(short);
      expect(run.output()).not.toContain("tiercache bridge: http");
    }
  }, 60_000);

  it("takes the token from TIERCACHE_BRIDGE_TOKEN, ahead of BRIDGE_TOKEN", async () => {
    const run = bridgeCli(["--port", "0", "--redis", redisUrl], {
      TIERCACHE_BRIDGE_TOKEN: TOKEN,
      BRIDGE_TOKEN: `other-${TOKEN}`,
    });
    const url = await announcedUrl(run);
    expect(await ping(url, TOKEN)).toEqual({ status: 200, body: { result: "PONG" } });
    expect((await ping(url, `other-${TOKEN}`)).status).toBe(401);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.output()).not.toContain(TOKEN);
  });

  it("takes the token from --token-file, ignoring the trailing newline, and keeps it out of argv", async () => {
    const file = join(scratch, "token");
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const run = bridgeCli(["--port", "0", "--redis", redisUrl, "--token-file", file]);
    const url = await announcedUrl(run);
    expect(await ping(url, TOKEN)).toEqual({ status: 200, body: { result: "PONG" } });
    expect((await ping(url)).status).toBe(401);
    expect(run.child.spawnargs.join(" ")).not.toContain(TOKEN);
    run.child.kill("SIGTERM");
    expect(await run.exited).toBe(0);
    expect(run.output()).not.toContain(TOKEN);
  });

  it("refuses admin commands unless --allow-admin, and browser origins unless --allow-origin", async () => {
    const strict = bridgeCli(["--port", "0", "--token", TOKEN, "--redis", redisUrl]);
    const lax = bridgeCli([
      "--port",
      "0",
      "--token",
      TOKEN,
      "--redis",
      redisUrl,
      "--allow-admin",
      "--allow-origin",
      "http://localhost:3000",
    ]);
    const [strictUrl, laxUrl] = await Promise.all([announcedUrl(strict), announcedUrl(lax)]);
    const configGet = (url: string) =>
      fetch(url, {
        method: "POST",
        body: '["CONFIG","GET","databases"]',
        headers: { authorization: `Bearer ${TOKEN}` },
      });
    expect((await configGet(strictUrl)).status).toBe(400);
    expect(await (await configGet(laxUrl)).json()).toEqual({ result: ["databases", expect.any(String)] });
    const preflight = (url: string) =>
      fetch(url, {
        method: "OPTIONS",
        headers: { origin: "http://localhost:3000", "access-control-request-method": "POST" },
      });
    expect((await preflight(strictUrl)).status).toBe(403);
    expect((await preflight(laxUrl)).status).toBe(204);
    strict.child.kill("SIGTERM");
    lax.child.kill("SIGTERM");
    expect(await strict.exited).toBe(0);
    expect(await lax.exited).toBe(0);
  });
});
