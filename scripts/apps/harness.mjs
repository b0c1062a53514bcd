/**
 * The bookkeeping of `npm run test:apps`: checks and their one-line results, the processes it
 * started (each in its own process group, ended by PID), commands with time limits, free ports.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { stripVTControlCharacters } from "node:util";

const started = Date.now();
export const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
export const log = (message) => console.log(`[apps +${elapsed()}] ${message}`);

const results = { passed: 0, failed: 0 };

/**
 * Runs one check and prints `ok - name` or `not ok - name: why`. A check whose prerequisite failed
 * (`needs` false) is counted as failed without running, so the total is the same on every run.
 * Resolves whether it passed; never rejects.
 */
export async function check(name, fn, { needs = true } = {}) {
  if (!needs) {
    results.failed++;
    console.log(`not ok - ${name}: not run, a step it needs failed`);
    return false;
  }
  const t0 = Date.now();
  try {
    const note = await fn();
    results.passed++;
    console.log(`ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s)${note ? ` — ${note}` : ""}`);
    return true;
  } catch (error) {
    results.failed++;
    const why = error instanceof Error ? error.message : String(error);
    console.log(`not ok - ${name} (${((Date.now() - t0) / 1000).toFixed(1)}s): ${why}`);
    return false;
  }
}

export function summary() {
  return { ...results, line: `${results.passed} passed, ${results.failed} failed` };
}

/** Everything this run spawned and has not seen exit: ended by `stopAll()`. */
const live = new Set();

/**
 * A long-running process in its own process group (so ending it ends what it forked), with its
 * output kept (`output()`) and optionally echoed. `stop()` sends SIGTERM to the group, SIGKILL after 3 s.
 */
export function start(command, args, { cwd, env, echo = false, name = command }) {
  const child = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  const keep = (chunk) => {
    // Colours off, whatever the tool decided about the terminal: the text is matched and quoted.
    text += stripVTControlCharacters(chunk);
    if (text.length > 2_000_000) text = text.slice(-1_000_000);
    if (echo) process.stdout.write(chunk);
  };
  child.stdout.setEncoding("utf8").on("data", keep);
  child.stderr.setEncoding("utf8").on("data", keep);
  const exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      live.delete(handle);
      resolve(code ?? signal);
    });
    child.once("error", (error) => {
      live.delete(handle);
      keep(`${name}: ${error.message}\n`);
      resolve("error");
    });
  });
  const handle = {
    name,
    pid: child.pid,
    exited,
    output: () => text,
    running: () => child.exitCode === null && child.signalCode === null && live.has(handle),
    async stop() {
      if (!handle.running()) return exited;
      signalGroup(child.pid, "SIGTERM");
      const killer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), 3000);
      await exited;
      clearTimeout(killer);
      // Children that ignored SIGTERM while their leader exited.
      signalGroup(child.pid, "SIGKILL");
      return exited;
    },
  };
  live.add(handle);
  return handle;
}

function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

export async function stopAll() {
  await Promise.all([...live].map((handle) => handle.stop()));
}

/** Ends every process group this run started, synchronously (for `exit` and signals). */
export function killAllNow() {
  for (const handle of live) signalGroup(handle.pid, "SIGKILL");
}

/**
 * Runs a command to completion within `timeoutMs`; resolves its output, rejects (with the output's
 * tail) on a non-zero exit or when out of time.
 */
export async function run(command, args, { cwd, env, timeoutMs, name = `${command} ${args.join(" ")}` }) {
  const proc = start(command, args, { cwd, env, name });
  let timer;
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === "timeout") await proc.stop();
  if (outcome !== 0) {
    const why = outcome === "timeout" ? `over ${timeoutMs / 1000}s` : `exited with ${outcome}`;
    throw new Error(`${name}: ${why}\n${tail(proc.output(), 40)}`);
  }
  return proc.output();
}

export function tail(text, lines) {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** A free TCP port on loopback, chosen by the OS. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it resolves truthy; rejects after `timeoutMs`, or as soon as `proc` exits. */
export async function waitFor(what, probe, { timeoutMs, proc }) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc && !proc.running()) {
      throw new Error(
        `${proc.name} exited (${await proc.exited}) before ${what}\n${tail(proc.output(), 30)}`,
      );
    }
    try {
      const value = await probe();
      if (value) return value;
    } catch {
      // not yet
    }
    await sleep(150);
  }
  throw new Error(`no ${what} within ${timeoutMs / 1000}s${proc ? `\n${tail(proc.output(), 30)}` : ""}`);
}

/**
 * The environment for everything this run spawns: this process's, minus what `npm run` and the
 * developer's shell put there that would leak into the apps (npm's own settings, any Redis config).
 */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      /^(npm_|INIT_CWD$|REDIS_|UPSTASH_|KV_|CACHE_|TIERCACHE_|BRIDGE_|VERCEL|NEXT_|CLOUDFLARE_|WRANGLER_)/.test(
        name,
      )
    )
      continue;
    env[name] = value;
  }
  return {
    ...env,
    NEXT_TELEMETRY_DISABLED: "1",
    WRANGLER_SEND_METRICS: "false",
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
    ...extra,
  };
}
