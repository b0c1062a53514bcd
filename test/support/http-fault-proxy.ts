import { once } from "node:events";
import { createServer, type IncomingHttpHeaders, request } from "node:http";

/** What the proxy does with each request, switchable at any time. */
export type HttpFault =
  | { mode: "pass" }
  /** Answers every request itself, as a failing Upstash or a gateway in front of it would. */
  | { mode: "answer"; status: number; body: string; contentType?: string };

export interface HttpFaultProxy {
  readonly url: string;
  /** Requests received so far. */
  readonly requests: number;
  /** The headers of every request received, in order. */
  readonly headers: IncomingHttpHeaders[];
  /** The path of every request received, in order. */
  readonly paths: string[];
  set(fault: HttpFault): void;
  /** Extra headers added to every forwarded answer. */
  addResponseHeaders(headers: () => Record<string, string>): void;
  close(): Promise<void>;
}

/** A loopback HTTP proxy in front of `target` (an http://127.0.0.1:port URL). */
export async function startHttpProxy(target: string): Promise<HttpFaultProxy> {
  const upstream = new URL(target);
  let fault: HttpFault = { mode: "pass" };
  let extra: () => Record<string, string> = () => ({});
  const headers: IncomingHttpHeaders[] = [];
  const paths: string[] = [];
  const server = createServer((req, res) => {
    headers.push(req.headers);
    paths.push(req.url ?? "");
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    req.on("end", () => {
      if (fault.mode === "answer") {
        res.writeHead(fault.status, { "content-type": fault.contentType ?? "application/json" });
        res.end(fault.body);
        return;
      }
      const forward = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, host: upstream.host },
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...extra() });
          answer.pipe(res);
        },
      );
      forward.on("error", () => res.destroy());
      forward.end(Buffer.concat(body));
    });
  });
  server.keepAliveTimeout = 1000;
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return headers.length;
    },
    headers,
    paths,
    set(next) {
      fault = next;
    },
    addResponseHeaders(make) {
      extra = make;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
