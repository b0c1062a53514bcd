import type { Transport } from "../../src/transports/types.js";

/**
 * A unit-test transport that answers every read with a miss and records the keys written (SET, or a
 * loader's conditional write-back, EVAL with one key), so a test can see which writes reached
 * "Redis" and when. Never the only proof of a Redis behaviour.
 */
export function recordingTransport(): { transport: Transport; written: string[] } {
  const written: string[] = [];
  const transport: Transport = {
    kind: "memory",
    send: async (command) => {
      if (command[0] === "SET") written.push(String(command[1]));
      if (command[0] === "EVAL") written.push(String(command[3]));
      return command[0] === "SET" ? "OK" : command[0] === "EVAL" ? 1 : null;
    },
    pipeline: async (commands) => commands.map(() => null),
    close: async () => {},
  };
  return { transport, written };
}
