// Leaves and routers reaching NATS over TLS and with credentials (`--nats-ca/--nats-cert/--nats-key`,
// `--nats-user/--nats-password-file`, `--nats-token-file`, `--nats-nkey-file`; the router's
// `nats: { ca, cert, key, user, passwordFile, tokenFile, nkeyFile, credsFile }`), against a real
// nats-server whose tls block says `verify: true` and whose authorization block names the users.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nkeys } from "nats";
import { createClient } from "../src/client/index.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import {
  HOST,
  type LeafProcess,
  runGravity,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { makeTestPki, type TestPki } from "./helpers/tls.ts";
import { pollUntil } from "./helpers/wait.ts";

const PASSWORD = "nats-pass-5e1a77";
const WRONG_PASSWORD = "nats-wrong-c0ffee";
const TOKEN = "nats-token-9d0b3f";

let pki: TestPki;
let otherPki: TestPki; // a CA that did not sign the server's certificate
let dir: string;

beforeAll(() => {
  pki = makeTestPki();
  otherPki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), "gravity-nats-tls-"));
});

afterAll(async () => {
  await stopAll();
  await stopAllNats();
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function tlsBlock(verify: boolean): string {
  return `tls { cert_file: "${pki.serverCertFile}", key_file: "${pki.serverKeyFile}", ca_file: "${pki.caFile}", verify: ${verify} }`;
}

const CLIENT_CERT_FLAGS = () => ["--nats-cert", pki.clientCertFile, "--nats-key", pki.clientKeyFile];

function natsLeaf(nats: NatsServer, flags: string[]): Promise<LeafProcess> {
  return startLeaf(["--port", "0", "--nats-pool", "np", "--nats-leaf-id", "a", "--nats", nats.url, ...flags]);
}

// A router whose pool np reaches leaf "a" over NATS, its nats section holding `natsFields`.
async function natsRouter(name: string, nats: NatsServer, natsFields: object): Promise<ServerProcess> {
  const config = file(
    `${name}.json`,
    JSON.stringify({
      nats: { servers: [nats.url], ...natsFields },
      pools: { np: { transport: "nats", servers: [{ host: HOST, port: 1, name: "a" }] } },
      route: "np",
    }),
  );
  const router = await startRouter(["--port", "0", "--config", config]);
  await router.waitForStdout(/nats connected/);
  return router;
}

async function setAndGet(router: ServerProcess): Promise<void> {
  const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
  await client.set("over-nats", "secured");
  expect(await client.getString("over-nats")).toBe("secured");
  await client.close();
}

function expectNoSecret(texts: readonly string[], secrets: readonly string[]): void {
  for (const text of texts) for (const secret of secrets) expect(text).not.toContain(secret);
}

test(
  "TLS with client certificates and user/password: a router serves set/get through nats-server to a leaf; a wrong password, CA or missing certificate exits 1 with the reason",
  async () => {
    const nats = await startNats({
      config: `${tlsBlock(true)}\nauthorization { users = [ { user: gravity, password: "${PASSWORD}" } ] }`,
    });
    const passwordFile = file("nats-password", `${PASSWORD}\n`);
    const leafFlags = ["--nats-ca", pki.caFile, ...CLIENT_CERT_FLAGS(), "--nats-user", "gravity"];
    const leaf = await natsLeaf(nats, [...leafFlags, "--nats-password-file", passwordFile]);
    await leaf.waitForStdout(/nats connected/);
    const router = await natsRouter("userpass", nats, {
      ca: pki.caFile,
      cert: pki.clientCertFile,
      key: pki.clientKeyFile,
      user: "gravity",
      passwordFile,
    });
    await setAndGet(router);

    const leafRun = (flags: string[]) =>
      runGravity(["leaf", "--port", "0", "--nats", nats.url, "--nats-pool", "np", ...flags], {
        deadlineMs: 15_000,
      });
    const wrongPassword = await leafRun([
      ...leafFlags,
      "--nats-password-file",
      file("wrong", WRONG_PASSWORD),
    ]);
    expect(wrongPassword.exitCode).toBe(1);
    expect(wrongPassword.stderr).toMatch(
      /nats 127\.0\.0\.1:\d+: refused the connection: AUTHORIZATION_VIOLATION/,
    );

    const wrongCa = await leafRun([
      "--nats-ca",
      otherPki.caFile,
      ...CLIENT_CERT_FLAGS(),
      "--nats-user",
      "gravity",
      "--nats-password-file",
      passwordFile,
    ]);
    expect(wrongCa.exitCode).toBe(1);
    expect(wrongCa.stderr).toMatch(/refused the connection: .*(certificate|CERTIFICATE)/);

    const noClientCert = await leafRun([
      "--nats-ca",
      pki.caFile,
      "--nats-user",
      "gravity",
      "--nats-password-file",
      passwordFile,
    ]);
    expect(noClientCert.exitCode).toBe(1);
    expect(noClientCert.stderr).toMatch(/refused the connection: TLS handshake rejected: .*CERTIFICATE/);

    // The router refuses to start with a wrong password too.
    const badRouterConfig = file(
      "bad-router.json",
      JSON.stringify({
        nats: {
          servers: [nats.url],
          ca: pki.caFile,
          cert: pki.clientCertFile,
          key: pki.clientKeyFile,
          user: "gravity",
          passwordFile: file("wrong-router", WRONG_PASSWORD),
        },
        pools: { np: { transport: "nats", servers: [{ host: HOST, port: 1, name: "a" }] } },
        route: "np",
      }),
    );
    const badRouter = await runGravity(["router", "--port", "0", "--config", badRouterConfig], {
      deadlineMs: 15_000,
    });
    expect(badRouter.exitCode).toBe(1);
    expect(badRouter.stderr).toMatch(/refused the connection: AUTHORIZATION_VIOLATION/);

    expect(await router.stop("SIGTERM")).toBe(0);
    expect(await leaf.stop("SIGTERM")).toBe(0);
    expectNoSecret(
      [
        leaf.stdout(),
        leaf.stderr(),
        router.stdout(),
        router.stderr(),
        wrongPassword.stdout,
        wrongPassword.stderr,
        badRouter.stdout,
        badRouter.stderr,
      ],
      [PASSWORD, WRONG_PASSWORD],
    );
  },
  SERVER_TEST_MS,
);

test(
  "a token and an NKey seed authenticate over tls:// verified by the CA; a wrong token exits 1",
  async () => {
    const nats = await startNats({ config: `${tlsBlock(false)}\nauthorization { token: "${TOKEN}" }` });
    const tlsUrl = `tls://${nats.url}`;
    const tokenFile = file("token", `${TOKEN}\n`);
    const leaf = await startLeaf([
      "--port",
      "0",
      "--nats-pool",
      "np",
      "--nats-leaf-id",
      "a",
      "--nats",
      tlsUrl,
      "--nats-ca",
      pki.caFile,
      "--nats-token-file",
      tokenFile,
    ]);
    await leaf.waitForStdout(/nats connected/);
    const router = await natsRouter("token", nats, { servers: [tlsUrl], ca: pki.caFile, tokenFile });
    await setAndGet(router);
    const wrong = await runGravity(
      [
        "leaf",
        "--port",
        "0",
        "--nats",
        tlsUrl,
        "--nats-pool",
        "np",
        "--nats-ca",
        pki.caFile,
        "--nats-token-file",
        file("wrong-token", "not-the-token"),
      ],
      { deadlineMs: 15_000 },
    );
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toMatch(/refused the connection: AUTHORIZATION_VIOLATION/);
    expect(await router.stop("SIGTERM")).toBe(0);
    expect(await leaf.stop("SIGTERM")).toBe(0);
    expectNoSecret([leaf.stdout(), leaf.stderr(), router.stdout(), router.stderr()], [TOKEN]);

    const user = nkeys.createUser();
    const seed = new TextDecoder().decode(user.getSeed());
    const nkeyServer = await startNats({
      config: `${tlsBlock(false)}\nauthorization { users = [ { nkey: ${user.getPublicKey()} } ] }`,
    });
    const seedFile = file("user.nk", `${seed}\n`);
    const nkeyLeaf = await natsLeaf(nkeyServer, ["--nats-ca", pki.caFile, "--nats-nkey-file", seedFile]);
    await nkeyLeaf.waitForStdout(/nats connected/);
    const nkeyRouter = await natsRouter("nkey", nkeyServer, { ca: pki.caFile, nkeyFile: seedFile });
    await setAndGet(nkeyRouter);
    expect(await nkeyRouter.stop("SIGTERM")).toBe(0);
    expect(await nkeyLeaf.stop("SIGTERM")).toBe(0);
    expectNoSecret([nkeyLeaf.stdout(), nkeyLeaf.stderr(), nkeyRouter.stdout(), nkeyRouter.stderr()], [seed]);
  },
  SERVER_TEST_MS,
);

test(
  "a server that starts refusing a running leaf's password is logged once, not once per retry, and the leaf serves again once it accepts",
  async () => {
    const users = (password: string) =>
      `authorization { users = [ { user: gravity, password: "${password}" } ] }`;
    const nats = await startNats({ config: users(PASSWORD) });
    const leaf = await natsLeaf(nats, [
      "--nats-user",
      "gravity",
      "--nats-password-file",
      file("pw-change", PASSWORD),
    ]);
    await leaf.waitForStdout(/nats connected/);
    await nats.stop();
    await nats.restart(undefined, users("another-password"));
    // Retries go on (the server logs each refused one); the leaf says so once.
    await pollUntil(
      () => ((nats.stderr().match(/authentication error/g) ?? []).length >= 5 ? true : undefined),
      { deadlineMs: 15_000, what: "five refused reconnection attempts" },
    );
    expect(leaf.stdout().match(/nats refused \(127\.0\.0\.1:\d+\): AUTHORIZATION_VIOLATION/g)).toHaveLength(
      1,
    );
    expect(leaf.stdout().match(/nats disconnected/g)).toHaveLength(1);
    const connects = (leaf.stdout().match(/nats connected/g) ?? []).length;
    await nats.stop();
    await nats.restart(undefined, users(PASSWORD));
    await pollUntil(
      () => ((leaf.stdout().match(/nats connected/g) ?? []).length > connects ? true : undefined),
      { deadlineMs: 15_000, what: "the leaf to connect again" },
    );
    expect(await leaf.stop("SIGTERM")).toBe(0);
    expectNoSecret([leaf.stdout(), leaf.stderr()], [PASSWORD, "another-password"]);
  },
  SERVER_TEST_MS,
);

test(
  "NATS credential flags and fields that cannot work name the flag or field and exit 2",
  async () => {
    const leaf = (flags: string[]) =>
      runGravity(["leaf", "--port", "0", "--nats", "127.0.0.1:1", "--nats-pool", "np", ...flags], {
        deadlineMs: 15_000,
      });
    const password = file("pw", "secret\n");
    const cases: [string[], RegExp][] = [
      [["--nats-cert", pki.clientCertFile], /--nats-cert: needs the client key too/],
      [["--nats-key", pki.clientKeyFile], /--nats-key: needs the client certificate too/],
      [["--nats-ca", join(dir, "missing.pem")], /--nats-ca: cannot read ".*missing\.pem" \(ENOENT\)/],
      [["--nats-ca", password], /--nats-ca: ".*pw" is not a PEM file/],
      [["--nats-user", "u"], /--nats-user: needs a password file too/],
      [["--nats-password-file", password], /--nats-password-file: needs a user too/],
      [
        ["--nats-user", "u", "--nats-password-file", password, "--nats-token-file", password],
        /--nats-token-file: only one way to authenticate \(passwordFile or tokenFile\)/,
      ],
      [["--nats-nkey-file", password], /--nats-nkey-file: ".*pw" holds no NKey user seed/],
      [["--nats-creds", password], /--nats-creds: ".*pw" is not a \.creds file/],
      [["--nats-token-file", file("empty", "")], /--nats-token-file: ".*empty" is empty/],
    ];
    for (const [flags, message] of cases) {
      const run = await leaf(flags);
      expect({ flags, exitCode: run.exitCode }).toEqual({ flags, exitCode: 2 });
      expect(run.stderr).toMatch(message);
      expect(run.stderr).not.toContain("secret");
    }

    const config = file(
      "bad.json",
      JSON.stringify({
        nats: { servers: ["127.0.0.1:1"], tokenFile: join(dir, "missing-token") },
        pools: { np: { transport: "nats", servers: [{ host: HOST, port: 1, name: "a" }] } },
        route: "np",
      }),
    );
    const router = await runGravity(["router", "--port", "0", "--config", config], { deadlineMs: 15_000 });
    expect(router.exitCode).toBe(2);
    expect(router.stderr).toMatch(
      /bad\.json: nats\.tokenFile: expected a file whose first line is the token \(cannot read ".*missing-token" \(ENOENT\)\)/,
    );
  },
  SERVER_TEST_MS,
);
