// `transport: nats` against a real nats-server: this process's native store served over NATS by
// serveLeafOverNats + NativeRequestHandler (the leaf side), reached by NatsDestination and
// NatsPoolBroadcast (the router side). The store is process-global, so "two leaves" are two
// subscriptions with separate handlers and separate native connections in this process: they
// share one store, and each records what it received, which is what the broadcast tests check.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ConnectionError, ProtocolError, TimeoutError } from "../src/errors.ts";
import { type LeafOverNats, serveLeafOverNats } from "../src/leaf/nats-leaf.ts";
import { NativeRequestHandler } from "../src/leaf/nats-native-handler.ts";
import { getValue, native } from "../src/native/index.ts";
import {
  encodeDelete,
  encodeGet,
  encodeMetaGet,
  encodeMetaSet,
  encodeStore,
  encodeTouch,
} from "../src/protocol/encoder.ts";
import { Expect, ReplyType } from "../src/protocol/reply.ts";
import { Op, Request } from "../src/protocol/request.ts";
import { parseRequest } from "../src/protocol/request-parser.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { NatsDestination, NatsPoolBroadcast, parseReply } from "../src/transport/nats-destination.ts";
import { NatsLink } from "../src/transport/nats-link.ts";
import { leafSubject } from "../src/transport/nats-subjects.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import { SERVER_TEST_MS } from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

// A request whose bytes are not what a parser would accept (a router never sends one): `op` says
// what reply to expect, `text` is what goes out.
function unparsed(op: Op, text: string): Request {
  const request = new Request(op);
  request.raw = new TextEncoder().encode(text);
  return request;
}

const MIB = 1024 * 1024;
const PREFIX = "t1";
const POOL = "main";
const utf8 = new TextEncoder();
const text = (bytes: Uint8Array | null | undefined) =>
  Buffer.from(bytes ?? new Uint8Array(0)).toString("latin1");

let server: NatsServer;
let leafLink: NatsLink;
let routerLink: NatsLink;
const handlers: NativeRequestHandler[] = [];
const leaves: LeafOverNats[] = [];
// What each leaf received, in order (the broadcast tests look at these).
const received = new Map<string, string[]>();
const arrivals: (() => void)[] = [];

function serveLeaf(leafId: string): LeafOverNats {
  const handler = new NativeRequestHandler();
  handlers.push(handler);
  received.set(leafId, []);
  const leaf = serveLeafOverNats({
    link: leafLink,
    prefix: PREFIX,
    pool: POOL,
    leafId,
    handle: (request) => {
      received.get(leafId)?.push(text(request));
      for (const arrived of arrivals.splice(0)) arrived();
      return handler.handle(request);
    },
  });
  leaves.push(leaf);
  return leaf;
}

// Resolves once `check` holds after a leaf received something (no polling, no sleep).
function whenReceived(check: () => boolean, what: string): Promise<void> {
  return withDeadline(
    new Promise<void>((resolve) => {
      const test = () => {
        if (check()) resolve();
        else arrivals.push(test);
      };
      test();
    }),
    5000,
    what,
  );
}

beforeAll(async () => {
  // The first configure() in a process wins; another in-process test may have configured it first.
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  server = await startNats();
  leafLink = NatsLink.open({ servers: server.url, reconnectWaitMs: 50 });
  routerLink = NatsLink.open({ servers: server.url, reconnectWaitMs: 50 });
  await Promise.all([leafLink.ready(), routerLink.ready()]);
  await Promise.all([serveLeaf("127.0.0.1:11211").ready, serveLeaf("leaf-b").ready]);
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const leaf of leaves) await leaf.close();
  for (const handler of handlers) handler.close();
  await routerLink?.close();
  await leafLink?.close();
  await stopAllNats();
});

function destination(leafId = "127.0.0.1:11211", timeoutMs = 2000): NatsDestination {
  return new NatsDestination({
    link: routerLink,
    prefix: PREFIX,
    pool: POOL,
    leafId,
    timeoutMs,
    tko: POOL_DEFAULTS.tko,
  });
}

