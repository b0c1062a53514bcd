/** A contender's median round: operations per second, and this process's CPU time per operation (µs). */
export interface Rate {
  perSecond: number;
  cpuMicros: number;
}

/**
 * Network-bound contenders on a shared 2-core box: each runs for `roundMs`, in turn, `rounds` times
 * (the first round warms up and is dropped), so drift, GC and other load hit all alike; the median
 * round counts. Short rounds spread bursts of outside load over every contender.
 */
export async function alternate(
  contenders: readonly (readonly [string, () => Promise<unknown>])[],
  { rounds = 25, roundMs = 150 } = {},
): Promise<Map<string, Rate>> {
  const samples = new Map<string, { perSecond: number[]; cpuMicros: number[] }>(
    contenders.map(([name]) => [name, { perSecond: [], cpuMicros: [] }]),
  );
  for (let round = 0; round < rounds; round++) {
    for (const [name, op] of contenders) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      let ops = 0;
      while (performance.now() - started < roundMs) {
        await op();
        ops++;
      }
      const elapsed = performance.now() - started;
      const used = process.cpuUsage(cpu);
      if (round === 0) continue; // warm-up
      const sample = samples.get(name)!;
      sample.perSecond.push(ops / (elapsed / 1000));
      sample.cpuMicros.push((used.user + used.system) / ops);
    }
  }
  return new Map(
    [...samples].map(([name, s]) => [
      name,
      { perSecond: median(s.perSecond), cpuMicros: median(s.cpuMicros) },
    ]),
  );
}

/**
 * The same for operations that resolve without I/O (L1 hits): a tight loop of awaited hits starves the
 * event loop, so each loop of `chunk` calls ends with a macrotask turn, as a server between requests.
 */
export async function alternateSync(
  contenders: readonly (readonly [string, () => Promise<unknown>])[],
  options: { rounds?: number; roundMs?: number; chunk?: number } = {},
): Promise<Map<string, Rate>> {
  const chunk = options.chunk ?? 1000;
  const yieldTurn = () => new Promise((resolve) => setImmediate(resolve));
  return alternate(
    contenders.map(([name, op]) => [
      name,
      async () => {
        for (let i = 0; i < chunk; i++) await op();
        await yieldTurn();
      },
    ]),
    options,
  ).then(
    (rates) =>
      new Map(
        [...rates].map(([name, rate]) => [
          name,
          { perSecond: rate.perSecond * chunk, cpuMicros: rate.cpuMicros / chunk },
        ]),
      ),
  );
}

export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

export const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
