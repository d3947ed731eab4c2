// NATS going away and coming back, with a real nats-server stopped and restarted on its port:
// NATS paths fail fast with "NATS unreachable" (no hang, in-flight requests included), the TCP
// path to a real memcached keeps working, and once the server is back every link reconnects by
// itself (a link opened while it was down included) and round trips work again.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { headers } from "nats";
import { ConnectionError } from "../src/errors.ts";
import { serveLeafOverNats } from "../src/leaf/nats-leaf.ts";
import { NativeRequestHandler } from "../src/leaf/nats-native-handler.ts";
import { native } from "../src/native/index.ts";
import { encodeGet, encodeStore } from "../src/protocol/encoder.ts";
import { Expect, ReplyType } from "../src/protocol/reply.ts";
import { parseRequest } from "../src/protocol/request-parser.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { NatsDestination, NatsPoolBroadcast } from "../src/transport/nats-destination.ts";
import { serveIngress } from "../src/transport/nats-ingress.ts";
import { InvalidationBus } from "../src/transport/nats-invalidation.ts";
import { NatsLink, type NatsLinkStatus } from "../src/transport/nats-link.ts";
import { leafSubject } from "../src/transport/nats-subjects.ts";
import { TcpPool } from "../src/transport/tcp-pool.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import { SERVER_TEST_MS, startMemcached, stopAll } from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

const MIB = 1024 * 1024;
const PREFIX = "t4";
const text = (bytes: Uint8Array | null | undefined) =>
  Buffer.from(bytes ?? new Uint8Array(0)).toString("latin1");

let server: NatsServer;
let leafLink: NatsLink;
let routerLink: NatsLink;
let tcp: TcpPool;
const statuses: NatsLinkStatus[] = [];
const handler = new NativeRequestHandler();
const closers: (() => Promise<void>)[] = [];

function getHeaders() {
  const h = headers();
  h.set("op", "get");
  return h;
}

beforeAll(async () => {
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  const [nats, memcached] = await Promise.all([startNats(), startMemcached()]);
  server = nats;
  tcp = new TcpPool({ host: memcached.host, port: memcached.port, timeoutMs: 2000 });
  leafLink = NatsLink.open({ servers: server.url, reconnectWaitMs: 50 });
  routerLink = NatsLink.open({
    servers: server.url,
    reconnectWaitMs: 50,
    onStatus: (status) => statuses.push(status),
  });
  await Promise.all([leafLink.ready(), routerLink.ready()]);
  const leaf = serveLeafOverNats({
    link: leafLink,
    prefix: PREFIX,
    pool: "p",
    leafId: "l1",
    handle: (r) => handler.handle(r),
  });
  closers.push(() => leaf.close());
  await leaf.ready;
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const close of closers) await close();
  handler.close();
  await tcp?.close();
  await routerLink?.close();
  await leafLink?.close();
  await Promise.all([stopAllNats(), stopAll()]);
});

// Resolves at the link's next disconnect (registered before the server is stopped).
function nextDisconnect(link: NatsLink): Promise<ConnectionError> {
  return withDeadline(
    new Promise<ConnectionError>((resolve) => {
      const stop = link.onDisconnect((error) => {
        stop();
        resolve(error);
      });
    }),
    5000,
    "the link to see the disconnect",
  );
}

