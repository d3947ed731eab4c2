// TLS and bearer tokens on the compiled leaf, with a CA made for the test: memcached over TLS from
// pymemcache (Debian's python3-pymemcache, with an ssl context) while plaintext gets nothing;
// HTTPS and gRPC over TLS with a token work, without one are refused (401, UNAUTHENTICATED) while
// the probes stay open; client certificates are required under --tls-ca; bad flags exit 2 naming
// the flag; and no token reaches the logs.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  credentials,
  Metadata,
  makeGenericClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { createClient } from "../src/client/index.ts";
import { GrpcCacheClient } from "../src/grpc/client.ts";
import {
  HealthCheckResponse_ServingStatus,
  Health as HealthService,
} from "../src/grpc/generated/health/v1/health_pb.ts";
import { grpcService } from "../src/grpc/services.ts";
import { type LeafProcess, runGravity, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";
import { makeTestPki, type TestPki } from "./helpers/tls.ts";

const TOKEN = "s3cret-token-for-tests";
const HTTP_LINE = /https? on \S+:(\d+) /;
const GRPC_LINE = /grpc on \S+:(\d+) /;

let pki: TestPki;
let tokenFile: string;
let leaf: LeafProcess;
let httpsPort: number;
let grpcPort: number;

beforeAll(async () => {
  pki = makeTestPki();
  tokenFile = join(pki.dir, "tokens");
  writeFileSync(tokenFile, `# tokens for the test\n${TOKEN}\n`);
  leaf = await startLeaf([
    "--port",
    "0",
    "--http-port",
    "0",
    "--grpc-port",
    "0",
    "--tls-cert",
    pki.serverCertFile,
    "--tls-key",
    pki.serverKeyFile,
    "--auth-token-file",
    tokenFile,
  ]);
  httpsPort = Number((await leaf.waitForStdout(HTTP_LINE))[1]);
  grpcPort = Number((await leaf.waitForStdout(GRPC_LINE))[1]);
}, SERVER_TEST_MS);

afterAll(stopAll);

const tlsFetch = (url: string, init: RequestInit = {}) => fetch(url, { ...init, tls: { ca: pki.ca } });

const PYMEMCACHE_TLS = `
import ssl, sys
from pymemcache.client.base import Client
context = ssl.create_default_context(cafile=sys.argv[3])
if len(sys.argv) > 4:
    context.load_cert_chain(sys.argv[4], sys.argv[5])
client = Client((sys.argv[1], int(sys.argv[2])), tls_context=context, connect_timeout=5, timeout=5)
client.set("tls-key", b"over tls")
print(client.get("tls-key").decode())
`;

/** pymemcache over TLS: set then get; returns what it printed, or throws with its error. */
async function pymemcacheOverTls(port: number, clientCert: string[] = []): Promise<string> {
  const proc = Bun.spawn(
    ["/usr/bin/python3", "-c", PYMEMCACHE_TLS, "127.0.0.1", String(port), pki.caFile, ...clientCert],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if ((await proc.exited) !== 0) throw new Error(`pymemcache over TLS failed: ${err}`);
  return out.trim();
}

describe("memcached over TLS", () => {
  test("pymemcache with the CA stores and reads; a plaintext client gets nothing", async () => {
    expect(await pymemcacheOverTls(leaf.port)).toBe("over tls");
    // The TypeScript client with the CA reads what pymemcache stored; one that does not trust it fails.
    const trusting = createClient({ servers: [`127.0.0.1:${leaf.port}`], tls: { ca: pki.ca } });
    const foreign = createClient({
      servers: [`127.0.0.1:${leaf.port}`],
      tls: { ca: makeTestPki().ca }, // another CA
      timeoutMs: 2000,
    });
    try {
      expect(await trusting.getString("tls-key")).toBe("over tls");
      await trusting.set("ts-tls", "from the typescript client");
      expect(await trusting.getString("ts-tls")).toBe("from the typescript client");
      await expect(foreign.getString("tls-key")).rejects.toThrow();
    } finally {
      await Promise.all([trusting.close(), foreign.close()]);
    }
    // Plaintext bytes are not a TLS handshake: the connection closes without a memcached reply.
    const replies: string[] = [];
    const closed = new Promise<void>((resolve) => {
      void Bun.connect({
        hostname: "127.0.0.1",
        port: leaf.port,
        socket: {
          open: (socket) => void socket.write("version\r\n"),
          data: (_socket, data) => void replies.push(Buffer.from(data).toString("latin1")),
          close: () => resolve(),
          error: () => resolve(),
        },
      });
    });
    await closed;
    expect(replies.join("")).not.toContain("VERSION");
  });
});

describe("HTTPS with a bearer token", () => {
  test("the cache API and /metrics need the token; the probes do not; plaintext gets no answer", async () => {
    const base = `https://127.0.0.1:${httpsPort}`;
    const auth = { authorization: `Bearer ${TOKEN}` };
    expect((await tlsFetch(`${base}/v1/cache/g/k`, { method: "PUT", body: "v", headers: auth })).status).toBe(
      204,
    );
    const got = await tlsFetch(`${base}/v1/cache/g/k`, { headers: auth });
    expect([got.status, await got.text()]).toEqual([200, "v"]);
    const refusals: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: TOKEN },
    ];
    for (const headers of refusals) {
      const refused = await tlsFetch(`${base}/v1/cache/g/k`, { headers });
      expect([refused.status, refused.headers.get("www-authenticate")]).toEqual([401, "Bearer"]);
    }
    expect((await tlsFetch(`${base}/metrics`)).status).toBe(401);
    expect((await tlsFetch(`${base}/metrics`, { headers: auth })).status).toBe(200);
    expect((await tlsFetch(`${base}/healthz`)).status).toBe(200);
    expect((await tlsFetch(`${base}/readyz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${httpsPort}/healthz`)).rejects.toThrow();
    // A client that does not trust the test CA refuses the server.
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});

describe("gRPC over TLS with a bearer token", () => {
  const tokenCall = () => {
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${TOKEN}`);
    return metadata;
  };

  test("calls with the token work; without it they are UNAUTHENTICATED; Health answers anyway", async () => {
    const creds = credentials.createSsl(Buffer.from(pki.ca));
    // grpc-js on Bun may not send an IP address as the TLS server name: the name in the certificate.
    const channel = { "grpc.ssl_target_name_override": "gravity.test" };
    const client = new GrpcCacheClient(`127.0.0.1:${grpcPort}`, {
      credentials: creds,
      channel,
      metadata: tokenCall,
    });
    const anonymous = new GrpcCacheClient(`127.0.0.1:${grpcPort}`, { credentials: creds, channel });
    try {
      await client.set("g", "grpc", new TextEncoder().encode("over tls"));
      expect(new TextDecoder().decode((await client.get("g", "grpc")).value)).toBe("over tls");
      const refused = (await anonymous.get("g", "grpc").catch((e: ServiceError) => e)) as ServiceError;
      expect(refused.code).toBe(status.UNAUTHENTICATED);
      const Health = makeGenericClientConstructor(grpcService(HealthService), "Health");
      const health = new Health(`127.0.0.1:${grpcPort}`, creds, channel) as unknown as {
        check(
          request: object,
          callback: (error: ServiceError | null, reply?: { status: number }) => void,
        ): void;
        close(): void;
      };
      const reply = await new Promise<{ status: number } | undefined>((resolve, reject) =>
        health.check({ service: "" }, (error, answer) => (error === null ? resolve(answer) : reject(error))),
      );
      health.close();
      expect(reply?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      client.close();
      anonymous.close();
    }
  });
});

test(
  "with --tls-ca a client must present a certificate the CA signed",
  async () => {
    const mutual = await startLeaf([
      "--port",
      "0",
      "--http-port",
      "0",
      "--tls-cert",
      pki.serverCertFile,
      "--tls-key",
      pki.serverKeyFile,
      "--tls-ca",
      pki.caFile,
    ]);
    const port = Number((await mutual.waitForStdout(HTTP_LINE))[1]);
    const url = `https://127.0.0.1:${port}/healthz`;
    await expect(fetch(url, { tls: { ca: pki.ca } })).rejects.toThrow();
    const withCert = await fetch(url, { tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    expect(withCert.status).toBe(200);
    await expect(pymemcacheOverTls(mutual.port)).rejects.toThrow();
    expect(await pymemcacheOverTls(mutual.port, [pki.clientCertFile, pki.clientKeyFile])).toBe("over tls");
    // The TypeScript client: refused without a client certificate, served with one.
    const anonymous = createClient({
      servers: [`127.0.0.1:${mutual.port}`],
      tls: { ca: pki.ca },
      timeoutMs: 2000,
    });
    const certified = createClient({
      servers: [`127.0.0.1:${mutual.port}`],
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      timeoutMs: 2000,
    });
    try {
      await expect(anonymous.set("ts-mtls", "x")).rejects.toThrow();
      await certified.set("ts-mtls", "with a certificate");
      expect(await certified.getString("ts-mtls")).toBe("with a certificate");
    } finally {
      await Promise.all([anonymous.close(), certified.close()]);
    }
    expect(await mutual.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

test(
  "bad TLS and token flags exit 2 naming the flag; the token is in no log line",
  async () => {
    const cases: [string[], RegExp][] = [
      [["--tls-cert", pki.serverCertFile], /--tls-cert: needs --tls-key/],
      [["--tls-key", pki.serverKeyFile], /--tls-key: needs --tls-cert/],
      [["--tls-ca", pki.caFile], /--tls-ca: needs --tls-cert and --tls-key/],
      [["--tls-cert", "/nonexistent.pem", "--tls-key", pki.serverKeyFile], /--tls-cert: cannot read/],
      [["--tls-cert", tokenFile, "--tls-key", pki.serverKeyFile], /--tls-cert: .* is not a PEM file/],
      [["--auth-token-file", "/nonexistent"], /--auth-token-file: cannot read/],
    ];
    for (const [args, message] of cases) {
      const run = await runGravity(["leaf", "--port", "0", ...args]);
      expect([run.exitCode, run.stderr]).toEqual([2, expect.stringMatching(message)]);
    }
    expect(`${leaf.stdout()}${leaf.stderr()}`).not.toContain(TOKEN);
  },
  SERVER_TEST_MS,
);
