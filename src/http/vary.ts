/**
 * `Vary` as a shared cache applies it: the request headers a response names become part of its key.
 * A URL's vary list is learnt from the response stored under the URL's own key and remembered per
 * instance, so later requests key on it at once instead of reading the URL's key first.
 */

/** The request headers a `Vary` value names, lower case, deduplicated, sorted; `"*"` for `Vary: *`. */
export function parseVary(header: string | null): string[] | "*" {
  if (!header) return [];
  const names = new Set<string>();
  for (const part of header.split(",")) {
    const name = part.trim().toLowerCase();
    if (name === "*") return "*";
    if (name) names.add(name);
  }
  return [...names].sort();
}

/**
 * What a request's value of `name` contributes to a key. `Accept-Encoding` is reduced to the coding
 * the response will use (br, gzip or identity), so browsers' many spellings share three entries.
 */
export function varyValue(req: Request, name: string): string {
  const value = req.headers.get(name) ?? "";
  return name === "accept-encoding" ? preferredEncoding(value) : encodeURIComponent(value);
}

/** The key suffix of a request for the given vary names (empty for none). */
export function varySuffix(req: Request, names: readonly string[]): string {
  let suffix = "";
  for (const name of names) suffix += `|${name}=${varyValue(req, name)}`;
  return suffix;
}

function preferredEncoding(header: string): string {
  const accepted = new Map<string, number>();
  for (const part of header.toLowerCase().split(",")) {
    const [coding, ...params] = part.split(";").map((s) => s.trim());
    if (!coding) continue;
    const q = params.find((p) => p.startsWith("q="));
    accepted.set(coding, q ? Number(q.slice(2)) || 0 : 1);
  }
  const allows = (coding: string) => (accepted.get(coding) ?? accepted.get("*") ?? 0) > 0;
  if (allows("br")) return "br";
  if (allows("gzip")) return "gzip";
  return "identity";
}

/** URLs whose vary list this instance has learnt, at most this many (oldest forgotten first). */
const MAX_REMEMBERED = 10_000;

/** The vary lists learnt per URL key; bounded, and only a shortcut: forgetting one costs a read. */
export class VaryMemory {
  private readonly lists = new Map<string, readonly string[]>();

  get(urlKey: string): readonly string[] | undefined {
    return this.lists.get(urlKey);
  }

  remember(urlKey: string, names: readonly string[]): void {
    if (names.length === 0) {
      this.lists.delete(urlKey);
      return;
    }
    if (!this.lists.has(urlKey) && this.lists.size >= MAX_REMEMBERED) {
      const oldest = this.lists.keys().next().value;
      if (oldest !== undefined) this.lists.delete(oldest);
    }
    this.lists.set(urlKey, names);
  }
}
