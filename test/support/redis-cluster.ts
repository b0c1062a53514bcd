import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, waitForPort } from "./redis-server.js";
import type { TestCerts } from "./tls-certs.js";

const run = promisify(execFile);

/** One redis-server process this test process started; `kill()` SIGKILLs it by PID. */
export interface NodeProcess {
  readonly port: number;
  readonly pid: number;
  /** Running and not frozen: it answers. */
  readonly alive: boolean;
  kill(): Promise<void>;
  /** SIGSTOP: it keeps its sockets open and answers nothing (a frozen or partitioned node). */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  thaw(): void;
}

/**
 * What the servers require: a password (`requirepass`, and `masterauth` for their replication) and
 * TLS only (`--port 0`, the port given is the TLS port; cluster bus and replication over TLS too).
 */
export interface Protection {
  password?: string;
  tls?: TestCerts;
}

/** Server arguments to listen on `port` with this protection. */
function listenArgs(port: number, protection: Protection = {}): string[] {
  const args = protection.tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        ...tlsFiles(protection.tls),
        "--tls-cluster",
        "yes",
        "--tls-replication",
        "yes",
      ]
    : ["--port", String(port)];
  if (protection.password)
    args.push("--requirepass", protection.password, "--masterauth", protection.password);
  return args;
}

function tlsFiles(tls: TestCerts): string[] {
  // Clients are not asked for a certificate: what is tested is that they check the server's.
  return [
    "--tls-cert-file",
    tls.certFile,
    "--tls-key-file",
    tls.keyFile,
    "--tls-ca-cert-file",
    tls.caFile,
    "--tls-auth-clients",
    "no",
  ];
}

/** redis-cli arguments to reach a server with this protection. */
export function cliArgs(protection: Protection = {}): string[] {
  return [
    ...(protection.tls ? ["--tls", "--cacert", protection.tls.caFile] : []),
    ...(protection.password ? ["-a", protection.password, "--no-auth-warning"] : []),
  ];
}

