// TLS from the router to its leaves, on compiled processes with CAs made for the test: a router
// whose pools name the leaves' CA serves sets and gets through sharded and replicated pools (with
// listener threads, which get the same TLS) and to leaves discovered through etcd; a leaf whose
// certificate another CA signed, or that carries another name, is refused (the router's down-leaf
// error, the log naming the certificate problem) unless serverName matches; a leaf run with
// --tls-ca accepts the router only with its client certificate; and a pool's bad tls section is a
// config error naming the field (exit 2 at start, the old config kept on reload). A server that
// accepts TCP and never answers the handshake fails the connect at its timeout and loses the
// socket, rather than holding requests. A TLS connection lost right after its handshake, before any
// reply, says a refused client certificate may be why; one lost a second or more later does not.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Client, createClient } from "../src/client/index.ts";
import { ConnectionError } from "../src/errors.ts";
import { encodeVersion } from "../src/protocol/encoder.ts";
import { Expect } from "../src/protocol/reply.ts";
import { TcpConnection } from "../src/transport/connection.ts";
import { startEtcd, stopAllEtcd } from "./helpers/etcd.ts";
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

let pki: TestPki;
let otherPki: TestPki;
let leaves: LeafProcess[];
let foreignLeaf: LeafProcess; // its certificate is signed by otherPki's CA
let mutualLeaf: LeafProcess; // requires a client certificate that chains to pki's CA
let configCount = 0;

beforeAll(async () => {
  pki = makeTestPki();
  otherPki = makeTestPki();
  const tlsLeaf = (ca: TestPki, extra: string[] = []) =>
    startLeaf(
      [
        "--port",
        "0",
        "--memory",
        "32mb",
        "--tls-cert",
        ca.serverCertFile,
        "--tls-key",
        ca.serverKeyFile,
        ...extra,
      ],
      { binary: "compiled" },
    );
  [leaves, foreignLeaf, mutualLeaf] = await Promise.all([
    Promise.all([tlsLeaf(pki), tlsLeaf(pki), tlsLeaf(pki)]),
    tlsLeaf(otherPki),
    tlsLeaf(pki, ["--tls-ca", pki.caFile]),
  ]);
}, SERVER_TEST_MS);

afterAll(async () => {
  await stopAll();
  await stopAllEtcd();
});

function writeConfig(config: unknown): string {
  const file = join(pki.dir, `router-${++configCount}.json`);
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

const address = (leaf: ServerProcess, host = HOST) => `${host}:${leaf.port}`;

/** A config of one pool `main` over `servers` with `tls`, routed as `route` (default sharded). */
function poolConfig(servers: string[], tls: Record<string, string> | undefined, route: unknown = "main") {
  return {
    pools: {
      main: { servers, timeoutMs: 2000, tko: { failures: 2 }, ...(tls === undefined ? {} : { tls }) },
    },
    route,
  };
}

function routerWith(config: unknown, args: string[] = []): Promise<ServerProcess> {
  return startRouter(["--port", "0", "--config", writeConfig(config), ...args], { binary: "compiled" });
}

function clientOf(router: ServerProcess): Client {
  return createClient({ servers: [address(router)], timeoutMs: 10_000 });
}

/** Sets `count` keys through the router and reads each back; returns the values read. */
async function roundTrip(router: ServerProcess, tag: string, count = 50): Promise<(string | null)[]> {
  const client = clientOf(router);
  try {
    const keys = Array.from({ length: count }, (_, i) => `${tag}:${i}`);
    await Promise.all(keys.map((key) => client.set(key, `value of ${key}`)));
    return await Promise.all(keys.map((key) => client.getString(key)));
  } finally {
    await client.close();
  }
}

const expected = (tag: string, count = 50) => Array.from({ length: count }, (_, i) => `value of ${tag}:${i}`);

/** The outcome of four sets through the router, one per line: STORED or the client's error. */
async function refusedReplies(router: ServerProcess): Promise<string> {
  const client = clientOf(router);
  try {
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(
        await client.set(`refused:${i}`, "v").then(
          () => "STORED",
          (error: Error) => error.message,
        ),
      );
    }
    return outcomes.join("\n");
  } finally {
    await client.close();
  }
}

