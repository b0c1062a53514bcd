import type { ServerResponse } from "node:http";
import type { RedisPool } from "./redis-pool.js";

export type SubscribeKind = "subscribe" | "psubscribe";

/**
 * Streams Pub/Sub messages as Server-Sent Events, the way Upstash serves `/subscribe/<channel>`
 * and `/psubscribe/<pattern>`: a `data: subscribe,<channel>,1` line once subscribed, then
 * `data: message,<channel>,<message>` (or `pmessage,<pattern>,<channel>,<message>`). Messages are
 * sent as text, never base64 (the Upstash client does not decode them). A subscription holds a
 * Redis connection of its own until the HTTP client disconnects or the bridge shuts down.
 */
export function streamSubscription(
  pool: RedisPool,
  res: ServerResponse,
  kind: SubscribeKind,
  channel: string,
  signal: AbortSignal,
): Promise<void> {
  const send = (line: string) => {
    if (!res.headersSent)
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(`data: ${line}\n\n`);
  };
  return pool.dedicated(async (connection, stop) => {
    if (kind === "subscribe") {
      await connection.subscribe(channel, (message, from) => send(`message,${from},${message}`));
    } else {
      await connection.pSubscribe(channel, (message, from) => send(`pmessage,${channel},${from},${message}`));
    }
    send(`${kind},${channel},1`);
    if (!stop.aborted)
      await new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }));
    res.end();
  }, signal);
}
