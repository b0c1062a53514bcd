/** Marks a response the route did not serve from its entry; copies it when its headers are immutable. */
export function withXCache(res: Response, value: "BYPASS" | "MISS"): Response {
  try {
    res.headers.set("x-cache", value);
    return res;
  } catch {
    // `Response.redirect()` and `fetch()` responses have immutable headers.
  }
  try {
    const copy = new Response(res.body, res);
    copy.headers.set("x-cache", value);
    return copy;
  } catch {
    return res;
  }
}
