// The NATS ingress against a real nats-server: a NATS client's get/set/del (the original design's
// interface) through serveIngress, a route that sends to this process's native store over NATS
// (NatsDestination -> serveLeafOverNats), and back. Keys with dots ride in the subject; keys with
// spaces in the `key` header; any bytes in `key-b64`.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { headers, type Msg } from "nats";
import { serveLeafOverNats } from "../src/leaf/nats-leaf.ts";
import { NativeRequestHandler } from "../src/leaf/nats-native-handler.ts";
import { getValue, native } from "../src/native/index.ts";
import type { Request } from "../src/protocol/request.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { NatsDestination } from "../src/transport/nats-destination.ts";
import { type Ingress, ingressGet, ingressSet, serveIngress } from "../src/transport/nats-ingress.ts";
import { NatsLink } from "../src/transport/nats-link.ts";
import { ingressKeySubject, ingressSubject } from "../src/transport/nats-subjects.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import { SERVER_TEST_MS } from "./helpers/servers.ts";

const MIB = 1024 * 1024;
const PREFIX = "t2";
const utf8 = new TextEncoder();
const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? new Uint8Array(0)).toString("utf8");

let server: NatsServer;
let link: NatsLink;
let client: NatsLink;
let ingress: Ingress;
const handler = new NativeRequestHandler();
const routed: { pool: string; request: Request }[] = [];

beforeAll(async () => {
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  server = await startNats();
  link = NatsLink.open({ servers: server.url });
  client = NatsLink.open({ servers: server.url });
  await Promise.all([link.ready(), client.ready()]);
  const leaf = serveLeafOverNats({
    link,
    prefix: PREFIX,
    pool: "users",
    leafId: "l1",
    handle: (r) => handler.handle(r),
  });
  const pools = new Map([
    [
      "users",
      new NatsDestination({
        link,
        prefix: PREFIX,
        pool: "users",
        leafId: "l1",
        timeoutMs: 2000,
        tko: POOL_DEFAULTS.tko,
      }),
    ],
  ]);
  ingress = serveIngress({
    link,
    prefix: PREFIX,
    route: async (request, pool) => {
      routed.push({ pool, request });
      const destination = pools.get(pool);
      if (destination === undefined) throw new Error(`no pool named ${pool}`);
      return destination.send(request);
    },
  });
  await Promise.all([leaf.ready, ingress.ready]);
}, SERVER_TEST_MS);

afterAll(async () => {
  await ingress?.close();
  handler.close();
  await client?.close();
  await link?.close();
  await stopAllNats();
});

interface Call {
  op?: string;
  key?: string;
  keyBase64?: string;
  ttl?: string;
  flags?: string;
  value?: string | Uint8Array;
  /** Put the key in the subject instead of a header. */
  inSubject?: boolean;
  pool?: string;
}

async function call(
  options: Call,
): Promise<{ status: string; error: string; flags: string; value: string; msg: Msg }> {
  const h = headers();
  if (options.op !== undefined) h.set("op", options.op);
  if (options.ttl !== undefined) h.set("ttl", options.ttl);
  if (options.flags !== undefined) h.set("flags", options.flags);
  if (options.keyBase64 !== undefined) h.set("key-b64", options.keyBase64);
  const pool = options.pool ?? "users";
  let subject = ingressSubject(PREFIX, pool);
  if (options.key !== undefined) {
    if (options.inSubject === true) {
      const withKey = ingressKeySubject(PREFIX, pool, options.key);
      if (withKey === undefined) throw new Error(`key ${options.key} cannot go in a subject`);
      subject = withKey;
    } else h.set("key", options.key);
  }
  const value =
    typeof options.value === "string" ? utf8.encode(options.value) : (options.value ?? new Uint8Array(0));
  const msg = await client.require().request(subject, value, { timeout: 3000, headers: h });
  return {
    status: msg.headers?.get("status") ?? "",
    error: msg.headers?.get("error") ?? "",
    flags: msg.headers?.get("flags") ?? "",
    value: text(msg.data),
    msg,
  };
}