function spawnServer(args: string[], port: number, flags: string[] = []): Promise<NodeProcess> {
  const child: ChildProcess = spawn("redis-server", args, { stdio: "ignore" });
  const exited = once(child, "exit");
  let frozen = false;
  const handle: NodeProcess = {
    port,
    pid: child.pid ?? -1,
    get alive() {
      return child.exitCode === null && child.signalCode === null && !frozen;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
    freeze() {
      frozen = true;
      child.kill("SIGSTOP");
    },
    thaw() {
      child.kill("SIGCONT");
      frozen = false;
    },
  };
  return Promise.race([
    waitForPort(port).then(async () => {
      // Another process may have taken the port between freePort() and the bind: then whoever
      // answers is not ours.
      const info = await nodeCli(port, flags, "info", "server").catch(() => "");
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
  flags: string[] = [],
): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    const port = await pick();
    const own = join(dir, `node-${port}`);
    mkdirSync(own, { recursive: true });
    try {
      return await spawnServer([...args(port), "--dir", own], port, flags);
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

async function nodeCli(port: number, flags: string[], ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...flags, ...args]);
  return stdout;
}

/** One protected redis-server (no cluster, no replica) on a free port. */
export async function startProtectedServer(
  protection: Protection,
): Promise<NodeProcess & { stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "tiercache-node-"));
  const node = await spawnOnFreePort(
    dir,
    (port) => [...listenArgs(port, protection), ...COMMON],
    freePort,
    cliArgs(protection),
  );
  return Object.assign(node, {
    async stop() {
      await node.kill();
      await rm(dir, { recursive: true, force: true });
    },
  });
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

export interface ClusterSetup {
  /** Replicas per primary: 1 (default) or 0. */
  replicas?: 0 | 1;
  /**
   * `cluster-node-timeout`, default 1000: a killed primary's replica takes over within ~2 s. A long
   * one keeps a frozen primary a primary (no failover, no `cluster_state:fail`) for that long.
   */
  nodeTimeoutMs?: number;
  protection?: Protection;
}

/**
 * Starts a real cluster from `redis-server` binaries: `--cluster-enabled yes` with per-node config
 * files in a temp dir, joined by `redis-cli --cluster create … --cluster-replicas 1`.
 */
export async function startRedisCluster(setup: ClusterSetup = {}): Promise<RedisClusterHandle> {
  const dir = await mkdtemp(join(tmpdir(), "tiercache-cluster-"));
  const taken = new Set<number>();
  const replicas = setup.replicas ?? 1;
  const flags = cliArgs(setup.protection);
  const cli = (port: number, ...args: string[]) => nodeCli(port, flags, ...args);
  const nodes = await Promise.all(
    Array.from({ length: 3 * (1 + replicas) }, () =>
      spawnOnFreePort(
        dir,
        (port) => [
          ...listenArgs(port, setup.protection),
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, `nodes-${port}.conf`),
          "--cluster-node-timeout",
          String(setup.nodeTimeoutMs ?? 1000),
          ...COMMON,
        ],
        () => freeClusterPort(taken),
        flags,
      ),
    ),
  );
  const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run("redis-cli", [
      ...flags,
      "--cluster",
      "create",
      ...addresses,
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
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

export interface SentinelSetup {
  /** Of the primary and replica; the Sentinels get `sentinel auth-pass` and the same TLS. */
  protection?: Protection;
  /** `requirepass` of the Sentinels themselves (and `sentinel sentinel-pass` between them). */
  sentinelPassword?: string;
}

/** Starts 1 primary, 1 replica and 3 × `redis-server <conf> --sentinel`, with fast failure detection. */
export async function startRedisSentinel(setup: SentinelSetup = {}): Promise<RedisSentinelHandle> {
  const flags = cliArgs(setup.protection);
  const sentinelFlags = cliArgs({ tls: setup.protection?.tls, password: setup.sentinelPassword });
  const cli = (port: number, ...args: string[]) => nodeCli(port, flags, ...args);
  const sentinelCli = (port: number, ...args: string[]) => nodeCli(port, sentinelFlags, ...args);
  const tls = setup.protection?.tls;
  const password = setup.protection?.password;
  const name = "mymaster";
  const dir = await mkdtemp(join(tmpdir(), "tiercache-sentinel-"));
  const started: NodeProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((node) => node.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const primary = await spawnOnFreePort(
      dir,
      (port) => [...listenArgs(port, setup.protection), ...COMMON],
      freePort,
      flags,
    );
    started.push(primary);
    const replica = await spawnOnFreePort(
      dir,
      (port) => [
        ...listenArgs(port, setup.protection),
        "--replicaof",
        "127.0.0.1",
        String(primary.port),
        ...COMMON,
      ],
      freePort,
      flags,
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
              ...(tls
                ? [
                    "port 0",
                    `tls-port ${port}`,
                    `tls-cert-file ${tls.certFile}`,
                    `tls-key-file ${tls.keyFile}`,
                    `tls-ca-cert-file ${tls.caFile}`,
                    "tls-auth-clients no",
                    "tls-replication yes",
                  ]
                : [`port ${port}`]),
              "bind 127.0.0.1",
              "protected-mode no",
              `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
              ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
              ...(setup.sentinelPassword
                ? [
                    `requirepass ${setup.sentinelPassword}`,
                    `sentinel sentinel-pass ${setup.sentinelPassword}`,
                  ]
                : []),
              `sentinel down-after-milliseconds ${name} 1000`,
              `sentinel failover-timeout ${name} 5000`,
              `sentinel parallel-syncs ${name} 1`,
              "",
            ].join("\n"),
          );
          return [conf, "--sentinel"];
        },
        freePort,
        sentinelFlags,
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
        const reply = await sentinelCli(live.port, "sentinel", "get-master-addr-by-name", name);
        return Number(reply.trim().split("\n")[1]);
      },
      stop,
    };
    // Every Sentinel has found the replica and the other Sentinels: a failover can be agreed on.
    await until("sentinels ready", 15_000, async () => {
      for (const s of sentinels) {
        const info = await sentinelCli(s.port, "sentinel", "master", name);
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
