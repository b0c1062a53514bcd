/** A waitUntil that keeps what it was given, so a test can wait for the background work. */
export function background() {
  const work: Promise<unknown>[] = [];
  return {
    waitUntil: (promise: Promise<unknown>) => {
      work.push(promise);
    },
    settled: async () => {
      while (work.length > 0) await Promise.all(work.splice(0));
    },
  };
}
