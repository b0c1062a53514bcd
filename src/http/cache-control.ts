/**
 * The directives of a `Cache-Control` header, names lower-cased, each with its argument (unquoted)
 * or `true`: `"max-age=60, Private"` → max-age → "60", private → true. Quoted arguments may hold
 * commas (`no-cache="set-cookie, x-a"`), so the header is split outside quotes only.
 */
export function cacheControl(header: string | null): Map<string, string | true> {
  const directives = new Map<string, string | true>();
  if (!header) return directives;
  for (const part of header.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
    const eq = part.indexOf("=");
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name || directives.has(name)) continue; // the first occurrence wins (RFC 9111 §4.2.1)
    directives.set(
      name,
      eq === -1
        ? true
        : part
            .slice(eq + 1)
            .trim()
            .replace(/^"(.*)"$/, "$1"),
    );
  }
  return directives;
}

/** A delta-seconds argument (RFC 9111 §1.2.2), or undefined when absent or malformed. */
export function seconds(directives: Map<string, string | true>, name: string): number | undefined {
  const value = directives.get(name);
  if (typeof value !== "string" || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}
