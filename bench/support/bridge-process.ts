import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux. */
const CLOCK_TICKS = 100;

/**
 * The bridge as the CLI runs it, in a process of its own, so the load generator does not share its
 * event loop. `stop()` ends that process by PID.
 */
export async function startBridgeProcess(redisUrl: string, token: string) {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/cli.ts", "bridge", "--port", "0", "--token", token, "--redis", redisUrl],
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on("data", (chunk) => {
      output += chunk;
      const match = /(http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once("exit", (code) => reject(new Error(`bridge exited with ${code}: ${output}`)));
  });
  return {
    url,
    /** CPU time the bridge process has used (Linux /proc; NaN elsewhere). */
    cpuSeconds() {
      try {
        const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
      } catch {
        return Number.NaN;
      }
    },
    async stop() {
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
