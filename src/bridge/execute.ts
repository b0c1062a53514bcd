import { ErrorReply } from "redis";
import { type Command, isBlocking } from "./commands.js";
import { HttpError } from "./http-error.js";
import type { Connection, RedisPool } from "./redis-pool.js";

/**
 * Runs one command. Blocking commands get a connection of their own; everything else is
 * pipelined on a shared one. Rejects with an `ErrorReply` when Redis answers with an error.
 */
export function runCommand(pool: RedisPool, command: Command, signal: AbortSignal): Promise<unknown> {
  const send = (connection: Connection) => connection.sendCommand(command);
  return isBlocking(command) ? pool.dedicated(send, signal) : pool.shared(send);
}

/**
 * Runs commands in order on one connection, not atomically. Each slot holds the reply or the
 * `ErrorReply` of its command; only a connection failure rejects the whole.
 */
export function runPipeline(pool: RedisPool, commands: Command[], signal: AbortSignal): Promise<unknown[]> {
  const send = (connection: Connection) => settle(commands.map((command) => connection.sendCommand(command)));
  return commands.some(isBlocking) ? pool.dedicated(send, signal) : pool.shared(send);
}

/**
 * Runs commands as one MULTI/EXEC transaction. node-redis writes commands queued in the same
 * tick back to back, and the shared chain id keeps them together across a reconnect, so no other
 * request's command can land inside the transaction. Slots hold replies or `ErrorReply`s (Redis
 * runs the rest of a transaction when one command fails at run time); a transaction Redis
 * discards (EXECABORT) is one 400 error.
 */
export function runTransaction(pool: RedisPool, commands: Command[]): Promise<unknown[]> {
  return pool.shared(async (connection) => {
    const chainId = Symbol("multi-exec");
    const settled = await Promise.allSettled([
      connection.sendCommand<unknown>(["MULTI"], { chainId }),
      ...commands.map((command) => connection.sendCommand<unknown>(command, { chainId })),
      connection.sendCommand<unknown>(["EXEC"], { chainId }),
    ]);
    const exec = settled.pop()!;
    if (exec.status === "fulfilled") return exec.value as unknown[];
    if (!(exec.reason instanceof ErrorReply)) throw exec.reason;
    const cause = settled.find((s) => s.status === "rejected" && s.reason instanceof ErrorReply);
    const why = cause?.status === "rejected" ? `: ${(cause.reason as ErrorReply).message}` : "";
    throw new HttpError(400, `${exec.reason.message}${why}`);
  });
}

async function settle(replies: Promise<unknown>[]): Promise<unknown[]> {
  const settled = await Promise.allSettled(replies);
  return settled.map((s) => {
    if (s.status === "fulfilled") return s.value;
    if (s.reason instanceof ErrorReply) return s.reason;
    throw s.reason;
  });
}
