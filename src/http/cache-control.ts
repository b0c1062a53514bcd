/** The directive names of a `Cache-Control` header, lower-cased (`"max-age=60, Private"` → max-age, private). */
export function cacheControl(header: string | null): Set<string> {
  const names = new Set<string>();
  if (!header) return names;
  for (const part of header.split(",")) {
    const name = part.split("=", 1)[0]?.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}
