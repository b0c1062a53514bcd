import { once } from "node:events";
import { createServer, type Server, Socket } from "node:net";

/**
 * What the proxy does, switchable while connections are open:
 * - `pass`: forwards both ways.
 * - `delay`: forwards, holding each chunk from the server for `ms` (order kept).
 * - `blackhole`: forwards nothing, answers nothing. A connection that was ever blackholed stays
 *   silent (a dropped byte would shift every later reply); connections opened after `pass` work.
 * - `reset`: destroys every connection with a TCP RST, and each new one as it arrives.
 * - `garble`: forwards, inverting every byte from the server.
 */
export type FaultMode = "pass" | "delay" | "blackhole" | "reset" | "garble";

export interface FaultProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  setMode(mode: Exclude<FaultMode, "delay">): void;
  setMode(mode: "delay", ms: number): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of `127.0.0.1:targetPort`. */
export async function start(options: { targetPort: number }): Promise<FaultProxy> {
  const state: ProxyState = { mode: "pass", delayMs: 0 };
  const links = new Set<Link>();
  let accepted = 0;

  const server = createServer((client) => {
    accepted++;
    const link = new Link(client, options.targetPort, state);
    links.add(link);
    client.once("close", () => links.delete(link));
  });
  await listen(server);

  return {
    port: portOf(server),
    get accepted() {
      return accepted;
    },
    setMode(mode: FaultMode, ms?: number) {
      state.mode = mode;
      state.delayMs = ms ?? 0;
      for (const link of links) {
        if (mode === "blackhole") link.silenced = true;
        if (mode === "reset") link.reset();
      }
    },
    async close() {
      for (const link of links) link.reset();
      await closeServer(server);
    },
  };
}

interface ProxyState {
  mode: FaultMode;
  delayMs: number;
}

/** One client connection and its upstream, forwarding as the proxy's current mode says. */
class Link {
  silenced: boolean;
  private readonly upstream: Socket | undefined;
  private released = Promise.resolve();

  constructor(
    private readonly client: Socket,
    targetPort: number,
    private readonly state: ProxyState,
  ) {
    this.silenced = state.mode === "blackhole";
    client.on("error", () => this.upstream?.destroy());
    client.on("close", () => this.upstream?.destroy());
    client.on("data", (chunk: Buffer) => {
      if (!this.silenced) this.upstream?.write(chunk);
    });
    if (state.mode === "reset") {
      client.resetAndDestroy();
      return;
    }
    if (this.silenced) return;
    const upstream = new Socket();
    this.upstream = upstream;
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.destroy());
    upstream.on("data", (chunk: Buffer) => this.fromServer(chunk));
    upstream.connect(targetPort, "127.0.0.1");
  }

  reset(): void {
    this.client.resetAndDestroy();
    this.upstream?.resetAndDestroy();
  }

  private fromServer(chunk: Buffer): void {
    if (this.silenced) return;
    if (this.state.mode === "garble") {
      this.client.write(chunk.map((byte) => byte ^ 0xff));
      return;
    }
    if (this.state.mode !== "delay") {
      this.client.write(chunk);
      return;
    }
    const wait = this.state.delayMs;
    this.released = this.released.then(() => new Promise((resolve) => setTimeout(resolve, wait)));
    this.released.then(() => {
      if (!this.silenced && !this.client.destroyed) this.client.write(chunk);
    });
  }
}

/** A server that accepts connections, reads everything and never answers. */
export async function hangingListener(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
  });
  await listen(server);
  return {
    port: portOf(server),
    async close() {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    },
  };
}

async function listen(server: Server): Promise<void> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
}

function portOf(server: Server): number {
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("server is not listening on TCP");
  return address.port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
