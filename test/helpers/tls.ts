// A throwaway certificate authority for TLS tests, made with the openssl CLI: a CA, a server
// certificate for 127.0.0.1 and a client certificate, each valid for a day, as PEM files.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** PEM text of the files above. */
  ca: string;
  clientCert: string;
  clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  const result = Bun.spawnSync(["openssl", ...args], { cwd, stderr: "pipe", stdout: "pipe" });
  if (result.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${result.stderr.toString()}`);
}

/** Creates the CA and both certificates in a new temporary directory. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "gravity-pki-"));
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "1",
      "-subj",
      "/CN=gravity test CA",
    ],
    dir,
  );
  const issue = (name: string, subject: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`);
    openssl(["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir);
    openssl(
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"].concat([
        "-out",
        `${name}.pem`,
        "-days",
        "1",
        "-extfile",
        `${name}.ext`,
      ]),
      dir,
    );
  };
  issue(
    "server",
    "/CN=127.0.0.1",
    "subjectAltName=IP:127.0.0.1,DNS:gravity.test\nextendedKeyUsage=serverAuth",
  );
  issue("client", "/CN=gravity test client", "extendedKeyUsage=clientAuth");
  const file = (name: string) => join(dir, name);
  return {
    dir,
    caFile: file("ca.pem"),
    serverCertFile: file("server.pem"),
    serverKeyFile: file("server.key"),
    clientCertFile: file("client.pem"),
    clientKeyFile: file("client.key"),
    ca: readFileSync(file("ca.pem"), "utf8"),
    clientCert: readFileSync(file("client.pem"), "utf8"),
    clientKey: readFileSync(file("client.key"), "utf8"),
  };
}
