import type { Entry, Store } from "@unkey/cache/stores";
import { Ok } from "@unkey/error";

/** The three node-redis commands the store needs (any `createClient()` result has them). */
interface NodeRedis {
  get(key: string): Promise<unknown>;
  set(key: string, value: string, options: { PXAT: number }): Promise<unknown>;
  del(keys: string[]): Promise<unknown>;
}

/**
 * @unkey/cache ships no TCP store: this is the glue a user would write over its public `Store`
 * interface, shaped like its UpstashRedisStore (one GET per read, JSON entries, PXAT = staleUntil).
 */
export class NodeRedisStore<TNamespace extends string, TValue> implements Store<TNamespace, TValue> {
  readonly name = "node-redis";

  constructor(private readonly redis: NodeRedis) {}

  private key(namespace: TNamespace, key: string): string {
    return `${namespace}::${key}`;
  }

  async get(namespace: TNamespace, key: string) {
    const stored = await this.redis.get(this.key(namespace, key));
    return Ok(typeof stored === "string" ? (JSON.parse(stored) as Entry<TValue>) : undefined);
  }

  async set(namespace: TNamespace, key: string, entry: Entry<TValue>) {
    await this.redis.set(this.key(namespace, key), JSON.stringify(entry), { PXAT: entry.staleUntil });
    return Ok();
  }

  async remove(namespace: TNamespace, keys: string | string[]) {
    const all = (Array.isArray(keys) ? keys : [keys]).map((key) => this.key(namespace, key));
    if (all.length > 0) await this.redis.del(all);
    return Ok();
  }
}
