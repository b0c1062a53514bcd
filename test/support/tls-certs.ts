import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A throwaway CA and a server certificate it signed, valid for 127.0.0.1 and localhost. */
export interface TestCerts {
  readonly dir: string;
  /** Paths of the PEM files. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The CA certificate's PEM text, for a `tls: { ca }` option. */
  readonly ca: string;
  remove(): Promise<void>;
}

/** Generates them with the `openssl` CLI in a temp dir (removed by `remove()`). */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), "tiercache-tls-"));
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => run("openssl", args, { cwd: dir });
  try {
    await openssl(
      ..."req -x509 -new -nodes -newkey rsa:2048 -days 2 -subj /CN=tiercache-test-ca".split(" "),
      "-keyout",
      path("ca.key"),
      "-out",
      path("ca.crt"),
    );
    await openssl(
      ..."req -new -nodes -newkey rsa:2048 -subj /CN=localhost".split(" "),
      "-keyout",
      path("server.key"),
      "-out",
      path("server.csr"),
    );
    writeFileSync(
      path("server.ext"),
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    await openssl(
      ..."x509 -req -days 2 -CAcreateserial".split(" "),
      "-in",
      path("server.csr"),
      "-CA",
      path("ca.crt"),
      "-CAkey",
      path("ca.key"),
      "-extfile",
      path("server.ext"),
      "-out",
      path("server.crt"),
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    caFile: path("ca.crt"),
    certFile: path("server.crt"),
    keyFile: path("server.key"),
    ca: readFileSync(path("ca.crt"), "utf8"),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
