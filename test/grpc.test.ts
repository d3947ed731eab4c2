// The gRPC server over the leaf's store (nativeBackend), in-process: every Cache method, groups as
// "<group>:<key>" items shared with the memcached protocol, TTLs through the store clock, the error
// statuses, GroupCache.Get from a client that knows only groupcache's messages, and the bound on
// calls in flight under 20,000 concurrent calls on one connection (what overflowed Bun's http2).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Client,
  credentials,
  type MethodDefinition,
  makeGenericClientConstructor,
  type ServiceDefinition,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { nativeBackend } from "../src/cache/backend.ts";
import { GrpcCacheClient } from "../src/grpc/client.ts";
import { type GrpcServer, startGrpcServer } from "../src/grpc/server.ts";
import { native } from "../src/native/index.ts";
import { fromLatin1, latin1 } from "./helpers/mc-client.ts";

const MIB = 1024 * 1024;
const HOST = "127.0.0.1";
const utf8 = new TextEncoder();

let open: GrpcServer; // any group
let restricted: GrpcServer; // groups "users" and "sessions" only
let client: GrpcCacheClient;
let restrictedClient: GrpcCacheClient;

beforeAll(async () => {
  // One store per process; the first configure() wins (another in-process test may have done it).
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  open = await startGrpcServer({ host: HOST, port: 0, backend: nativeBackend() });
  restricted = await startGrpcServer({
    host: HOST,
    port: 0,
    backend: nativeBackend(),
    groups: ["users", "sessions"],
  });
  client = new GrpcCacheClient(`${HOST}:${open.port}`);
  restrictedClient = new GrpcCacheClient(`${HOST}:${restricted.port}`);
});

afterAll(async () => {
  client?.close();
  restrictedClient?.close();
  await Promise.all([open?.close(), restricted?.close()]);
});

function bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

/** What a text `get` through a native connection answers for `key`. */
function textGet(key: string): string {
  const conn = native.openConnection();
  try {
    const out = new Uint8Array(64 * 1024);
    return fromLatin1(out.subarray(0, Math.floor(native.feed(conn, latin1(`get ${key}\r\n`), out) / 4)));
  } finally {
    native.closeConnection(conn);
  }
}

/** The call's gRPC status error; fails the test if the call succeeded. */
async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("the call succeeded; expected a gRPC error status");
}

