/**
 * Network-bound contenders on a shared 2-core box: each runs for `roundMs`, in turn, `rounds` times
 * (the first round warms up and is dropped), so drift and GC hit all alike; the median round counts.
 * Returns operations per second per contender.
 */
export async function alternate(
  contenders: readonly (readonly [string, () => Promise<unknown>])[],
  { rounds = 7, roundMs = 400 } = {},
): Promise<Map<string, number>> {
  const samples = new Map<string, number[]>(contenders.map(([name]) => [name, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, op] of contenders) {
      const started = performance.now();
      let ops = 0;
      while (performance.now() - started < roundMs) {
        await op();
        ops++;
      }
      if (round > 0) samples.get(name)!.push(ops / ((performance.now() - started) / 1000));
    }
  }
  return new Map([...samples].map(([name, values]) => [name, median(values)]));
}

/**
 * The same for operations that resolve without I/O (L1 hits): a tight loop of awaited hits starves the
 * event loop, so each loop of `chunk` calls ends with a macrotask turn, as a server between requests.
 */
export async function alternateSync(
  contenders: readonly (readonly [string, () => Promise<unknown>])[],
  options: { rounds?: number; roundMs?: number; chunk?: number } = {},
): Promise<Map<string, number>> {
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
  ).then((rates) => new Map([...rates].map(([name, rate]) => [name, rate * chunk])));
}

export function median(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

export const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
