import { redact, redactError } from "../redact.js";
import { slotOf } from "../slots.js";
import { abortError } from "./abort.js";
import { AbortWatch, NodeHealth } from "./node-redis-nodes.js";
import {
  backoff,
  NO_COMMAND_TIMEOUT,
  pipelineReplies,
  type RedisModule,
  RedisModuleLoader,
  type TlsOptions,
  tlsSocket,
  toArgs,
  toReply,
} from "./node-redis-shared.js";
import type { RedisArg, RedisReply, Topology, Transport } from "./types.js";

/** A node as `host:port` or `{ host, port }`. */
export type NodeAddress = string | { host: string; port: number };

/** What cluster and Sentinel nodes share: credentials, TLS and the same time limits as one node. */
interface NodeOptions {
  password?: string;
  username?: string;
  /** TLS to every node (and to the Sentinels): `true`, or whom to trust (see {@link TlsOptions}). */
  tls?: boolean | TlsOptions;
  /** Limit for one connection attempt to a node, TCP/TLS plus handshake. Default 2000. */
  connectTimeoutMs?: number;
}

/** `nodeRedis({ cluster })`: a Redis Cluster (or a cluster-mode managed service). */
export interface ClusterOptions extends NodeOptions {
  /** Some nodes of the cluster (any role); the rest is discovered from them. */
  rootNodes: NodeAddress[];
  /**
   * Where to reach a node the cluster announces as `host:port`, when that address is not reachable
   * from here as it is (NAT, Docker, an SSH tunnel, a proxy): node-redis's `nodeAddressMap`.
   */
  nodeAddressMap?: Record<string, { host: string; port: number }>;
}

/** `nodeRedis({ sentinel })`: a primary with replicas, found and followed through Sentinel. */
export interface SentinelOptions extends NodeOptions {
  /** The monitored primary's name (`sentinel monitor <name> …`). */
  name: string;
  /** Some of the Sentinels. */
  sentinelRootNodes: NodeAddress[];
  /** Password of the Sentinels themselves (`requirepass` in their config), if they have one. */
  sentinelPassword?: string;
  /** Database number on the primary, default 0. */
  db?: number;
}

/** After this long reconnecting to a node, the cluster's slot map is asked for again (a failover?). */
const TOPOLOGY_REFRESH_MS = 500;
/** A node or Sentinel refused the credentials: no retry fixes that. */
const AUTH_REFUSED = /\b(WRONGPASS|NOAUTH)\b/;

/** A failed connect's error, with the last error a node reported when it says more. */
function explained(error: unknown, last: Error | undefined): unknown {
  if (!last || error === last || !(error instanceof Error) || error.message.includes(last.message))
    return error;
  return new Error(`${error.message} (${last.message})`, { cause: error });
}

/**
 * Sentinel: a connect that fails (a refused password, no primary known yet) is retried once a second
 * this many times before it rejects with the reason; node-redis's 16 would hide it for 16 s. A
 * rejected connect is not final: the next command starts a new client. Commands are bounded by their
 * deadline either way.
 */
const SENTINEL_REDISCOVERS = 2;

/** How often a cluster primary that is down gets one command through to probe it. */
const NODE_RETRY_MS = 500;