describe("ingress", () => {
  test("set, get, del with a dotted key in the subject ({pool}.{key})", async () => {
    const key = "user.42.profile";
    expect((await call({ op: "set", key, inSubject: true, value: "alice", flags: "3" })).status).toBe(
      "stored",
    );
    expect(text(getValue(key))).toBe("alice"); // the same item `get user.42.profile` reads over TCP
    const hit = await call({ op: "get", key, inSubject: true });
    expect(hit).toMatchObject({ status: "hit", value: "alice", flags: "3" });
    expect((await call({ op: "del", key, inSubject: true })).status).toBe("deleted");
    expect((await call({ op: "del", key, inSubject: true })).status).toBe("not_found");
    const miss = await call({ op: "get", key, inSubject: true });
    expect(miss).toMatchObject({ status: "miss", value: "" });
    expect(routed.at(-1)?.pool).toBe("users");
  });

  test("a key with spaces and dots in the key header: meta commands with a base64 key", async () => {
    const key = "city: São Paulo. population";
    expect((await call({ op: "set", key, value: "12M" })).status).toBe("stored");
    const request = routed.at(-1)?.request;
    expect(request?.base64Key).toBe(true);
    expect(text(request?.decodedKey ?? undefined)).toBe(key);
    expect(await call({ op: "get", key })).toMatchObject({ status: "hit", value: "12M", flags: "0" });
    expect((await call({ op: "del", key })).status).toBe("deleted");
    expect((await call({ op: "get", key })).status).toBe("miss");
    expect((await call({ op: "del", key })).status).toBe("not_found");
  });

  test("a key with leading and trailing spaces in key-b64 (NATS trims header values)", async () => {
    const key = "  padded  ";
    const keyBase64 = Buffer.from(key).toString("base64");
    expect((await call({ op: "set", keyBase64, value: "p" })).status).toBe("stored");
    expect(await call({ op: "get", keyBase64 })).toMatchObject({ status: "hit", value: "p" });
    expect((await call({ op: "get", key: "padded" })).status).toBe("miss");
  });

  test("a plain key reaches the same item by subject or by header", async () => {
    expect((await call({ op: "set", key: "shared", inSubject: true, value: "one" })).status).toBe("stored");
    expect(await call({ op: "get", key: "shared" })).toMatchObject({ status: "hit", value: "one" });
  });

  test("ttl: a negative ttl stores an item that is already expired; a ttl is passed as exptime", async () => {
    expect((await call({ op: "set", key: "ttl.gone", inSubject: true, ttl: "-1", value: "x" })).status).toBe(
      "stored",
    );
    expect((await call({ op: "get", key: "ttl.gone", inSubject: true })).status).toBe("miss");
    await call({ op: "set", key: "ttl.kept", inSubject: true, ttl: "300", value: "y" });
    expect(routed.at(-1)?.request.exptime).toBe(300);
    expect((await call({ op: "get", key: "ttl.kept", inSubject: true })).status).toBe("hit");
  });

  test("binary values come back byte for byte", async () => {
    const value = new Uint8Array(70_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 7) & 0xff;
    await call({ op: "set", key: "bin", inSubject: true, value });
    const hit = await call({ op: "get", key: "bin", inSubject: true });
    expect(new Uint8Array(hit.msg.data)).toEqual(value);
  });

  test("bad requests get status error with the reason, and route nothing", async () => {
    const before = routed.length;
    expect(await call({ key: "k" })).toMatchObject({
      status: "error",
      error: expect.stringContaining('"op"'),
    });
    expect(await call({ op: "fetch", key: "k" })).toMatchObject({ status: "error" });
    expect(await call({ op: "get" })).toMatchObject({
      status: "error",
      error: expect.stringContaining("no key"),
    });
    expect(await call({ op: "set", key: "k", ttl: "soon" })).toMatchObject({
      status: "error",
      error: expect.stringContaining('"ttl"'),
    });
    const twice = await call({ op: "get", key: "k", keyBase64: "aw==" });
    expect(twice.error).toContain("given 2 times");
    expect((await call({ op: "get", keyBase64: "not base64!" })).error).toContain("not base64");
    const long = await call({ op: "get", key: "x ".repeat(100) });
    expect(long).toMatchObject({ status: "error", error: expect.stringContaining("too long") });
    expect(routed.length).toBe(before);
  });

  test("an unknown pool or a leaf's error reply: status error with the text", async () => {
    expect(await call({ op: "get", key: "k", pool: "nope" })).toMatchObject({
      status: "error",
      error: "no pool named nope",
    });
    const tooBig = await call({ op: "set", key: "big", value: new Uint8Array(MIB - 60) });
    expect(tooBig).toMatchObject({ status: "error", error: "SERVER_ERROR object too large for cache" });
  });
});

describe("ingress requests", () => {
  test("text keys become text commands with the raw bytes memcached expects", () => {
    expect(text(ingressGet(utf8.encode("a.b")).raw)).toBe("get a.b\r\n");
    const set = ingressSet(utf8.encode("a.b"), utf8.encode("v"), 30, 2);
    expect(text(set.raw)).toBe("set a.b 2 30 1\r\nv\r\n");
    expect(set.exptime).toBe(30);
    expect(set.flags).toBe(2);
  });

  test("other keys become meta commands with the key in base64", () => {
    const key = utf8.encode("a b");
    const get = ingressGet(key);
    expect(text(get.raw)).toBe("mg YSBi b v f\r\n");
    expect(get.itemKey).toEqual(key);
    expect(text(ingressSet(key, utf8.encode("v"), 0, 0).raw)).toBe("ms YSBi 1 b T0 F0\r\nv\r\n");
  });
});
