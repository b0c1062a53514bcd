import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, waitForPort } from "./redis-server.js";

const run = promisify(execFile);

/** One redis-server process this test process started; `kill()` SIGKILLs it by PID. */
export interface NodeProcess {
  readonly port: number;
  readonly pid: number;
  readonly alive: boolean;
  kill(): Promise<void>;
}

function spawnServer(args: string[], port: number): Promise<NodeProcess> {
  const child: ChildProcess = spawn("redis-server", args, { stdio: "ignore" });
  const exited = once(child, "exit");
  const handle: NodeProcess = {
    port,
    pid: child.pid ?? -1,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    async kill() {
      if (!handle.alive) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
  return Promise.race([
    waitForPort(port).then(async () => {
      // Another process may have taken the port between freePort() and the bind: then whoever
      // answers is not ours.
      const info = await cli(port, "info", "server").catch(() => "");
      if (!info.includes(`process_id:${handle.pid}`)) {
        await handle.kill();
        throw new Error(`port ${port} was taken by another process`);
      }
      return handle;
    }),
    exited.then(() => {
      throw new Error(`redis-server exited before listening on ${port}`);
    }),
  ]);
}

/**
 * Starts a server on a fresh free port until one is truly ours (a port can be taken meanwhile), in
 * a directory of its own under `dir`: replication writes RDB files, and a node must never load
 * another's (or leave one in the working directory).
 */
async function spawnOnFreePort(
  dir: string,
  args: (port: number) => string[],
  pick: () => Promise<number>,
): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await pick();
    const own = join(dir, `node-${port}`);
    mkdirSync(own, { recursive: true });
    try {
      return await spawnServer([...args(port), "--dir", own], port);
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

const COMMON = [
  "--bind",
  "127.0.0.1",
  "--save",
  "",
  "--appendonly",
  "no",
  "--protected-mode",
  "no",
  "--loglevel",
  "warning",
];

/** A free port whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port > 55535 || taken.has(port) || taken.has(port + 10000)) continue;
    try {
      const { createServer } = await import("node:net");
      const probe = createServer();
      await new Promise<void>((resolve, reject) => {
        probe.once("error", reject);
        probe.listen(port + 10000, "127.0.0.1", () => resolve());
      });
      await new Promise((resolve) => probe.close(resolve));
      taken.add(port);
      taken.add(port + 10000);
      return port;
    } catch {
      // bus port in use: try another
    }
  }
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args]);
  return stdout;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

/** A local Redis Cluster: 3 primaries + 3 replicas on free loopback ports. */
export interface RedisClusterHandle {
  /** Every node, in start order (which is primary changes with failovers). */
  readonly nodes: NodeProcess[];
  /** `host:port` of every node, for `rootNodes` / `REDIS_CLUSTER_NODES`. */
  readonly addresses: string[];
  /** Ports of the current primaries, as the cluster reports them now. */
  primaries(): Promise<number[]>;
  /** Resolves once every slot is served and `cluster_state:ok` again (after a failover). */
  settled(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a real cluster from `redis-server` binaries: `--cluster-enabled yes` with per-node config
 * files in a temp dir, joined by `redis-cli --cluster create … --cluster-replicas 1`. A short
 * `cluster-node-timeout` makes a killed primary's replica take over within ~2 s.
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), "tiercache-cluster-"));
  const taken = new Set<number>();
  const nodes = await Promise.all(
    Array.from({ length: 6 }, () =>
      spawnOnFreePort(
        dir,
        (port) => [
          "--port",
          String(port),
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, `nodes-${port}.conf`),
          "--cluster-node-timeout",
          "1000",
          ...COMMON,
        ],
        () => freeClusterPort(taken),
      ),
    ),
  );
  const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run("redis-cli", ["--cluster", "create", ...addresses, "--cluster-replicas", "1", "--cluster-yes"]);
  } catch (error) {
    await stop();
    throw error;
  }
  const handle: RedisClusterHandle = {
    nodes,
    addresses,
    async primaries() {
      const live = nodes.find((node) => node.alive);
      if (!live) return [];
      const lines = (await cli(live.port, "cluster", "nodes")).trim().split("\n");
      return lines
        .filter((line) => line.includes("master") && !line.includes("fail"))
        .map((line) => Number(/:(\d+)@/.exec(line)?.[1]));
    },
    async settled(timeoutMs = 15_000) {
      await until("cluster_state:ok on every live node", timeoutMs, async () => {
        for (const node of nodes.filter((n) => n.alive)) {
          if (!(await cli(node.port, "cluster", "info")).includes("cluster_state:ok")) return false;
        }
        return (await handle.primaries()).length === 3;
      });
    },
    stop,
  };
  try {
    await handle.settled(20_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return handle;
}

/** A primary with one replica, watched by three Sentinels (quorum 2) under the name `mymaster`. */
export interface RedisSentinelHandle {
  readonly name: string;
  readonly primary: NodeProcess;
  readonly replica: NodeProcess;
  readonly sentinels: NodeProcess[];
  /** `host:port` of every Sentinel, for `sentinelRootNodes` / `REDIS_SENTINELS`. */
  readonly sentinelAddresses: string[];
  /** The port the Sentinels report as the primary now. */
  currentPrimary(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts 1 primary, 1 replica and 3 × `redis-server <conf> --sentinel`, with fast failure detection. */
export async function startRedisSentinel(): Promise<RedisSentinelHandle> {
  const name = "mymaster";
  const dir = await mkdtemp(join(tmpdir(), "tiercache-sentinel-"));
  const started: NodeProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((node) => node.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const primary = await spawnOnFreePort(dir, (port) => ["--port", String(port), ...COMMON], freePort);
    started.push(primary);
    const replica = await spawnOnFreePort(
      dir,
      (port) => ["--port", String(port), "--replicaof", "127.0.0.1", String(primary.port), ...COMMON],
      freePort,
    );
    started.push(replica);
    await until("replica in sync", 10_000, async () =>
      (await cli(replica.port, "info", "replication")).includes("master_link_status:up"),
    );
    const sentinels: NodeProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await spawnOnFreePort(
        dir,
        (port) => {
          const conf = join(dir, `sentinel-${port}.conf`);
          writeFileSync(
            conf,
            [
              `port ${port}`,
              "bind 127.0.0.1",
              "protected-mode no",
              `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
              `sentinel down-after-milliseconds ${name} 1000`,
              `sentinel failover-timeout ${name} 5000`,
              `sentinel parallel-syncs ${name} 1`,
              "",
            ].join("\n"),
          );
          return [conf, "--sentinel"];
        },
        freePort,
      );
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    const handle: RedisSentinelHandle = {
      name,
      primary,
      replica,
      sentinels,
      sentinelAddresses: sentinels.map((s) => `127.0.0.1:${s.port}`),
      async currentPrimary() {
        const live = sentinels.find((s) => s.alive) as NodeProcess;
        const reply = await cli(live.port, "sentinel", "get-master-addr-by-name", name);
        return Number(reply.trim().split("\n")[1]);
      },
      stop,
    };
    // Every Sentinel has found the replica and the other Sentinels: a failover can be agreed on.
    await until("sentinels ready", 15_000, async () => {
      for (const s of sentinels) {
        const info = await cli(s.port, "sentinel", "master", name);
        const lines = info.trim().split("\n");
        const field = (key: string) => Number(lines[lines.indexOf(key) + 1]);
        if (field("num-slaves") < 1 || field("num-other-sentinels") < 2) return false;
      }
      return true;
    });
    return handle;
  } catch (error) {
    await stop();
    throw error;
  }
}