/** Normalizes and checks node addresses; errors name the option, never a credential. */
export function parseNodes(
  nodes: readonly NodeAddress[] | undefined,
  what: string,
): { host: string; port: number }[] {
  if (!Array.isArray(nodes) || nodes.length === 0)
    throw new Error(`nodeRedis: ${what} needs at least one node`);
  return nodes.map((node) => {
    if (typeof node === "object" && node !== null) return checkedNode(node.host, String(node.port), what);
    const match =
      typeof node === "string" ? /^(\[[0-9a-fA-F:]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(node.trim()) : null;
    if (!match) throw new Error(`nodeRedis: ${what} must be host:port entries`);
    return checkedNode((match[1] as string).replace(/^\[(.*)\]$/, "$1"), match[2] as string, what);
  });
}

function checkedNode(host: unknown, port: string, what: string): { host: string; port: number } {
  const n = Number(port);
  if (typeof host !== "string" || host === "" || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new Error(`nodeRedis: ${what} has a node that is not host:port (port 1–65535)`);
  return { host, port: n };
}

/**
 * The key a command is routed by on a cluster: keyless commands (SCAN, DBSIZE, FLUSHDB, INFO, PING)
 * have none and are fanned out or sent anywhere by node-redis's command policies.
 */
function routingKey(args: readonly string[]): string | undefined {
  const name = args[0]?.toUpperCase();
  if (name === "EVAL" || name === "EVALSHA" || name === "EVAL_RO" || name === "EVALSHA_RO")
    return Number(args[2]) > 0 ? args[3] : undefined;
  if (name === "SCAN" || name === "DBSIZE" || name === "FLUSHDB" || name === "INFO" || name === "PING")
    return undefined;
  return args[1];
}

/** The client calls the transport needs from a node-redis cluster or Sentinel client. */
interface TopologyClient {
  connect(): Promise<unknown>;
  send(args: string[]): Promise<unknown>;
  /** Cluster: the `host:port` of the primary a command goes to (undefined: keyless, or not known yet). */
  nodeOf?(args: readonly string[]): string | undefined;
  /** Cluster: the `host:port` of every primary. */
  primaries?(): string[];
  topology(): Topology;
  close(): Promise<unknown>;
  destroy(): unknown;
}

/**
 * A transport over a cluster or Sentinel client of node-redis: one client per transport, created
 * with the first command and replaced when it cannot connect. node-redis routes each command: on a
 * cluster, by slot (multi-key commands split per slot, keyless ones fanned out to every primary and
 * their replies combined; SCAN walks every primary behind one cursor), under Sentinel to the current
 * primary. Node clients do not queue while disconnected, so calls fail fast and fall back.
 */
export class TopologyTransport implements Transport {
  readonly kind = "node-redis";
  readonly slotted: boolean;
  private readonly secrets: string[];
  private readonly redis = new RedisModuleLoader();
  private client: TopologyClient | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private readonly aborts = new AbortWatch();
  private readonly nodes = new NodeHealth(this.aborts, NODE_RETRY_MS);

  constructor(private readonly config: { cluster: ClusterOptions } | { sentinel: SentinelOptions }) {
    const options = "cluster" in config ? config.cluster : config.sentinel;
    this.slotted = "cluster" in config;
    if ("cluster" in config) parseNodes(config.cluster.rootNodes, "cluster.rootNodes");
    else {
      parseNodes(config.sentinel.sentinelRootNodes, "sentinel.sentinelRootNodes");
      if (typeof config.sentinel.name !== "string" || config.sentinel.name === "")
        throw new Error("nodeRedis: sentinel.name must name the monitored primary");
    }
    const sentinelPassword = "sentinel" in config ? config.sentinel.sentinelPassword : undefined;
    this.secrets = [options.password, sentinelPassword].filter((s): s is string => !!s);
  }

  async send(command: readonly RedisArg[], signal?: AbortSignal): Promise<RedisReply> {
    try {
      const client = await this.connect(signal);
      return toReply(await this.aborts.race(this.dispatch(client, toArgs(command), signal), signal));
    } catch (thrown) {
      throw this.failure(thrown);
    }
  }

  async pipeline(
    commands: readonly (readonly RedisArg[])[],
    signal?: AbortSignal,
  ): Promise<(RedisReply | Error)[]> {
    if (commands.length === 0) return [];
    try {
      const { ErrorReply } = await this.redis.load();
      const client = await this.connect(signal);
      // Issued in one tick: each node's client writes its share in one go, one round trip per node.
      const replies = await this.aborts.race(
        Promise.allSettled(commands.map((command) => this.dispatch(client, toArgs(command), signal))),
        signal,
      );
      return pipelineReplies(replies, ErrorReply, (error) => this.scrub(error));
    } catch (thrown) {
      throw this.failure(thrown);
    }
  }

  async warmup(): Promise<void> {
    await this.redis.load();
  }

  redact(text: string): string {
    return redact(text, this.secrets);
  }

  /** The nodes as the client sees them now; empty before the first command connected. */
  topology(): Topology {
    const topology = this.client?.topology() ?? { mode: this.slotted ? "cluster" : "sentinel", nodes: [] };
    // A frozen primary keeps its socket (and node-redis calls it ready): its unanswered commands tell.
    for (const node of topology.nodes) if (this.nodes.isDown(node.address)) node.reachable = false;
    return topology;
  }

  partlyDown(): boolean {
    const primaries = this.client?.primaries?.();
    return primaries !== undefined && this.nodes.partlyDown(primaries);
  }

  /**
   * Sends one command on a cluster through its primary's health: refused at once while that primary
   * is down (but for a probe now and then), and watched until it is answered or its deadline passes.
   */
  private dispatch(
    client: TopologyClient,
    args: string[],
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const node = client.nodeOf?.(args);
    if (node === undefined) return client.send(args);
    if (!this.nodes.admit(node))
      return Promise.reject(
        new Error(`Redis node ${node} is down: commands for its slots fail fast until it answers again`),
      );
    const reply = client.send(args);
    const redis = this.redis.loaded;
    this.nodes.track(node, reply, signal, (error) => !!redis && error instanceof redis.ErrorReply);
    return reply;
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await Promise.race([
      client.close().catch(() => {}),
      new Promise((resolve) => setTimeout(resolve, 1000).unref()),
    ]);
    client.destroy();
  }

  private scrub(thrown: unknown): Error {
    return redactError(thrown instanceof Error ? thrown : new Error(String(thrown)), (text) =>
      this.redact(text),
    );
  }

  private failure(thrown: unknown): Error {
    const error = this.scrub(thrown);
    const redis = this.redis.loaded;
    if (redis && thrown instanceof redis.ErrorReply) error.name = "ReplyError";
    return error;
  }

  /** The client once it has connected (discovered the slots, or found the primary). */
  private async connect(signal: AbortSignal | undefined): Promise<TopologyClient> {
    if (signal?.aborted) throw abortError(signal);
    const redis = await this.redis.load();
    if (this.closed) throw new Error("nodeRedis: the transport is closed");
    if (!this.client) {
      // node-redis reports why a node refused only as events ("All the root nodes are unavailable",
      // or a Sentinel client retrying forever): the last one explains a failed connect, and a refused
      // password, which retrying cannot fix, fails it at once.
      let lastError: Error | undefined;
      let refuse: (error: Error) => void = () => {};
      const refused = new Promise<never>((_, reject) => {
        refuse = reject;
      });
      const client = this.create(redis, (error) => {
        lastError = error;
        if (AUTH_REFUSED.test(error.message)) refuse(error);
      });
      this.client = client;
      this.connecting = Promise.race([client.connect(), refused]).then(
        () => {
          this.connecting = undefined;
        },
        (error: unknown) => {
          // No node answered: the next command starts over with a new client.
          if (this.client === client) this.client = undefined;
          this.connecting = undefined;
          client.destroy();
          throw explained(error, lastError);
        },
      );
      this.connecting.catch(() => {});
    }
    const client = this.client;
    if (this.connecting) await this.aborts.race(this.connecting, signal);
    return client;
  }

  /** The node-redis client; `noted` hears the errors its nodes and Sentinels report as events. */
  private create(redis: RedisModule, noted: (error: Error) => void): TopologyClient {
    const options = "cluster" in this.config ? this.config.cluster : this.config.sentinel;
    const socket = {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      reconnectStrategy: backoff,
      ...tlsSocket(options.tls),
    };
    const nodeOptions = {
      socket,
      username: options.username,
      password: options.password,
      // RESP2: plain strings, numbers, nulls and arrays, and no maintenance-notification handshake.
      RESP: 2 as const,
      disableOfflineQueue: true,
      clientInfoTag: "tiercache",
    };
    // An 'error' event without a listener would crash the process; failures reach callers as rejections.
    const onError = (error: unknown) => noted(error instanceof Error ? error : new Error(String(error)));
    if ("cluster" in this.config) {
      const cluster = redis.createCluster({
        rootNodes: parseNodes(this.config.cluster.rootNodes, "cluster.rootNodes").map((node) => ({
          socket: node,
        })),
        defaults: nodeOptions,
        RESP: 2,
        commandOptions: NO_COMMAND_TIMEOUT,
        topologyRefreshOnReconnectionAttemptStrategy: TOPOLOGY_REFRESH_MS,
        ...(this.config.cluster.nodeAddressMap ? { nodeAddressMap: this.config.cluster.nodeAddressMap } : {}),
      });
      cluster.on("error", onError);
      return {
        connect: () => cluster.connect(),
        send: (args) => cluster.sendCommand(routingKey(args), false, args, NO_COMMAND_TIMEOUT),
        nodeOf: (args) => {
          const key = routingKey(args);
          const primary = key === undefined ? undefined : cluster.slots[slotOf(key)]?.master;
          return primary ? `${primary.host}:${primary.port}` : undefined;
        },
        primaries: () => cluster.masters.map((node) => `${node.host}:${node.port}`),
        // The primaries: replicas take no commands here, so node-redis holds no connection to them.
        topology: () => ({
          mode: "cluster",
          nodes: cluster.masters.map(describePrimary),
        }),
        close: () => cluster.close(),
        destroy: () => cluster.destroy(),
      };
    }
    const config = this.config.sentinel;
    const { RESP: _resp, ...withoutResp } = nodeOptions; // set once, for the whole Sentinel client
    const sentinel = redis.createSentinel({
      name: config.name,
      sentinelRootNodes: parseNodes(config.sentinelRootNodes, "sentinel.sentinelRootNodes"),
      nodeClientOptions: { ...withoutResp, database: config.db ?? 0 },
      sentinelClientOptions: { socket, password: config.sentinelPassword },
      masterPoolSize: 1,
      maxCommandRediscovers: SENTINEL_REDISCOVERS,
      replicaPoolSize: 0,
      RESP: 2,
      commandOptions: NO_COMMAND_TIMEOUT,
    });
    sentinel.on("error", onError);
    // node-redis reports the errors of its primary's and Sentinels' clients as this event.
    sentinel.on("client-error", (event: { error?: unknown }) => onError(event.error));
    return {
      connect: () => sentinel.connect(),
      send: (args) => sentinel.sendCommand(false, args, NO_COMMAND_TIMEOUT),
      topology: () => {
        const primary = sentinel.getMasterNode();
        return {
          mode: "sentinel",
          primary: primary ? `${primary.host}:${primary.port}` : null,
          nodes: [
            ...(primary
              ? [
                  {
                    address: `${primary.host}:${primary.port}`,
                    role: "primary" as const,
                    reachable: sentinel.isReady,
                  },
                ]
              : []),
            ...[...sentinel.getReplicaNodes().keys()].map((node) => ({
              address: `${node.host}:${node.port}`,
              role: "replica" as const,
              reachable: null,
            })),
          ],
        };
      },
      close: () => sentinel.close(),
      destroy: () => sentinel.destroy(),
    };
  }
}

/** A cluster primary as health() reports it; reachable means its client is connected and ready. */
function describePrimary(node: {
  host: string;
  port: number;
  client?: { isReady: boolean };
}): Topology["nodes"][number] {
  return {
    address: `${node.host}:${node.port}`,
    role: "primary",
    reachable: node.client ? node.client.isReady : null,
  };
}
