/**
 * HTTP requests with exactly the headers given — `Host` included, which fetch() will not let a
 * caller set — as a load balancer in front of several instances would send them.
 */
import { request as httpRequest } from "node:http";

/** `{ status, headers, text, json() }` of one request to `base` + `path`. */
export function request(base, path, { method = "GET", headers = {}, body, timeoutMs = 10_000 } = {}) {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.once("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }),
        );
        res.once("error", reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url} took over ${timeoutMs} ms`)));
    req.once("error", reject);
    req.end(body);
  });
}

/** Resolves true once `base` + `path` answers at all (any status: a server that is up). */
export async function answers(base, path) {
  await request(base, path, { timeoutMs: 3000 });
  return true;
}
