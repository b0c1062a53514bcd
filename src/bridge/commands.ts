import { assertNotAdmin } from "./admin.js";
import { HttpError } from "./http-error.js";

/** One Redis command as the bridge sends it: the name first, then its arguments. */
export type Command = (string | Buffer)[];

/**
 * Commands that block the connection until data arrives. On the shared connections they would
 * stall every other client queued behind them, so they run on a connection of their own.
 */
const BLOCKING = new Set([
  "BLPOP",
  "BRPOP",
  "BRPOPLPUSH",
  "BLMOVE",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "WAITAOF",
]);

/** Commands the REST protocol cannot express, each with what to do instead. */
const REFUSED = new Map<string, string>([
  ["SUBSCRIBE", "needs a stream: use POST /subscribe/<channel> (Server-Sent Events)"],
  ["PSUBSCRIBE", "needs a stream: use POST /psubscribe/<pattern> (Server-Sent Events)"],
  ["SSUBSCRIBE", "needs a stream: use POST /subscribe/<channel> (Server-Sent Events)"],
  ["UNSUBSCRIBE", "is implied by closing the /subscribe stream"],
  ["PUNSUBSCRIBE", "is implied by closing the /psubscribe stream"],
  ["SUNSUBSCRIBE", "is implied by closing the /subscribe stream"],
  ["MONITOR", "is not supported by the bridge"],
  ["MULTI", "cannot span requests: POST the whole transaction to /multi-exec"],
  ["EXEC", "cannot span requests: POST the whole transaction to /multi-exec"],
  ["DISCARD", "cannot span requests: POST the whole transaction to /multi-exec"],
  ["WATCH", "cannot span requests over HTTP; use a Lua script (EVAL) for check-and-set"],
  ["UNWATCH", "cannot span requests over HTTP; use a Lua script (EVAL) for check-and-set"],
]);

/** Commands that would change the state of a connection other clients share. */
const CONNECTION_STATE = new Set([
  "SELECT",
  "AUTH",
  "HELLO",
  "RESET",
  "QUIT",
  "SYNC",
  "PSYNC",
  "REPLCONF",
  "READONLY",
  "READWRITE",
]);
const CONNECTION_STATE_CLIENT = new Set([
  "REPLY",
  "TRACKING",
  "CACHING",
  "NO-EVICT",
  "NO-TOUCH",
  "SETNAME",
  "SETINFO",
]);

/**
 * Turns a decoded JSON body into a command. Upstash clients send strings, numbers and booleans;
 * anything else is a client bug worth a clear 400 rather than `[object Object]` in Redis.
 */
export function parseCommand(value: unknown, where = "command"): Command {
  if (!Array.isArray(value)) throw new HttpError(400, `${where} must be a JSON array such as ["GET","key"]`);
  if (value.length === 0) throw new HttpError(400, `${where} is empty`);
  return value.map((arg, i) => {
    if (typeof arg === "string") return arg;
    if (typeof arg === "number" || typeof arg === "boolean") return String(arg);
    throw new HttpError(400, `${where}: argument ${i} must be a string, number or boolean`);
  });
}

/** Parses the body of `/pipeline` and `/multi-exec`: a non-empty array of commands. */
export function parseCommandList(value: unknown): Command[] {
  if (!Array.isArray(value))
    throw new HttpError(400, 'body must be a JSON array of commands such as [["GET","key"]]');
  if (value.length === 0) throw new HttpError(400, "no commands");
  return value.map((command, i) => parseCommand(command, `command ${i}`));
}

export function commandName(command: Command): string {
  return String(command[0]).toUpperCase();
}

/**
 * Throws a 400 for commands no REST request may send (they need a stream or would change a
 * shared connection), and, unless `allowAdmin`, for server administration (see `assertNotAdmin`).
 */
export function assertAllowed(command: Command, allowAdmin: boolean): void {
  const name = commandName(command);
  const refusal = REFUSED.get(name);
  if (refusal) throw new HttpError(400, `${name} ${refusal}`);
  const sub = command.length > 1 ? String(command[1]).toUpperCase() : "";
  const connectionState =
    CONNECTION_STATE.has(name) ||
    (name === "CLIENT" && CONNECTION_STATE_CLIENT.has(sub)) ||
    // SCRIPT DEBUG puts the connection into the Lua debugger.
    (name === "SCRIPT" && sub === "DEBUG");
  if (connectionState) {
    const shown = name === "CLIENT" || name === "SCRIPT" ? `${name} ${sub}` : name;
    throw new HttpError(
      400,
      `${shown} is not supported: it would change a Redis connection the bridge shares between clients`,
    );
  }
  if (!allowAdmin) assertNotAdmin(name, command);
}

/** True when the command may block its connection (see `BLOCKING`, plus `XREAD`/`XREADGROUP … BLOCK`). */
export function isBlocking(command: Command): boolean {
  const name = commandName(command);
  if (BLOCKING.has(name)) return true;
  if (name !== "XREAD" && name !== "XREADGROUP") return false;
  // Options come before STREAMS; after it, "BLOCK" could be a stream name.
  for (let i = 1; i < command.length; i++) {
    const arg = String(command[i]).toUpperCase();
    if (arg === "STREAMS") return false;
    if (arg === "BLOCK") return true;
  }
  return false;
}
