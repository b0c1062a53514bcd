/** What reading the stats needs of a client: node-redis clients of any generic shape fit. */
interface InfoClient {
  info(section: string): Promise<string>;
}

/**
 * Calls per command since the last `CONFIG RESETSTAT`, read from `INFO commandstats` of a Redis the
 * test file owns (the counts are server-wide). The INFO and RESETSTAT of the reading itself are left out.
 */
export async function commandCalls(admin: InfoClient): Promise<Record<string, number>> {
  const info = await admin.info("commandstats");
  const calls: Record<string, number> = {};
  for (const [, name, n] of info.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm))
    calls[name as string] = Number(n);
  delete calls.info;
  delete calls["config|resetstat"];
  return calls;
}

export function totalCalls(calls: Record<string, number>): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}