describe("NatsDestination", () => {
  test("subjects hold leaf ids with dots as one token", () => {
    expect(destination().subject).toBe("t1.leaf.main.127%2E0%2E0%2E1:11211");
  });

  test("set, get, gets, touch, delete get memcached's replies from the leaf", async () => {
    const leaf = destination();
    const stored = await leaf.send(parseRequest(encodeStore("set", "nt:a", "hello", { flags: 7 })));
    expect(stored.type).toBe(ReplyType.Stored);
    expect(text(getValue("nt:a"))).toBe("hello"); // the native store has it: a TCP get would see it

    const got = await leaf.send(parseRequest(encodeGet(["nt:a"])));
    expect(got.type).toBe(ReplyType.Values);
    expect(got.items?.length).toBe(1);
    expect(text(got.items?.[0]?.value)).toBe("hello");
    expect(got.items?.[0]?.flags).toBe(7);

    const gets = await leaf.send(parseRequest(encodeGet(["nt:a", "nt:none"], "gets")));
    expect(gets.items?.map((item) => text(item.key))).toEqual(["nt:a"]);
    expect(typeof gets.items?.[0]?.cas).toBe("bigint");

    expect((await leaf.send(parseRequest(encodeTouch("nt:a", 100)))).type).toBe(ReplyType.Touched);
    expect((await leaf.send(parseRequest(encodeDelete("nt:a")))).type).toBe(ReplyType.Deleted);
    expect((await leaf.send(parseRequest(encodeDelete("nt:a")))).type).toBe(ReplyType.NotFound);
    const miss = await leaf.send(parseRequest(encodeGet(["nt:a"])));
    expect(miss.items).toEqual([]);
  });

  test("meta commands: ms and mg with flags, a base64 key, EN on a miss", async () => {
    const leaf = destination();
    const key = Buffer.from("nt key with spaces").toString("base64");
    const set = await leaf.send(parseRequest(encodeMetaSet(key, "v1", ["b", "F5", "T60"])));
    expect(set.type).toBe(ReplyType.MetaHeader);
    const got = await leaf.send(parseRequest(encodeMetaGet(key, ["b", "v", "f", "t"])));
    expect(got.type).toBe(ReplyType.MetaValue);
    expect(text(got.value)).toBe("v1");
    expect(got.metaFlag("f")).toBe("5");
    const miss = await leaf.send(parseRequest(encodeMetaGet("nt:nothing", ["v"])));
    expect(miss.type).toBe(ReplyType.MetaMiss);
  });

  test("a value larger than the leaf's reply buffer comes back whole", async () => {
    const leaf = destination();
    const value = new Uint8Array(900 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    expect((await leaf.send(parseRequest(encodeStore("set", "nt:big", value)))).type).toBe(ReplyType.Stored);
    const got = await leaf.send(parseRequest(encodeGet(["nt:big"])));
    expect(got.items?.[0]?.value).toEqual(value);
  });

  test("concurrent requests travel in one message; replies beyond max_payload come back in pieces", async () => {
    const leaf = destination();
    const count = received.get("127.0.0.1:11211")?.length as number;
    const big = (seed: number) => {
      const value = new Uint8Array(700 * 1024);
      for (let i = 0; i < value.length; i++) value[i] = (i * seed) & 0xff;
      return value;
    };
    const [one, two] = await Promise.all([
      leaf.send(parseRequest(encodeStore("set", "nt:big1", big(3)))),
      leaf.send(parseRequest(encodeStore("set", "nt:big2", big(5)))),
    ]);
    expect([one?.type, two?.type]).toEqual([ReplyType.Stored, ReplyType.Stored]);
    // Two 700 KiB sets do not fit one 1 MiB message: two batches.
    expect(received.get("127.0.0.1:11211")?.length).toBe(count + 2);
    // Three gets in one batch: 2.1 MiB of replies, more than max_payload, in pieces.
    const gets = await Promise.all([
      leaf.send(parseRequest(encodeGet(["nt:big2"]))),
      leaf.send(parseRequest(encodeMetaGet("nt:big1", ["v"]))),
      leaf.send(parseRequest(encodeGet(["nt:big1", "nt:none", "nt:big2"]))),
    ]);
    expect(received.get("127.0.0.1:11211")?.length).toBe(count + 3);
    expect(gets[0]?.items?.[0]?.value).toEqual(big(5));
    expect(gets[1]?.value).toEqual(big(3));
    expect(gets[2]?.items?.map((item) => text(item.key))).toEqual(["nt:big1", "nt:big2"]);
    expect(gets[2]?.items?.[1]?.value).toEqual(big(5));
    expect(leaf.inFlightCount).toBe(0);
  });

  test("errors are memcached's: a bad command, an item too large for the leaf", async () => {
    const leaf = destination();
    const unknown = await leaf.send(unparsed(Op.Version, "bogus\r\n"));
    expect(unknown.type).toBe(ReplyType.Error);
    // Under NATS's 1 MiB max_payload; over the leaf's item limit (1 MiB with 66 bytes of overhead).
    const tooBig = await leaf.send(parseRequest(encodeStore("set", "nt:huge", new Uint8Array(MIB - 60))));
    expect(tooBig.type).toBe(ReplyType.ServerError);
    expect(tooBig.text).toBe("object too large for cache");
    expect(received.get("127.0.0.1:11211")?.at(-1)?.startsWith("set nt:huge ")).toBe(true);
  });

  test("a request over NATS's max_payload is not sent: SERVER_ERROR object too large for cache", async () => {
    const leaf = destination();
    const count = received.get("127.0.0.1:11211")?.length;
    const tooBig = await leaf.send(parseRequest(encodeStore("set", "nt:huge", new Uint8Array(2 * MIB))));
    expect(tooBig.type).toBe(ReplyType.ServerError);
    expect(tooBig.text).toBe("object too large for cache");
    expect(received.get("127.0.0.1:11211")?.length).toBe(count);
    expect((await leaf.send(parseRequest(encodeGet(["nt:huge"])))).items).toEqual([]);
  });

  test("an incomplete request gets no reply (ProtocolError) and does not garble the next one", async () => {
    const leaf = destination();
    await expect(leaf.send(unparsed(Op.Set, "set nt:part 0 0 10\r\nabc"))).rejects.toBeInstanceOf(
      ProtocolError,
    );
    const stored = await leaf.send(parseRequest(encodeStore("set", "nt:after", "ok")));
    expect(stored.type).toBe(ReplyType.Stored);
  });

  test("one router's requests to a leaf are applied in order", async () => {
    const leaf = destination();
    const sends = [];
    for (let i = 0; i < 200; i++)
      sends.push(leaf.send(parseRequest(encodeStore("set", "nt:order", String(i)))));
    const get = leaf.send(parseRequest(encodeGet(["nt:order"])));
    await Promise.all(sends);
    expect(text((await get).items?.[0]?.value)).toBe("199");
  });

  test("no leaf subscribed: ConnectionError naming the subject, at once", async () => {
    const nobody = destination("no-such-leaf");
    const start = performance.now();
    const error = await nobody.send(parseRequest(encodeGet(["k"]))).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain("no leaf subscribes to t1.leaf.main.no-such-leaf");
    expect(performance.now() - start).toBeLessThan(1000);
  });

  test("a leaf that never answers: TimeoutError after timeoutMs", async () => {
    const nc = routerLink.require();
    const silent = nc.subscribe(leafSubject(PREFIX, POOL, "silent"), { callback: () => {} });
    await nc.flush();
    try {
      const leaf = destination("silent", 200);
      const start = performance.now();
      const error = await leaf.send(parseRequest(encodeGet(["k"]))).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TimeoutError);
      expect((error as TimeoutError).timeoutMs).toBe(200);
      expect(performance.now() - start).toBeGreaterThanOrEqual(190);
      expect(leaf.inFlightCount).toBe(0);
    } finally {
      silent.unsubscribe();
    }
  });

  test("close() fails what is in flight", async () => {
    const nc = routerLink.require();
    const silent = nc.subscribe(leafSubject(PREFIX, POOL, "silent2"), { callback: () => {} });
    await nc.flush();
    try {
      const leaf = destination("silent2", 5000);
      const pending = leaf.send(parseRequest(encodeGet(["k"]))).catch((caught: unknown) => caught);
      expect(leaf.inFlightCount).toBe(1);
      await leaf.close();
      expect(await pending).toBeInstanceOf(ConnectionError);
      await expect(leaf.send(parseRequest(encodeGet(["k"])))).rejects.toBeInstanceOf(ConnectionError);
    } finally {
      silent.unsubscribe();
    }
  });

  test("onReply hears each reply's latency", async () => {
    const samples: number[] = [];
    const leaf = new NatsDestination({
      link: routerLink,
      prefix: PREFIX,
      pool: POOL,
      leafId: "127.0.0.1:11211",
      timeoutMs: 2000,
      tko: POOL_DEFAULTS.tko,
      onReply: (_sender, ms) => samples.push(ms),
    });
    await leaf.send(parseRequest(encodeGet(["nt:x"])));
    expect(samples.length).toBe(1);
    expect(samples[0]).toBeGreaterThanOrEqual(0);
  });
});