describe("Cache round trips", () => {
  test("set, get, getMulti in request order, touch, delete", async () => {
    await client.set("rt", "a", bytes("alpha"));
    await client.set("rt", "b", bytes("beta"), 100);
    expect(await client.get("rt", "a")).toEqual({ found: true, value: bytes("alpha") });
    expect(await client.get("rt", "missing")).toEqual({ found: false, value: new Uint8Array(0) });
    expect(await client.getMulti("rt", ["b", "missing", "a", "b"])).toEqual([
      { found: true, value: bytes("beta") },
      { found: false, value: new Uint8Array(0) },
      { found: true, value: bytes("alpha") },
      { found: true, value: bytes("beta") },
    ]);
    expect(await client.getMulti("rt", [])).toEqual([]);
    expect(await client.touch("rt", "a", 50)).toBe(true);
    expect(await client.touch("rt", "missing", 50)).toBe(false);
    expect(await client.delete("rt", "a")).toBe(true);
    expect(await client.delete("rt", "a")).toBe(false);
    expect(await client.get("rt", "a")).toEqual({ found: false, value: new Uint8Array(0) });
  });

  test("values are binary-safe; an empty value is found; keys are bytes, not only UTF-8", async () => {
    const binary = new Uint8Array(70_000);
    for (let i = 0; i < binary.length; i++) binary[i] = (i * 31) & 0xff;
    await client.set("bin", "blob", binary);
    expect(await client.get("bin", "blob")).toEqual({ found: true, value: binary });
    await client.set("bin", "empty", new Uint8Array(0));
    expect(await client.get("bin", "empty")).toEqual({ found: true, value: new Uint8Array(0) });
    const latin = new Uint8Array([0xe9, 0x74, 0xe9]); // "été" in Latin-1: not UTF-8
    await client.set("bin", latin, bytes("v"));
    expect(await client.get("bin", latin)).toEqual({ found: true, value: bytes("v") });
    expect(await client.get("bin", "\ufffdt\ufffd")).toMatchObject({ found: false });
  });

  test("the item is stored as <group>:<key>, the same item memcached clients see", async () => {
    await client.set("shared", "k1", bytes("from grpc"));
    expect(textGet("shared:k1")).toBe("VALUE shared:k1 0 9\r\nfrom grpc\r\nEND\r\n");
    native.set("shared:k2", bytes("from memcached"));
    expect(await client.get("shared", "k2")).toEqual({ found: true, value: bytes("from memcached") });
    expect(await client.get("other", "k2")).toMatchObject({ found: false });
  });

  test("stats: the store's counters, and one group's call counters", async () => {
    const before = await client.stats();
    expect(Number(before.get("limit_maxbytes"))).toBe(native.stats().limit_maxbytes);
    await client.set("counted", "x", bytes("1"));
    await client.get("counted", "x");
    await client.getMulti("counted", ["x", "y"]);
    await client.delete("counted", "x");
    await client.touch("counted", "x", 5);
    const after = await client.stats();
    expect(Number(after.get("cmd_set")) - Number(before.get("cmd_set"))).toBe(1);
    expect(Number(after.get("get_hits")) - Number(before.get("get_hits"))).toBe(2);
    expect(Object.fromEntries(await client.stats("counted"))).toEqual({
      cmd_get: "3",
      get_hits: "2",
      get_misses: "1",
      cmd_set: "1",
      cmd_delete: "1",
      delete_hits: "1",
      cmd_touch: "1",
      touch_hits: "0",
    });
    expect(Object.values(Object.fromEntries(await client.stats("never-used")))).toEqual(Array(8).fill("0"));
  });
});

describe("TTL", () => {
  test("an item expires when the store clock passes its TTL; touch gives it a new one", async () => {
    await client.set("ttl", "a", bytes("v"), 10);
    await client.set("ttl", "b", bytes("v"), 10);
    native.advanceClock(9);
    expect(await client.get("ttl", "a")).toMatchObject({ found: true });
    expect(await client.touch("ttl", "b", 100)).toBe(true);
    native.advanceClock(1);
    expect(await client.get("ttl", "a")).toMatchObject({ found: false });
    native.advanceClock(90);
    expect(await client.get("ttl", "b")).toMatchObject({ found: true });
    native.advanceClock(10);
    expect(await client.getMulti("ttl", ["a", "b"])).toEqual([
      { found: false, value: new Uint8Array(0) },
      { found: false, value: new Uint8Array(0) },
    ]);
  });

  test("a negative TTL expires at once; 0 never expires", async () => {
    await client.set("ttl", "neg", bytes("v"), -1);
    await client.set("ttl", "zero", bytes("v"), 0);
    expect(await client.get("ttl", "neg")).toMatchObject({ found: false });
    native.advanceClock(60 * 24 * 3600);
    expect(await client.get("ttl", "zero")).toMatchObject({ found: true });
  });
});

