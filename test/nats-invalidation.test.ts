// The invalidation bus against a real nats-server: buses of clusters "east" and "west" (and a
// second router of "west") on one subject, each on its own NATS connection as separate routers
// would be. A delete published by one cluster is applied by every other cluster, once per
// cluster, and never by its own.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { ConnectionError } from "../src/errors.ts";
import { InvalidationBus } from "../src/transport/nats-invalidation.ts";
import { NatsLink } from "../src/transport/nats-link.ts";
import { type NatsServer, startNats, stopAllNats } from "./helpers/nats.ts";
import { SERVER_TEST_MS } from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

const SUBJECT = "t3.invalidate";
const utf8 = new TextEncoder();
const text = (bytes: Uint8Array) => Buffer.from(bytes).toString("latin1");

let server: NatsServer;
const links: NatsLink[] = [];
const buses: InvalidationBus[] = [];

interface Router {
  bus: InvalidationBus;
  applied: string[];
}

// Keys each waiter wants applied somewhere; resolved by the apply callbacks (no polling).
const waiters: { done: () => boolean; resolve: () => void }[] = [];
function notify(): void {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const waiter = waiters[i] as (typeof waiters)[number];
    if (waiter.done()) {
      waiters.splice(i, 1);
      waiter.resolve();
    }
  }
}
function until(done: () => boolean, what: string): Promise<void> {
  if (done()) return Promise.resolve();
  return withDeadline(new Promise<void>((resolve) => waiters.push({ done, resolve })), 5000, what);
}

async function router(
  clusterId: string,
  options: { apply?: (key: Uint8Array) => Promise<void>; maxConcurrent?: number; queue?: string | null } = {},
): Promise<Router> {
  const link = NatsLink.open({ servers: server.url });
  links.push(link);
  await link.ready();
  const applied: string[] = [];
  const bus = new InvalidationBus({
    link,
    subject: SUBJECT,
    clusterId,
    maxConcurrent: options.maxConcurrent,
    queue: options.queue,
    apply:
      options.apply ??
      (async (key) => {
        applied.push(text(key));
        notify();
      }),
  });
  buses.push(bus);
  await bus.ready;
  return { bus, applied };
}

beforeAll(async () => {
  server = await startNats();
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const bus of buses) await bus.close();
  for (const link of links) await link.close();
  await stopAllNats();
});

test("a delete from one cluster is applied by the other, skipped by its own", async () => {
  const east = await router("east-1");
  const west = await router("west-1");
  east.bus.publishDelete(utf8.encode("user:1"));
  west.bus.publishDelete(utf8.encode("user:2"));
  await until(
    () => west.applied.includes("user:1") && east.applied.includes("user:2"),
    "both deletes applied",
  );
  // Each bus's own delete came back to it (same subject) and was skipped; a marker published after
  // them shows nothing else is on its way.
  east.bus.publishDelete(utf8.encode("marker"));
  await until(() => west.applied.includes("marker"), "the marker");
  await pollUntil(() => (east.bus.counters.received === 3 ? true : undefined), {
    deadlineMs: 5000,
    what: "east to receive its own marker back",
  });
  expect(west.applied).toEqual(["user:1", "marker"]);
  expect(east.applied).toEqual(["user:2"]);
  expect(east.bus.counters).toMatchObject({ published: 2, skippedOwn: 2, applied: 1, received: 3 });
  expect(west.bus.counters).toMatchObject({ published: 1, skippedOwn: 1, applied: 2, received: 3 });
  await Promise.all([east.bus.close(), west.bus.close()]);
});

test("two routers of one cluster share its queue group: each delete is applied once per cluster", async () => {
  const source = await router("north");
  const southA = await router("south");
  const southB = await router("south");
  const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
  for (const key of keys) source.bus.publishDelete(utf8.encode(key));
  await until(() => southA.applied.length + southB.applied.length === keys.length, "50 deletes in south");
  expect([...southA.applied, ...southB.applied].sort()).toEqual([...keys].sort());
  // queue: null makes every router of the cluster apply every delete.
  const everyA = await router("central", { queue: null });
  const everyB = await router("central", { queue: null });
  source.bus.publishDelete(utf8.encode("all-of-them"));
  await until(
    () => everyA.applied.includes("all-of-them") && everyB.applied.includes("all-of-them"),
    "both central routers",
  );
  for (const r of [source, southA, southB, everyA, everyB]) await r.bus.close();
});

test("keys are bytes: spaces, dots and non-UTF-8 bytes arrive unchanged", async () => {
  const from = await router("bytes-a");
  const got: Uint8Array[] = [];
  const to = await router("bytes-b", {
    apply: async (key) => {
      got.push(key);
      notify();
    },
  });
  const key = new Uint8Array([0x61, 0x20, 0x2e, 0xff, 0x00, 0x62]);
  from.bus.publishDelete(key);
  await until(() => got.length === 1, "the binary key");
  expect(got[0]).toEqual(key);
  await Promise.all([from.bus.close(), to.bus.close()]);
});

test("applying is bounded: never more than maxConcurrent at once, and a failure is counted", async () => {
  const from = await router("bound-a");
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  let finished = 0;
  const to = await router("bound-b", {
    maxConcurrent: 3,
    apply: (key) =>
      new Promise<void>((resolve, reject) => {
        running++;
        peak = Math.max(peak, running);
        releases.push(() => {
          running--;
          finished++;
          if (text(key) === "k3") reject(new Error("leaf down"));
          else resolve();
        });
        notify();
      }),
  });
  for (let i = 0; i < 10; i++) from.bus.publishDelete(utf8.encode(`k${i}`));
  // All ten arrived: three apply, seven wait (receiving raises no event of its own: poll).
  await pollUntil(() => (to.bus.counters.received === 10 ? true : undefined), {
    deadlineMs: 5000,
    what: "ten deletes received",
  });
  expect(running).toBe(3);
  expect(to.bus.backlog).toBe(10);
  // Release one apply at a time; the bus starts the next only when one finishes.
  while (finished < 10) {
    await until(() => releases.length > 0, "an apply to start");
    expect(running).toBeLessThanOrEqual(3);
    (releases.shift() as () => void)();
  }
  // The counters move when apply()'s promise settles, a tick after the release: poll.
  await pollUntil(() => (to.bus.counters.applied + to.bus.counters.failed === 10 ? true : undefined), {
    deadlineMs: 5000,
    what: "all applies settled",
  });
  expect(peak).toBe(3);
  expect(to.bus.counters).toMatchObject({ applied: 9, failed: 1 });
  expect(to.bus.backlog).toBe(0);
  await Promise.all([from.bus.close(), to.bus.close()]);
});

test("publishDelete fails fast with ConnectionError while NATS is unreachable", async () => {
  const link = NatsLink.open({ servers: `127.0.0.1:${server.port}` });
  links.push(link);
  const bus = new InvalidationBus({ link, subject: SUBJECT, clusterId: "x", apply: async () => {} });
  buses.push(bus);
  await link.close();
  expect(() => bus.publishDelete(utf8.encode("k"))).toThrow(ConnectionError);
  expect(() => bus.publishDelete(utf8.encode("k"))).toThrow(/NATS unreachable/);
});
