/**
 * Redis for the app checks: a real redis-server on a free loopback port, a client to look into it,
 * and a bare TCP listener that counts who tries to connect where Redis would be.
 */
import { once } from "node:events";
import { createServer, Socket } from "node:net";
import { createClient } from "redis";
import { freePort, start, waitFor } from "./harness.mjs";

/**
 * A redis-server with persistence off (on `port`, else a free one); `client` is connected; `stop()`
 * ends both; `pause()` / `resume()` stop and continue the server (SIGSTOP/SIGCONT: it holds its
 * connections and answers nothing).
 */
export async function startRedis(options = {}) {
  const port = options.port ?? (await freePort());
  const proc = start(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--protected-mode",
      "no",
    ],
    { name: `redis-server :${port}` },
  );
  await waitFor(`redis-server on ${port}`, () => canConnect(port), { timeoutMs: 10_000, proc });
  const client = createClient({ url: `redis://127.0.0.1:${port}` });
  client.on("error", () => {});
  await client.connect();
  const ownId = await client.clientId();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    client,
    /** Connections from anyone but this harness's own client. */
    async otherClients() {
      const list = await client.sendCommand(["CLIENT", "LIST"]);
      return list.split("\n").filter((line) => line.startsWith("id=") && !line.startsWith(`id=${ownId} `))
        .length;
    },
    /** Every key matching `pattern` (SCAN). */
    async keys(pattern) {
      const found = [];
      for await (const batch of client.scanIterator({ MATCH: pattern, COUNT: 1000 })) found.push(...batch);
      return found;
    },
    pause: () => process.kill(proc.pid, "SIGSTOP"),
    resume: () => process.kill(proc.pid, "SIGCONT"),
    async stop() {
      await client.quit().catch(() => {});
      await proc.stop();
    },
  };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

/**
 * Listens where Redis would be while Redis is stopped: every connection is counted (and closed at
 * once), so a build that tries to reach Redis shows up as `attempts > 0`.
 */
export async function countingListener() {
  const port = await freePort();
  let attempts = 0;
  const server = createServer((socket) => {
    attempts++;
    socket.destroy();
  });
  server.listen(port, "127.0.0.1");
  await once(server, "listening");
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    attempts: () => attempts,
    reset() {
      attempts = 0;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
