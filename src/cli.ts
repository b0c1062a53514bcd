#!/usr/bin/env node
/**
 * `npx tiercache <command>`: each command lives in its own module, loaded only when asked for,
 * so `tiercache flush` in a deploy step never loads the bridge's HTTP server and vice versa.
 */
const commands: Record<
  string,
  { summary: string; load: () => Promise<{ main(args: string[]): Promise<number> }> }
> = {
  bridge: {
    summary: "serve the Upstash REST protocol in front of a TCP Redis (local dev, CI, workerd tests)",
    load: () => import("./bridge/cli.js"),
  },
  flush: {
    summary: "delete cached keys by scope (default: stale versions); run it as a deploy step",
    load: () => import("./cli/flush.js"),
  },
  stats: {
    summary: "what Redis holds per environment, namespace and version, and hit rates across instances",
    load: () => import("./cli/stats.js"),
  },
  health: {
    summary: "print the cache's health report as JSON (exit 0 healthy, 1 not)",
    load: () => import("./cli/health.js"),
  },
  demo: {
    summary: "a slow database behind the cache: MISS, HIT, stats (L1 only unless Redis is configured)",
    load: () => import("./cli/demo.js"),
  },
};

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const command = name ? commands[name] : undefined;
  if (!command) {
    const list = Object.entries(commands)
      .map(([n, c]) => `  ${n.padEnd(8)} ${c.summary}`)
      .join("\n");
    console.error(`usage: tiercache <command> [options]\n\n${list}`);
    return name && name !== "--help" && name !== "help" ? 2 : 0;
  }
  return (await command.load()).main(args);
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`tiercache: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