describe("NatsPoolBroadcast", () => {
  test("one publish reaches both replicas; each answers, told apart by leaf id", async () => {
    const broadcast = new NatsPoolBroadcast({
      link: routerLink,
      prefix: PREFIX,
      pool: POOL,
      replicas: 2,
      timeoutMs: 2000,
    });
    const request = encodeStore("set", "nt:replicated", "both");
    const before = [...received.values()].map((list) => list.length);
    const replies = await broadcast.publishToAll(request, Expect.Line);
    expect(replies.map((r) => r.leafId).sort()).toEqual(["127.0.0.1:11211", "leaf-b"]);
    for (const { reply, error } of replies) {
      expect(error).toBeUndefined();
      expect(reply?.type).toBe(ReplyType.Stored);
    }
    // Each leaf got exactly one copy.
    [...received.values()].forEach((list, index) => {
      expect(list.length).toBe((before[index] as number) + 1);
      expect(list.at(-1)).toBe(text(request));
    });
  });

  test("fewer replicas than expected: the replies that came, after the timeout", async () => {
    const broadcast = new NatsPoolBroadcast({
      link: routerLink,
      prefix: PREFIX,
      pool: POOL,
      replicas: 3,
      timeoutMs: 300,
    });
    const start = performance.now();
    const replies = await broadcast.publishToAll(encodeDelete("nt:replicated"), Expect.Line);
    expect(performance.now() - start).toBeGreaterThanOrEqual(290);
    expect(replies.length).toBe(2);
    const types = replies.map((r) => r.reply?.type).sort();
    // One store: the first replica deletes, the second finds nothing.
    expect(types).toEqual([ReplyType.NotFound, ReplyType.Deleted].sort());
  });

  test("fire-and-forget (replicas 0): both replicas receive it, nothing is awaited", async () => {
    const broadcast = new NatsPoolBroadcast({
      link: routerLink,
      prefix: PREFIX,
      pool: POOL,
      replicas: 0,
      timeoutMs: 300,
    });
    const request = encodeStore("set", "nt:async", "fire");
    const lists = [...received.values()];
    const before = lists.map((list) => list.length);
    expect(await broadcast.publishToAll(request, Expect.Line)).toEqual([]);
    await whenReceived(
      () => lists.every((list, index) => list.length === (before[index] as number) + 1),
      "both leaves to receive the fire-and-forget publish",
    );
    expect(text(getValue("nt:async"))).toBe("fire");
  });

  test("no replica subscribed: ConnectionError", async () => {
    const broadcast = new NatsPoolBroadcast({
      link: routerLink,
      prefix: PREFIX,
      pool: "empty",
      replicas: 2,
      timeoutMs: 2000,
    });
    await expect(broadcast.publishToAll(encodeDelete("k"), Expect.Line)).rejects.toBeInstanceOf(
      ConnectionError,
    );
  });
});

describe("parseReply", () => {
  test("one whole reply, else a ProtocolError", () => {
    expect(parseReply(utf8.encode("STORED\r\n"), Expect.Line, "x").type).toBe(ReplyType.Stored);
    expect(() => parseReply(new Uint8Array(0), Expect.Line, "x")).toThrow(/empty reply/);
    expect(() => parseReply(utf8.encode("VALUE k 0 5\r\nab"), Expect.Values, "x")).toThrow(/incomplete/);
    expect(() => parseReply(utf8.encode("STORED\r\nSTORED\r\n"), Expect.Line, "x")).toThrow(ProtocolError);
  });
});
