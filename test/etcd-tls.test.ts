// Leaves and routers reaching etcd over TLS and as an etcd user (`--etcd-ca/--etcd-cert/--etcd-key`,
// `--etcd-user/--etcd-password-file`; the router's `etcd: { ca, cert, key, username, passwordFile }`),
// against a real etcd started with --cert-file, --trusted-ca-file and --client-cert-auth, or with
// RBAC enabled.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Range } from "etcd3";
import { createClient } from "../src/client/index.ts";
import { createEtcdClient } from "../src/discovery/etcd-client.ts";
import { type EtcdServer, startEtcd, stopAllEtcd } from "./helpers/etcd.ts";
import { HOST, runGravity, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { makeTestPki, type TestPki } from "./helpers/tls.ts";

const PASSWORD = "etcd-pass-7f3c91";
const WRONG_PASSWORD = "etcd-wrong-2b8d44";

let pki: TestPki;
let otherPki: TestPki; // a CA that did not sign etcd's certificate
let dir: string;

beforeAll(() => {
  pki = makeTestPki();
  otherPki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), "gravity-etcd-tls-"));
});

afterAll(async () => {
  await stopAll();
  await stopAllEtcd();
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function routerConfig(name: string, etcdFields: string): string {
  return file(
    name,
    `etcd: { prefix: /test, ${etcdFields} }
pools:
  dyn: { discovery: etcd, timeoutMs: 2000 }
route: dyn
`,
  );
}

// A router with that config and a leaf with `leafFlags` registered: a set and get go through.
async function registerAndServe(config: string, leafFlags: string[]) {
  const router = await startRouter(["--port", "0", "--config", config]);
  const leaf = await startLeaf(["--port", "0", "--etcd-prefix", "/test", "--pool", "dyn", ...leafFlags]);
  await router.waitForStdout(/membership changed \(pools dyn: 1\)/, 10_000);
  const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
  await client.set("tls-key", "tls-value");
  expect(await client.getString("tls-key")).toBe("tls-value");
  await client.close();
  return { router, leaf };
}

test(
  "etcd with --client-cert-auth: leaf and router present a client certificate and verify etcd by the CA",
  async () => {
    const etcd = await startEtcd({
      tls: {
        certFile: pki.serverCertFile,
        keyFile: pki.serverKeyFile,
        caFile: pki.caFile,
        clientCertAuth: true,
        clientCertFile: pki.clientCertFile,
        clientKeyFile: pki.clientKeyFile,
      },
    });
    expect(etcd.clientUrl).toStartWith("https://");
    const config = routerConfig(
      "mtls.yaml",
      `endpoints: ["${etcd.clientUrl}"], ca: ${pki.caFile}, cert: ${pki.clientCertFile}, key: ${pki.clientKeyFile}`,
    );
    const tlsFlags = [
      "--etcd-ca",
      pki.caFile,
      "--etcd-cert",
      pki.clientCertFile,
      "--etcd-key",
      pki.clientKeyFile,
    ];
    const { router, leaf } = await registerAndServe(config, ["--etcd", etcd.clientUrl, ...tlsFlags]);

    // A CA that did not sign etcd's certificate: the leaf says why and exits 1.
    const wrongCa = await runGravity(
      ["leaf", "--port", "0", "--etcd", etcd.clientUrl, "--pool", "dyn", "--etcd-ca", otherPki.caFile],
      { deadlineMs: 15_000 },
    );
    expect(wrongCa.exitCode).toBe(1);
    expect(wrongCa.stderr).toMatch(
      /etcd https:\/\/127\.0\.0\.1:\d+ refused the connection: .*(certificate|CERTIFICATE)/,
    );

    // No client certificate for an etcd that requires one: refused too.
    const noCert = await runGravity(
      ["leaf", "--port", "0", "--etcd", etcd.clientUrl, "--pool", "dyn", "--etcd-ca", pki.caFile],
      { deadlineMs: 15_000 },
    );
    expect(noCert.exitCode).toBe(1);
    expect(noCert.stderr).toMatch(/refused the connection: .*CERTIFICATE/);

    expect(await leaf.stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
  },
  SERVER_TEST_MS,
);

// Enables etcd's RBAC: root (required by etcd to enable auth) and a user "gravity" that may read
// and write /test/ only.
async function enableAuth(etcd: EtcdServer): Promise<void> {
  const admin = await createEtcdClient({ endpoints: [etcd.clientUrl], tls: { ca: pki.ca } });
  try {
    await admin.role("root").create();
    await admin.user("root").create("root-pass-91d2");
    await admin.user("root").addRole("root");
    const role = await admin.role("gravity").create();
    await role.grant({ permission: "Readwrite", range: Range.prefix("/test/") });
    await admin.user("gravity").create(PASSWORD);
    await admin.user("gravity").addRole("gravity");
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
}

test(
  "etcd with RBAC: leaf and router authenticate as an etcd user over TLS; a wrong password exits 1 and no password is printed",
  async () => {
    const etcd = await startEtcd({
      tls: {
        certFile: pki.serverCertFile,
        keyFile: pki.serverKeyFile,
        caFile: pki.caFile,
        clientCertAuth: false,
      },
    });
    await enableAuth(etcd);
    const passwordFile = file("etcd-password", `${PASSWORD}\n`);
    const config = routerConfig(
      "rbac.yaml",
      `endpoints: ["${etcd.clientUrl}"], ca: ${pki.caFile}, username: gravity, passwordFile: ${passwordFile}`,
    );
    const userFlags = [
      "--etcd-ca",
      pki.caFile,
      "--etcd-user",
      "gravity",
      "--etcd-password-file",
      passwordFile,
    ];
    const { router, leaf } = await registerAndServe(config, ["--etcd", etcd.clientUrl, ...userFlags]);

    const wrong = await runGravity(
      [
        "leaf",
        "--port",
        "0",
        "--etcd",
        etcd.clientUrl,
        "--pool",
        "dyn",
        "--etcd-ca",
        pki.caFile,
        "--etcd-user",
        "gravity",
        "--etcd-password-file",
        file("wrong-password", WRONG_PASSWORD),
      ],
      { deadlineMs: 15_000 },
    );
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/refused the connection: .*authentication failed/);
    const wrongRouterConfig = routerConfig(
      "rbac-wrong.yaml",
      `endpoints: ["${etcd.clientUrl}"], ca: ${pki.caFile}, username: gravity, passwordFile: ${file("wrong-router", WRONG_PASSWORD)}`,
    );
    const wrongRouter = await runGravity(["router", "--port", "0", "--config", wrongRouterConfig], {
      deadlineMs: 15_000,
    });
    expect(wrongRouter.exitCode).toBe(1);
    expect(wrongRouter.stderr).toMatch(/refused the connection: .*authentication failed/);

    expect(await leaf.stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
    for (const text of [
      leaf.stdout(),
      leaf.stderr(),
      router.stdout(),
      router.stderr(),
      wrong.stdout,
      wrong.stderr,
      wrongRouter.stdout,
      wrongRouter.stderr,
    ]) {
      expect(text).not.toContain(PASSWORD);
      expect(text).not.toContain(WRONG_PASSWORD);
    }
  },
  SERVER_TEST_MS,
);

test("etcd credential flags and fields that cannot work name the flag or field and exit 2", async () => {
  const leaf = (flags: string[]) =>
    runGravity(["leaf", "--port", "0", "--pool", "dyn", ...flags], { deadlineMs: 15_000 });
  const cases: [string[], RegExp][] = [
    [
      ["--etcd", "https://127.0.0.1:1", "--etcd-cert", pki.clientCertFile],
      /--etcd-cert: needs the client key too/,
    ],
    [
      ["--etcd", "https://127.0.0.1:1", "--etcd-key", pki.clientKeyFile],
      /--etcd-key: needs the client certificate too/,
    ],
    [["--etcd", "http://127.0.0.1:1", "--etcd-ca", pki.caFile], /--etcd-ca: needs https:\/\/ etcd endpoints/],
    [["--etcd", "https://127.0.0.1:1,http://127.0.0.1:2"], /--etcd: all https:\/\/ or all http:\/\//],
    [
      ["--etcd", "https://127.0.0.1:1", "--etcd-ca", join(dir, "missing.pem")],
      /--etcd-ca: cannot read ".*missing\.pem" \(ENOENT\)/,
    ],
    [["--etcd", "127.0.0.1:1", "--etcd-user", "gravity"], /--etcd-user: needs a password file too/],
    [
      ["--etcd", "127.0.0.1:1", "--etcd-password-file", file("pw", "x\n")],
      /--etcd-password-file: needs a user name too/,
    ],
    [
      ["--etcd", "127.0.0.1:1", "--etcd-user", "u", "--etcd-password-file", file("empty", "")],
      /--etcd-password-file: ".*empty" is empty/,
    ],
  ];
  for (const [flags, message] of cases) {
    const run = await leaf(flags);
    expect({ flags, exitCode: run.exitCode }).toEqual({ flags, exitCode: 2 });
    expect(run.stderr).toMatch(message);
  }

  const config = routerConfig("bad.yaml", `endpoints: ["https://127.0.0.1:1"], cert: ${pki.clientCertFile}`);
  const router = await runGravity(["router", "--port", "0", "--config", config], { deadlineMs: 15_000 });
  expect(router.exitCode).toBe(2);
  expect(router.stderr).toContain(
    `${config}: etcd.key: expected a PEM private key file too (with cert), but it is missing`,
  );
});
