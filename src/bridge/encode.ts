import { ErrorReply } from "redis";

/**
 * A Redis reply (read with bulk strings as Buffers) as the Upstash REST API returns it.
 * With `base64`, every string — bulk or status, at any depth — is the base64 of its bytes, so
 * binary values survive JSON; without it, bytes are read as UTF-8 (lossy for binary, as on
 * Upstash). Integers and nil stay numbers and null either way.
 */
export function toJson(reply: unknown, base64: boolean): unknown {
  if (Buffer.isBuffer(reply)) return base64 ? reply.toString("base64") : reply.toString("utf8");
  if (typeof reply === "string") return base64 ? Buffer.from(reply, "utf8").toString("base64") : reply;
  if (Array.isArray(reply)) return reply.map((item) => toJson(item, base64));
  // A Lua script may return an error nested in a table; clients expect a string there.
  if (reply instanceof ErrorReply) return toJson(reply.message, base64);
  return reply ?? null;
}

/** One slot of a `/pipeline` or `/multi-exec` answer; errors are never encoded. */
export function toItem(reply: unknown, base64: boolean): { result: unknown } | { error: string } {
  return reply instanceof ErrorReply ? { error: reply.message } : { result: toJson(reply, base64) };
}