test(
  "NATS stopped: NATS paths fail fast, TCP works; restarted: everything reconnects by itself",
  async () => {
    const leaf = new NatsDestination({
      link: routerLink,
      prefix: PREFIX,
      pool: "p",
      leafId: "l1",
      timeoutMs: 2000,
      tko: POOL_DEFAULTS.tko,
    });
    const broadcast = new NatsPoolBroadcast({
      link: routerLink,
      prefix: PREFIX,
      pool: "p",
      replicas: 1,
      timeoutMs: 2000,
    });
    const bus = new InvalidationBus({
      link: routerLink,
      subject: `${PREFIX}.inv`,
      clusterId: "c1",
      apply: async () => {},
    });
    const ingress = serveIngress({
      link: routerLink,
      prefix: PREFIX,
      route: (r) => leaf.send(r),
    });
    closers.push(
      () => bus.close(),
      () => ingress.close(),
      () => leaf.close(),
      () => broadcast.close(),
    );
    await Promise.all([bus.ready, ingress.ready]);
    expect((await leaf.send(parseRequest(encodeStore("set", "o:1", "before")))).type).toBe(ReplyType.Stored);

    // A request in flight to a leaf that never answers, with a long timeout.
    const nc = leafLink.require();
    nc.subscribe(leafSubject(PREFIX, "p", "silent"), { callback: () => {} });
    await nc.flush();
    const silent = new NatsDestination({
      link: routerLink,
      prefix: PREFIX,
      pool: "p",
      leafId: "silent",
      timeoutMs: 20_000,
      tko: POOL_DEFAULTS.tko,
    });
    const inFlight = silent.send(parseRequest(encodeGet(["k"]))).catch((caught: unknown) => caught);

    const disconnected = nextDisconnect(routerLink);
    const stoppedAt = performance.now();
    await server.stop();
    await disconnected;
    const lost = await withDeadline(inFlight, 5000, "the in-flight request to fail");
    expect(lost).toBeInstanceOf(ConnectionError);
    expect((lost as Error).message).toContain("NATS unreachable");
    expect(performance.now() - stoppedAt).toBeLessThan(5000); // not the 20 s timeout
    expect(routerLink.connected).toBe(false);
    expect(leaf.down).toBe(true);

    // Every NATS path fails at once with a clear error.
    let start = performance.now();
    const error = await leaf.send(parseRequest(encodeGet(["o:1"]))).catch((caught: unknown) => caught);
    expect(performance.now() - start).toBeLessThan(100);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toMatch(
      /^nats 127\.0\.0\.1:\d+: NATS unreachable: .*reconnecting in the background$/,
    );
    start = performance.now();
    await expect(broadcast.publishToAll(encodeStore("set", "o:2", "x"), Expect.Line)).rejects.toThrow(
      /NATS unreachable/,
    );
    expect(() => bus.publishDelete(new Uint8Array([0x6b]))).toThrow(/NATS unreachable/);
    expect(performance.now() - start).toBeLessThan(100);

    // The TCP path does not notice.
    expect((await tcp.send(encodeStore("set", "tcp:1", "still"), Expect.Line)).type).toBe(ReplyType.Stored);
    expect(text((await tcp.send(encodeGet(["tcp:1"]), Expect.Values)).items?.[0]?.value)).toBe("still");

    // A link opened while NATS is down waits in the background, failing fast meanwhile.
    const late = NatsLink.open({ servers: server.url, reconnectWaitMs: 50 });
    closers.push(() => late.close());
    expect(late.connected).toBe(false);
    expect(() => late.require()).toThrow(ConnectionError);

    // Back on the same port: every link reconnects by itself; subscriptions come back.
    await server.restart();
    await Promise.all([routerLink.ready(), leafLink.ready(), late.ready()]);
    await leafLink.require().flush(); // the leaf's resubscriptions have reached the server
    await routerLink.require().flush(); // and the ingress's
    expect(leaf.down).toBe(false);
    const got = await leaf.send(parseRequest(encodeGet(["o:1"])));
    expect(text(got.items?.[0]?.value)).toBe("before"); // the leaf's store was never down
    const replies = await broadcast.publishToAll(encodeStore("set", "o:2", "after"), Expect.Line);
    expect(replies.map((r) => r.reply?.type)).toEqual([ReplyType.Stored]);
    const answer = await late
      .require()
      .request(`${PREFIX}.ingress.p.o:2`, new Uint8Array(0), { timeout: 2000, headers: getHeaders() });
    expect(answer.headers?.get("status")).toBe("hit");
    expect(text(answer.data)).toBe("after");
    expect(() => bus.publishDelete(new Uint8Array([0x6b]))).not.toThrow();
    expect(statuses).toEqual(["connected", "disconnected", "connected"]);
  },
  SERVER_TEST_MS,
);