describe("a router to TLS leaves", () => {
  test(
    "serves sets and gets through a sharded pool, with two listener threads",
    async () => {
      const router = await routerWith(
        poolConfig(
          leaves.map((leaf) => address(leaf)),
          { ca: pki.caFile },
        ),
        ["--threads", "2"],
      );
      // Eight client connections: the kernel spreads them over both threads' listeners (all eight
      // on one thread has odds of 1 in 128), so a worker without the pool's TLS would fail some.
      const tags = Array.from({ length: 8 }, (_, c) => `sharded-${c}`);
      const rounds = await Promise.all(tags.map((tag) => roundTrip(router, tag)));
      expect(rounds).toEqual(tags.map((tag) => expected(tag)));
      expect(router.stdout()).not.toContain("marked down");
    },
    SERVER_TEST_MS,
  );

  test(
    "serves sets and gets through a replicated pool, and every replica holds the values",
    async () => {
      const router = await routerWith(
        poolConfig(
          leaves.map((leaf) => address(leaf)),
          { ca: pki.caFile },
          { type: "replicated", pool: "main", writes: "all-sync" },
        ),
      );
      expect(await roundTrip(router, "replicated", 20)).toEqual(expected("replicated", 20));
      // Each leaf, asked directly over TLS through a one-leaf router, has every key.
      for (const leaf of leaves) {
        const direct = await routerWith(poolConfig([address(leaf)], { ca: pki.caFile }));
        const client = clientOf(direct);
        try {
          expect(await client.getString("replicated:7")).toBe("value of replicated:7");
        } finally {
          await client.close();
          await direct.stop();
        }
      }
    },
    SERVER_TEST_MS,
  );
});

test(
  "a pool with discovery: etcd speaks TLS to the leaves it discovers",
  async () => {
    const etcd = await startEtcd();
    const etcdFlags = ["--etcd", etcd.clientUrl, "--etcd-prefix", "/tls-test", "--pool", "found"];
    const router = await routerWith({
      etcd: { endpoints: [etcd.clientUrl], prefix: "/tls-test" },
      pools: { found: { discovery: "etcd", timeoutMs: 2000, tls: { ca: pki.caFile } } },
      route: "found",
    });
    // A leaf that speaks only TLS: the router's sets reach it only over TLS.
    await startLeaf(
      ["--port", "0", "--tls-cert", pki.serverCertFile, "--tls-key", pki.serverKeyFile, ...etcdFlags],
      { binary: "compiled" },
    );
    await router.waitForStdout(/membership changed \(pools found: 1\)/, 10_000);
    expect(await roundTrip(router, "discovered", 10)).toEqual(expected("discovered", 10));
  },
  SERVER_TEST_MS,
);

