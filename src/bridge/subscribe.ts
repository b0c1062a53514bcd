import type { ServerResponse } from "node:http";
import { HttpError } from "./http-error.js";
import type { RedisPool } from "./redis-pool.js";

export type SubscribeKind = "subscribe" | "psubscribe";

/**
 * Streams Pub/Sub messages as Server-Sent Events, the way Upstash serves `/subscribe/<channel>`
 * and `/psubscribe/<pattern>`: a `data: subscribe,<channel>,1` line once subscribed, then
 * `data: message,<channel>,<message>` (or `pmessage,<pattern>,<channel>,<message>`). Messages are
 * sent as text, never base64 (the Upstash client does not decode them); one with a line break is
 * re-encoded so it still fits on its one `data:` line (see `oneLine`). A subscription holds a
 * Redis connection of its own until the HTTP client disconnects or the bridge shuts down.
 */
export function streamSubscription(
  pool: RedisPool,
  res: ServerResponse,
  kind: SubscribeKind,
  channel: string,
  signal: AbortSignal,
): Promise<void> {
  if (LINE_BREAK.test(channel))
    throw new HttpError(
      400,
      `the ${kind === "subscribe" ? "channel" : "pattern"} must not contain a line break`,
    );
  const send = (line: string) => {
    if (!res.headersSent)
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(`data: ${line}\n\n`);
  };
  return pool.dedicated(async (connection, stop) => {
    if (kind === "subscribe") {
      await connection.subscribe(channel, (message, from) => send(`message,${from},${oneLine(message)}`));
    } else {
      await connection.pSubscribe(channel, (message, from) => {
        // A pattern can match a channel name with a line break; no encoding of the name would
        // reach the client intact, so such a message is not forwarded.
        if (!LINE_BREAK.test(from)) send(`pmessage,${channel},${from},${oneLine(message)}`);
      });
    }
    send(`${kind},${channel},1`);
    if (!stop.aborted)
      await new Promise((resolve) => stop.addEventListener("abort", resolve, { once: true }));
    res.end();
  }, signal);
}

const LINE_BREAK = /[\r\n]/;

/**
 * A message as text without CR or LF, so it arrives whole. `@upstash/redis` hands every `data:`
 * line to its subscriber on its own and JSON-parses the message part (falling back to the raw
 * text on `subscribe`), so the SSE way of splitting a payload over several `data:` lines would
 * deliver fragments. Instead, a message with a line break is sent as JSON that parses to what the
 * client would have got: JSON text is re-serialized compactly (line breaks between JSON tokens
 * are whitespace; inside JSON strings they are always escaped), anything else becomes a JSON
 * string. With `automaticDeserialization: false` the client sees that JSON text.
 */
function oneLine(message: string): string {
  if (!LINE_BREAK.test(message)) return message;
  try {
    return JSON.stringify(JSON.parse(message));
  } catch {
    return JSON.stringify(message);
  }
}
