// SASL PLAIN over the binary protocol (memcached -S): a leaf and a router over two sharded leaves,
// each given one password file in memcached's format (--sasl-file), against real memcached -S.
// memjs with the right credentials works and without them is refused; raw frames get memcached's
// replies byte for byte. Debian's memcached is built without its password file (ENABLE_SASL_PWDB)
// and checks users in Cyrus's sasldb, which nothing here can write: memcached refuses every user,
// so it is the reference for what an unauthenticated or refused client sees, and the leaf (whose
// successful replies native/test/binary_protocol_test.cc checks) for what an authenticated one sees.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as MemjsClient } from "memjs";
import { exchange, frame, Op, SENTINEL, u32s } from "./helpers/binary-frames.ts";
import { startShardedRouter } from "./helpers/client-targets.ts";
import { McClient } from "./helpers/mc-client.ts";
import {
  HOST,
  SERVER_TEST_MS,
  type ServerProcess,
  startLeaf,
  startMemcached,
  stopAll,
} from "./helpers/servers.ts";

const SASL = { ListMechs: 0x20, Auth: 0x21 } as const;
const plain = (user: string, password: string) => `\0${user}\0${password}`;
const quiet = { retries: 0, timeout: 5, logger: { log() {} } };

const servers: Record<string, ServerProcess> = {};

afterAll(stopAll);

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "gravity-sasl-"));
  const passwords = join(dir, "memcached-sasl-pwdb");
  writeFileSync(passwords, "alice:secret\nbob:hunter2:more fields\n");
  // memcached's Cyrus SASL reads its mechanisms from <SASL_CONF_PATH>/memcached.conf.
  mkdirSync(join(dir, "sasl"));
  writeFileSync(join(dir, "sasl", "memcached.conf"), "mech_list: plain\n");
  const [memcached, leaf, shardA, shardB] = await Promise.all([
    startMemcached({ extraArgs: ["-S"], env: { SASL_CONF_PATH: join(dir, "sasl") } }),
    startLeaf(["--port", "0", "--sasl-file", passwords]),
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0"]),
  ]);
  const router = await startShardedRouter([shardA, shardB], ["--sasl-file", passwords]);
  Object.assign(servers, { memcached, leaf, router });
}, SERVER_TEST_MS);

function memjs(server: ServerProcess, credentials: { username?: string; password?: string }) {
  return MemjsClient.create(`${HOST}:${server.port}`, { ...quiet, ...credentials });
}

describe.each([
  ["memcached -S (the harness works)", "memcached"],
  ["a leaf", "leaf"],
  ["a router over two sharded leaves", "router"],
] as const)("SASL against %s: clients that have not authenticated", (_, name) => {
  const server = () => servers[name] as ServerProcess;

  test("memjs with a wrong password, an unknown user or no credentials is refused", async () => {
    for (const credentials of [
      { username: "alice", password: "wrong" },
      { username: "mallory", password: "secret" },
      {},
    ]) {
      const client = memjs(server(), credentials);
      try {
        await expect(client.get("sasl:a")).rejects.toThrow();
      } finally {
        client.close();
      }
    }
  });

  test("raw frames: version, mechanisms, a refused PLAIN, then a command: memcached's replies and close", async () => {
    const stream = Buffer.concat([
      frame({ opcode: Op.Version, opaque: 1 }),
      frame({ opcode: SASL.ListMechs, opaque: 2 }),
      frame({ opcode: SASL.Auth, key: "PLAIN", value: plain("alice", "wrong"), opaque: 3 }),
      frame({ opcode: SASL.Auth, key: "CRAM-MD5", value: "alice", opaque: 4 }),
      frame({ opcode: Op.Get, key: "sasl:a", opaque: 5 }),
      frame({ opcode: Op.Noop, opaque: 6 }),
    ]);
    const want = await exchange(servers.memcached as ServerProcess, stream, { expectClose: true });
    const got = await exchange(server(), stream, { expectClose: true });
    // The version reply differs between servers; every other frame is memcached's.
    expect(want.frames.length).toBe(5);
    expect(got.frames.slice(1)).toEqual(want.frames.slice(1));
    expect(got.closed).toBe(true);
    const refused = Buffer.from(got.frames[4] ?? "", "hex");
    expect(refused.readUInt16BE(6)).toBe(0x20);
    expect(refused.subarray(24).toString()).toBe("Auth failure.");
  });

  test("the text protocol is refused: the connection closes without a reply", async () => {
    const client = await McClient.connect(server().port, HOST);
    try {
      // 24 bytes or more: memcached reads a whole binary header before it checks the magic byte.
      await client.send(new TextEncoder().encode("get a-key-long-enough-for-a-header\r\n"));
      await client.waitClosed(10_000);
      expect(client.buffered().length).toBe(0);
    } finally {
      client.close();
    }
  });
});

describe.each([
  ["a leaf", "leaf"],
  ["a router over two sharded leaves", "router"],
] as const)("SASL against %s: authenticated clients", (_, name) => {
  const server = () => servers[name] as ServerProcess;

  test("memjs with the right credentials: set, get, incr, delete, stats", async () => {
    const client = memjs(server(), { username: "bob", password: "hunter2" });
    try {
      expect(await client.set("sasl:a", "hello")).toBe(true);
      expect((await client.get("sasl:a")).value?.toString()).toBe("hello");
      expect(await client.increment("sasl:n", 1, { initial: 7 })).toEqual({ success: true, value: 7 });
      expect(await client.delete("sasl:a")).toBe(true);
      const stats = await new Promise<Record<string, string>>((resolve, reject) => {
        client.stats((err, _server, values) => (err || !values ? reject(err) : resolve(values)));
      });
      expect(stats.pid).toBe(String(server().pid));
    } finally {
      client.close();
    }
  });

  test("raw frames: a refused PLAIN, a good one, then commands: the leaf's replies", async () => {
    const stream = Buffer.concat([
      frame({ opcode: SASL.Auth, key: "PLAIN", value: plain("alice", "wrong"), opaque: 1 }),
      frame({ opcode: SASL.Auth, key: "PLAIN", value: plain("alice", "secret"), opaque: 2 }),
      frame({ opcode: Op.Set, key: `sasl:raw:${name}`, extras: u32s(7, 0), value: "v", opaque: 3 }),
      frame({ opcode: Op.Get, key: `sasl:raw:${name}`, opaque: 4 }),
      frame({ opcode: Op.Noop, opaque: SENTINEL }),
    ]);
    const got = await exchange(server(), stream, { untilOpaque: SENTINEL });
    const reference = await exchange(servers.leaf as ServerProcess, stream, { untilOpaque: SENTINEL });
    expect(got.frames).toEqual(reference.frames);
    const frames = got.frames.map((hex) => Buffer.from(hex, "hex"));
    expect(frames.map((f) => f.readUInt16BE(6))).toEqual([0x20, 0, 0, 0, 0]);
    expect(frames[1]?.subarray(24).toString()).toBe("Authenticated");
    expect(frames[3]?.subarray(28).toString()).toBe("v");
  });
});