describe("certificates the router refuses", () => {
  test(
    "a leaf whose certificate another CA signed: requests fail, the log names the problem",
    async () => {
      const router = await routerWith(poolConfig([address(foreignLeaf)], { ca: pki.caFile }));
      const replies = await refusedReplies(router);
      expect(replies).not.toContain("STORED");
      expect(replies).toContain("SERVER_ERROR");
      const line = await router.waitForStdout(/marked down \(TKO\): (.*)$/m);
      expect(line[1]).toContain("TLS handshake failed: unable to verify the first certificate");
      expect(line[1]).toContain("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
      // The leaf itself is fine: a router with its CA stores through it.
      const trusting = await routerWith(poolConfig([address(foreignLeaf)], { ca: otherPki.caFile }));
      expect(await roundTrip(trusting, "foreign", 5)).toEqual(expected("foreign", 5));
    },
    SERVER_TEST_MS,
  );

  test(
    "a leaf reached by a name its certificate does not carry is refused unless serverName names it",
    async () => {
      const byName = [address(leaves[0] as LeafProcess, "localhost")];
      const mismatched = await routerWith(poolConfig(byName, { ca: pki.caFile }));
      expect(await refusedReplies(mismatched)).not.toContain("STORED");
      const line = await mismatched.waitForStdout(/marked down \(TKO\): (.*)$/m);
      expect(line[1]).toContain("Hostname/IP does not match certificate's altnames");
      expect(line[1]).toContain("localhost");
      const named = await routerWith(poolConfig(byName, { ca: pki.caFile, serverName: "gravity.test" }));
      expect(await roundTrip(named, "server-name", 5)).toEqual(expected("server-name", 5));
      const wrongName = await routerWith(
        poolConfig([address(leaves[0] as LeafProcess)], { ca: pki.caFile, serverName: "other.test" }),
      );
      expect(await refusedReplies(wrongName)).not.toContain("STORED");
    },
    SERVER_TEST_MS,
  );

  test(
    "a leaf run with --tls-ca accepts the router with its client certificate and refuses it without",
    async () => {
      const withCert = await routerWith(
        poolConfig([address(mutualLeaf)], {
          ca: pki.caFile,
          cert: pki.clientCertFile,
          key: pki.clientKeyFile,
        }),
      );
      expect(await roundTrip(withCert, "mutual", 5)).toEqual(expected("mutual", 5));
      const withoutCert = await routerWith(poolConfig([address(mutualLeaf)], { ca: pki.caFile }));
      expect(await refusedReplies(withoutCert)).not.toContain("STORED");
      const line = await withoutCert.waitForStdout(/marked down \(TKO\): (.*)$/m);
      // The leaf's alert, or, when our first request crossed its close and the reset came first
      // (Linux then drops the alert unread), the hint for a socket lost before any reply.
      expect(line[1]).toMatch(/the server requires a client certificate|refuses our client certificate/);
      // A client certificate from a CA the leaf does not trust is refused too.
      const foreignCert = await routerWith(
        poolConfig([address(mutualLeaf)], {
          ca: pki.caFile,
          cert: otherPki.clientCertFile,
          key: otherPki.clientKeyFile,
        }),
      );
      expect(await refusedReplies(foreignCert)).not.toContain("STORED");
      const closed = await foreignCert.waitForStdout(/marked down \(TKO\): (.*)$/m);
      expect(closed[1]).toContain("as a server that refuses our client certificate does");
    },
    SERVER_TEST_MS,
  );
});

describe("a pool's tls section in the config", () => {
  const servers = ["127.0.0.1:11311"];
  const cases: [string, () => unknown, string][] = [
    [
      "without ca",
      () => poolConfig(servers, { cert: pki.clientCertFile, key: pki.clientKeyFile }),
      "pools.main.tls.ca",
    ],
    [
      "cert without key",
      () => poolConfig(servers, { ca: pki.caFile, cert: pki.clientCertFile }),
      "pools.main.tls.key: expected a PEM private key file too (with cert), but it is missing",
    ],
    [
      "an unreadable file",
      () => poolConfig(servers, { ca: join(pki.dir, "no-such-ca.pem") }),
      "pools.main.tls.ca: expected a PEM CA bundle file (cannot read",
    ],
    [
      "a file that is not PEM",
      () => poolConfig(servers, { ca: join(pki.dir, "server.ext") }),
      "pools.main.tls.ca: expected a PEM CA bundle file (",
    ],
    [
      "tls on a nats pool",
      () => ({
        nats: { servers: ["127.0.0.1:4222"] },
        pools: { main: { servers, transport: "nats", tls: { ca: pki.caFile } } },
        route: "main",
      }),
      "pools.main.tls: expected no tls with transport: nats",
    ],
  ];
  for (const [name, config, field] of cases) {
    test(`${name}: exit 2 naming the field`, async () => {
      const run = await runGravity(["router", "--port", "0", "--config", writeConfig(config())], {
        binary: "compiled",
      });
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(field);
    });
  }

  test(
    "a reload with an unreadable file is refused and the old config kept",
    async () => {
      const file = writeConfig(poolConfig([address(leaves[0] as LeafProcess)], { ca: pki.caFile }));
      const router = await startRouter(["--port", "0", "--config", file], { binary: "compiled" });
      expect(await roundTrip(router, "before-reload", 5)).toEqual(expected("before-reload", 5));
      writeFileSync(
        file,
        JSON.stringify(poolConfig([address(leaves[0] as LeafProcess)], { ca: join(pki.dir, "gone.pem") })),
      );
      router.signal("SIGHUP");
      const refused = await pollUntil(
        () => /keeping the previous config: (.*)$/m.exec(router.stderr())?.[1],
        {
          deadlineMs: 10_000,
          what: "the router's refusal of the reload",
        },
      );
      expect(refused).toContain("pools.main.tls.ca: expected a PEM CA bundle file (cannot read");
      expect(await roundTrip(router, "after-reload", 5)).toEqual(expected("after-reload", 5));
    },
    SERVER_TEST_MS,
  );
});

describe("a TLS connection whose handshake never completes", () => {
  test("fails the connect at connectTimeoutMs and closes the socket", async () => {
    let closedByClient = false;
    let accepted = 0;
    // Accepts and reads, never answers: the client's ClientHello goes unanswered.
    const silent = Bun.listen<undefined>({
      hostname: HOST,
      port: 0,
      socket: {
        open: () => void accepted++,
        data: () => {},
        close: () => {
          closedByClient = true;
        },
      },
    });
    const connection = new TcpConnection({
      host: HOST,
      port: silent.port,
      tls: { ca: pki.ca },
      timeoutMs: 5000,
      connectTimeoutMs: 300,
    });
    try {
      const error = await connection.send(encodeVersion(), Expect.Line).then(
        () => new Error("expected a rejection, got a reply"),
        (caught: Error) => caught,
      );
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error.message).toContain("cannot connect: connect timed out after 300 ms");
      expect(accepted).toBe(1);
      await pollUntil(() => (closedByClient ? true : undefined), {
        deadlineMs: 5000,
        what: "the abandoned handshake's socket to close",
      });
    } finally {
      await connection.close();
      silent.stop(true);
    }
  });
});

