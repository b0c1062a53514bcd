import type { Transport } from "../../src/transports/types.js";
import type { Backend } from "./backends.js";

/** The once-per-instance version registration (issue 4) is bookkeeping, not part of any read. */
const BOOKKEEPING = new Set(["HSETNX", "HGETALL", "HGET", "HSET", "HDEL"]);

/**
 * A transport of `backend` that records the name of every command it sends (pipelined ones one by
 * one); the commands still reach the real Redis. `keys` records the keys of each MGET/GET.
 */
export function countingTransport(backend: Backend): {
  transport: Transport;
  sent: string[];
  reads: string[][];
} {
  const sent: string[] = [];
  const reads: string[][] = [];
  const record = (command: readonly (string | number)[]) => {
    const name = String(command[0]).toUpperCase();
    if (BOOKKEEPING.has(name)) return;
    sent.push(name);
    if (name === "MGET" || name === "GET") reads.push(command.slice(1).map(String));
  };
  const inner = backend.transport();
  if (!inner) throw new Error("needs Redis");
  return {
    sent,
    reads,
    transport: {
      kind: inner.kind,
      send: (command, signal) => {
        record(command);
        return inner.send(command, signal);
      },
      pipeline: (commands, signal) => {
        for (const command of commands) record(command);
        return inner.pipeline(commands, signal);
      },
      close: () => inner.close(),
    },
  };
}