describe("errors", () => {
  test("keys that break memcached's rules are INVALID_ARGUMENT and store nothing", async () => {
    const cases: [string, RegExp][] = [
      ["", /key is empty/],
      ["a b", /key has a space or control byte 0x20 at 1/],
      ["a\r\nb", /key has a space or control byte 0x0d at 1/],
      ["del\x7f", /control byte 0x7f at 3/],
      ["k".repeat(247), /group and key are 251 bytes as "group:key"; memcached's limit is 250/],
    ];
    for (const [key, message] of cases) {
      const errors = await Promise.all(
        [
          client.get("bad", key),
          client.set("bad", key, bytes("v")),
          client.delete("bad", key),
          client.touch("bad", key, 1),
        ].map(failure),
      );
      for (const error of errors) {
        expect(error.code).toBe(status.INVALID_ARGUMENT);
        expect(error.details).toMatch(message);
      }
    }
    // "bad:" + 246 bytes is 250: the longest key passes.
    await client.set("bad", "k".repeat(246), bytes("edge"));
    expect(await client.get("bad", "k".repeat(246))).toEqual({ found: true, value: bytes("edge") });
    const multi = await failure(client.getMulti("bad", ["ok", "not ok"]));
    expect([multi.code, multi.details]).toEqual([
      status.INVALID_ARGUMENT,
      "keys[1]: key has a space or control byte 0x20 at 3",
    ]);
  });

  test("bad groups are INVALID_ARGUMENT", async () => {
    const cases: [string, RegExp][] = [
      ["", /group is empty/],
      ["a:b", /group "a:b" contains ':', which separates group and key/],
      ["a b", /group "a b" has a space or control character at 1/],
    ];
    for (const [group, message] of cases) {
      const calls: Promise<unknown>[] = [
        client.get(group, "k"),
        client.set(group, "k", bytes("v")),
        client.getMulti(group, ["k"]),
      ];
      // Stats with an empty group is the server's own counters, not a group's.
      if (group !== "") calls.push(client.stats(group));
      for (const error of await Promise.all(calls.map(failure))) {
        expect([error.code, error.details]).toEqual([
          status.INVALID_ARGUMENT,
          expect.stringMatching(message),
        ]);
      }
    }
  });

  test('a group the server was not configured with is NOT_FOUND "unknown group"', async () => {
    await restrictedClient.set("users", "u1", bytes("ann"));
    expect(await restrictedClient.get("users", "u1")).toEqual({ found: true, value: bytes("ann") });
    const errors = await Promise.all(
      [
        restrictedClient.get("orders", "u1"),
        restrictedClient.set("orders", "u1", bytes("v")),
        restrictedClient.getMulti("orders", ["u1"]),
        restrictedClient.stats("orders"),
      ].map(failure),
    );
    for (const error of errors) {
      expect([error.code, error.details]).toEqual([status.NOT_FOUND, 'unknown group "orders"']);
    }
    // A malformed group is still a bad argument, not an unknown group.
    expect((await failure(restrictedClient.get("a:b", "k"))).code).toBe(status.INVALID_ARGUMENT);
    await expect(
      startGrpcServer({ host: HOST, port: 0, backend: nativeBackend(), groups: ["a:b"] }),
    ).rejects.toThrow(/group "a:b" contains ':'/);
  });

  test("a value over the item size limit is INVALID_ARGUMENT and drops the old value", async () => {
    await client.set("big", "v", bytes("old"));
    const error = await failure(client.set("big", "v", new Uint8Array(MIB)));
    expect([error.code, error.details]).toEqual([
      status.INVALID_ARGUMENT,
      "SERVER_ERROR object too large for cache",
    ]);
    expect(await client.get("big", "v")).toMatchObject({ found: false });
    // Past grpc-js's default 4 MiB message limit the server refuses the message itself.
    const huge = await failure(client.set("big", "v", new Uint8Array(5 * MIB)));
    expect(huge.code).toBe(status.RESOURCE_EXHAUSTED);
  });

  test("bytes that are not the request message are INVALID_ARGUMENT", async () => {
    const raw = (bytes: Uint8Array) =>
      new Promise<ServiceError>((resolve, reject) => {
        client.client.makeUnaryRequest(
          "/gravity.v1.Cache/Get",
          (message: Uint8Array) => Buffer.from(message),
          (message: Buffer) => message,
          bytes,
          (error) => (error === null ? reject(new Error("the call succeeded")) : resolve(error)),
        );
      });
    const truncated = await raw(new Uint8Array([0x0a, 0x05, 0x61]));
    expect(truncated.code).toBe(status.INVALID_ARGUMENT);
    expect(truncated.details).toStartWith("malformed gravity.v1.GetRequest: ");
    expect((await raw(new Uint8Array([0x0f]))).code).toBe(status.INVALID_ARGUMENT);
  });

  test("GetMulti with more keys than maxKeysPerCall is INVALID_ARGUMENT", async () => {
    const keys = Array.from({ length: 1025 }, (_, i) => `k${i}`);
    const error = await failure(client.getMulti("many", keys));
    expect([error.code, error.details]).toEqual([
      status.INVALID_ARGUMENT,
      "1025 keys in one GetMulti; the limit is 1024",
    ]);
    expect(await client.getMulti("many", keys.slice(0, 1024))).toHaveLength(1024);
  });
});

describe("GroupCache.Get", () => {
  // A client built from groupcache's messages alone, as a groupcache peer would be: nothing of
  // gravity.proto or of the server's generated code; proto-loader (protobuf.js) encodes them from
  // proto/groupcache.proto, and the method path is written out.
  const groupcacheProto = loadSync(new URL("../proto/groupcache.proto", import.meta.url).pathname);
  const getMethod = (groupcacheProto["groupcachepb.GroupCache"] as ServiceDefinition).Get as MethodDefinition<
    unknown,
    unknown
  >;
  type PeerResponse = { value?: Uint8Array; minuteQps?: number };

  function groupCacheClient(path: string, port: number) {
    const Constructor = makeGenericClientConstructor({ get: { ...getMethod, path } }, "GroupCache");
    const peer = new Constructor(`${HOST}:${port}`, credentials.createInsecure()) as unknown as Client & {
      get(
        request: { group: string; key: Uint8Array },
        callback: (error: ServiceError | null, response?: PeerResponse) => void,
      ): void;
    };
    const get = (group: string, key: string) =>
      new Promise<PeerResponse>((resolve, reject) =>
        peer.get({ group, key: bytes(key) }, (error, response) =>
          error === null
            ? resolve(response?.value === undefined ? {} : { value: new Uint8Array(response.value) })
            : reject(error),
        ),
      );
    return { get, close: () => peer.close() };
  }

  for (const path of ["/groupcachepb.GroupCache/Get", "/GroupCache/Get"]) {
    test(`${path}: a hit is the value, a miss NOT_FOUND, an unknown group NOT_FOUND`, async () => {
      await client.set("photos", "p1", bytes("jpeg bytes"));
      await client.set("photos", "empty", new Uint8Array(0));
      const peer = groupCacheClient(path, open.port);
      const restrictedPeer = groupCacheClient(path, restricted.port);
      try {
        expect(await peer.get("photos", "p1")).toEqual({ value: bytes("jpeg bytes") });
        expect(await peer.get("photos", "empty")).toEqual({ value: new Uint8Array(0) });
        const miss = await failure(peer.get("photos", "absent"));
        expect(miss.code).toBe(status.NOT_FOUND);
        expect(miss.details).toMatch(/no value for this key in group "photos"/);
        expect((await failure(peer.get("photos", "a b"))).code).toBe(status.INVALID_ARGUMENT);
        const unknown = await failure(restrictedPeer.get("photos", "p1"));
        expect([unknown.code, unknown.details]).toEqual([status.NOT_FOUND, 'unknown group "photos"']);
      } finally {
        peer.close();
        restrictedPeer.close();
      }
    });
  }
});

describe("calls in flight are bounded", () => {
  test("20,000 concurrent calls on one connection complete or get RESOURCE_EXHAUSTED; the server answers after", async () => {
    await client.set("load", "k", bytes("v"));
    const loaded = new GrpcCacheClient(`${HOST}:${open.port}`);
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 20_000 }, () =>
          loaded.get("load", "k").then(
            (response) => (response.found ? "OK" : "MISS"),
            (error: ServiceError) => status[error.code] ?? String(error.code),
          ),
        ),
      );
      const counts: Record<string, number> = {};
      for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
      expect(Object.keys(counts).filter((name) => name !== "OK" && name !== "RESOURCE_EXHAUSTED")).toEqual(
        [],
      );
      expect((counts.OK ?? 0) + (counts.RESOURCE_EXHAUSTED ?? 0)).toBe(20_000);
      expect(open.inFlight).toBe(0);
      expect(await loaded.get("load", "k")).toEqual({ found: true, value: bytes("v") });
      expect(await client.get("load", "k")).toEqual({ found: true, value: bytes("v") });
    } finally {
      loaded.close();
    }
  }, 60_000);
});