describe("a TLS connection lost before any reply", () => {
  // A TLS server that reads the first request and closes the socket `closeAfterMs` later, unanswered.
  async function lostError(closeAfterMs: number): Promise<Error> {
    const closer = Bun.listen<undefined>({
      hostname: HOST,
      port: 0,
      tls: { cert: Bun.file(pki.serverCertFile), key: Bun.file(pki.serverKeyFile) },
      socket: {
        data: (socket) => void setTimeout(() => socket.end(), closeAfterMs),
      },
    });
    const connection = new TcpConnection({
      host: HOST,
      port: closer.port,
      tls: { ca: pki.ca },
      timeoutMs: 10_000,
    });
    try {
      return await connection.send(encodeVersion(), Expect.Line).then(
        () => new Error("expected a rejection, got a reply"),
        (caught: Error) => caught,
      );
    } finally {
      await connection.close();
      closer.stop(true);
    }
  }

  test("right after the handshake: the error says a refused client certificate may be why", async () => {
    const error = await lostError(0);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.message).toContain(
      "before any reply (as a server that refuses our client certificate does)",
    );
  });

  test("a second or more after the handshake (a leaf stopped while quiet): no such hint", async () => {
    const error = await lostError(1500);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.message).toContain("connection lost");
    expect(error.message).not.toContain("client certificate");
  });
});
