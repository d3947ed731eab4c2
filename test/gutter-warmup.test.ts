// The gutter and warm-up routes against real leaves, in-process: requests are parsed from client
// bytes as the router's server parses them, routed, and the leaves are then asked directly what
// they hold (mg <key> t for TTLs, stats for which leaf served what).
//
// Gutter: a primary pool of two leaves, one SIGKILLed and later restarted on its port; its keys
// move to the gutter leaf with capped TTLs and come back, the other leaf's keys never move.
// Warm-up: items only in the warm leaf are served and copied into the cold leaf.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { encodeReply } from "../src/protocol/reply-encoder.ts";
import type { Request } from "../src/protocol/request.ts";
import { RequestParser } from "../src/protocol/request-parser.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { capExptime, type GutterCounters, GutterRoute } from "../src/router/handles/gutter.ts";
import type { RouteHandle } from "../src/router/handles/handle.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { type WarmUpCounters, WarmUpRoute } from "../src/router/handles/warmup.ts";
import { Pool } from "../src/router/pool.ts";
import type { Sender } from "../src/transport/transport.ts";
import { fromLatin1, latin1, McClient } from "./helpers/mc-client.ts";
import { HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

const GUTTER_TTL_SECONDS = 2;
const WARM_TTL_SECONDS = 100;
const TKO = { failures: 1, probeIntervalMs: 100, maxProbeIntervalMs: 500 };
const utf8 = new TextEncoder();

const pools: Pool[] = [];

function poolOf(name: string, leaves: readonly LeafProcess[], hooks = {}): Pool {
  const servers = leaves.map((leaf) => ({ host: HOST, port: leaf.port, weight: 1 }));
  const pool = new Pool(name, { ...POOL_DEFAULTS, servers, tko: TKO }, undefined, hooks);
  pools.push(pool);
  return pool;
}

afterAll(async () => {
  for (const pool of pools) for (const destination of pool.destinations) await destination.close();
  await stopAll();
});

/** One request parsed from client bytes (latin1), as the router's server would hand it on. */
function parse(text: string): Request {
  const requests: Request[] = [];
  const parser = new RequestParser(
    {
      onRequest: (request) => requests.push(request),
      onError: (reply) => {
        throw new Error(`parser refused ${JSON.stringify(text)}: ${fromLatin1(reply)}`);
      },
    },
    { maxItemBytes: 1024 * 1024 },
  );
  parser.feed(latin1(text));
  if (requests.length !== 1) throw new Error(`expected one request in ${JSON.stringify(text)}`);
  return requests[0] as Request;
}

/** Routes `text` and returns the reply as the client would read it. */
async function call(route: RouteHandle, text: string): Promise<string> {
  const reply = await route.route(parse(text));
  return fromLatin1(reply.raw ?? encodeReply(reply));
}

/** Sends `text` straight to a leaf and returns its reply's first line. */
async function direct(leaf: LeafProcess, text: string): Promise<string> {
  const client = await McClient.connect(leaf.port);
  try {
    await client.send(text);
    return await client.readLine();
  } finally {
    client.close();
  }
}

/** A leaf's cmd_get and cmd_set, asked directly. */
async function commandCounts(leaf: LeafProcess): Promise<{ get: number; set: number }> {
  const client = await McClient.connect(leaf.port);
  try {
    await client.send("stats\r\n");
    const text = fromLatin1(await client.readThroughLine("END"));
    const stat = (name: string) => Number(new RegExp(`^STAT ${name} (\\d+)\\r$`, "m").exec(text)?.[1]);
    return { get: stat("cmd_get"), set: stat("cmd_set") };
  } finally {
    client.close();
  }
}

/** The seconds an `mg <key> t` reply says the item has left (-1: never expires). */
function ttlOf(line: string): number {
  const match = / t(-?\d+)/.exec(line);
  if (match === null) throw new Error(`no t flag in ${JSON.stringify(line)}`);
  return Number(match[1]);
}

// Resolves when `destination` is (or becomes) down === `down`, as its pool's health hook reports.
const healthWaiters: { destination: unknown; down: boolean; resolve: () => void }[] = [];
function onHealthChange(destination: unknown, down: boolean): void {
  for (const waiter of healthWaiters.splice(0)) {
    if (waiter.destination === destination && waiter.down === down) waiter.resolve();
    else healthWaiters.push(waiter);
  }
}
function health(destination: Sender, down: boolean, what: string): Promise<void> {
  if (destination.down === down) return Promise.resolve();
  const changed = new Promise<void>((resolve) => healthWaiters.push({ destination, down, resolve }));
  return withDeadline(changed, 10_000, what);
}

describe("capExptime", () => {
  const now = 1_700_000_000;
  test("never-expiring and long TTLs become the cap; shorter ones and immediate expiry stay", () => {
    expect(capExptime(0, 10, now)).toBe(10);
    expect(capExptime(3600, 10, now)).toBe(10);
    expect(capExptime(4, 10, now)).toBe(4);
    expect(capExptime(-1, 10, now)).toBe(-1);
  });
  test("absolute Unix times are measured from now", () => {
    expect(capExptime(now + 3600, 10, now)).toBe(10);
    expect(capExptime(now + 3, 10, now)).toBe(3);
    expect(capExptime(now - 5, 10, now)).toBe(-1);
  });
});

describe("gutter route", () => {
  let primaryLeaves: LeafProcess[];
  let gutterLeaf: LeafProcess;
  let primary: Pool;
  let route: GutterRoute;
  const counters: GutterCounters = { diverted: 0, gutterDeleteFailures: 0 };
  // Keys the primary pool places on leaf 0 (the one killed) and on leaf 1.
  const onKilled: string[] = [];
  const onHealthy: string[] = [];

  beforeAll(async () => {
    primaryLeaves = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
    gutterLeaf = await startLeaf(["--port", "0"]);
    primary = poolOf("main", primaryLeaves, { onHealthChange });
    const gutter = poolOf("gutter", [gutterLeaf]);
    route = new GutterRoute(primary, new ShardedRoute(gutter), {
      ttlSeconds: GUTTER_TTL_SECONDS,
      counters,
    });
    for (let i = 0; onKilled.length < 12 || onHealthy.length < 4; i++) {
      const key = `user:${i}`;
      (primary.pick(utf8.encode(key)) === 0 ? onKilled : onHealthy).push(key);
    }
  }, SERVER_TEST_MS);

  test(
    "takeover while a leaf is down, then traffic returns when it is back",
    async () => {
      const [killedKey, ...moreKilled] = onKilled as [string, ...string[]];
      const healthyKey = onHealthy[0] as string;
      const killed = primaryLeaves[0] as LeafProcess;
      const healthy = primaryLeaves[1] as LeafProcess;
      const killedDestination = primary.destinations[0] as Sender;

      // Healthy: each key on its own leaf, the gutter untouched.
      expect(await call(route, `set ${killedKey} 0 0 2\r\nv0\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `set ${healthyKey} 0 0 2\r\nh0\r\n`)).toBe("STORED\r\n");
      expect(await direct(killed, `mg ${killedKey} v\r\n`)).toBe("VA 2");
      expect(await direct(gutterLeaf, `mg ${killedKey} v\r\n`)).toBe("EN");
      expect(counters.diverted).toBe(0);

      const port = killed.port;
      expect(await killed.stop("SIGKILL")).toBeNull();

      // The first request after the kill fails on the dead socket and marks the leaf down; it is
      // answered from the gutter (a miss: the gutter never had the key).
      expect(await call(route, `get ${killedKey}\r\n`)).toBe("END\r\n");
      await health(killedDestination, true, "the killed leaf to be marked down");

      // Writes succeed via the gutter with their TTLs capped.
      const [never, long, short, metaLong, metaNone, touched] = moreKilled as string[];
      expect(await call(route, `set ${never} 5 0 3\r\nabc\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `set ${long} 0 3600 1\r\nx\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `add ${short} 0 1 1\r\nx\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `ms ${metaLong} 1 T3600\r\nx\r\n`)).toBe("HD\r\n");
      expect(await call(route, `ms ${metaNone} 1 q\r\nx\r\n`)).toBe("HD\r\n"); // q dropped: the leaf answers
      expect(await call(route, `set ${touched} 0 1 1\r\nx\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `touch ${touched} 0\r\n`)).toBe("TOUCHED\r\n");
      for (const key of [never, long, metaLong, metaNone, touched]) {
        const ttl = ttlOf(await direct(gutterLeaf, `mg ${key} t\r\n`));
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(GUTTER_TTL_SECONDS);
      }
      expect(ttlOf(await direct(gutterLeaf, `mg ${short} t\r\n`))).toBeLessThanOrEqual(1);

      // Reads succeed via the gutter.
      expect(await call(route, `get ${never}\r\n`)).toBe(`VALUE ${never} 5 3\r\nabc\r\nEND\r\n`);
      expect(await call(route, `mg ${metaLong} v\r\n`)).toBe("VA 1\r\nx\r\n");

      // The healthy leaf's keys never touch the gutter.
      const gutterBefore = await commandCounts(gutterLeaf);
      expect(await call(route, `set ${healthyKey} 0 0 2\r\nh1\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `get ${healthyKey}\r\n`)).toBe(`VALUE ${healthyKey} 0 2\r\nh1\r\nEND\r\n`);
      expect(await commandCounts(gutterLeaf)).toEqual(gutterBefore);
      expect(await direct(gutterLeaf, `mg ${healthyKey} v\r\n`)).toBe("EN");
      expect(await direct(healthy, `mg ${healthyKey} v\r\n`)).toBe("VA 2");

      // A delete while the leaf is down removes the gutter copy but reports the primary's failure.
      await expect(route.route(parse(`delete ${long}\r\n`))).rejects.toThrow(/marked down/);
      expect(await direct(gutterLeaf, `mg ${long} v\r\n`)).toBe("EN");

      // Gutter copies expire by themselves within the gutter TTL.
      await pollUntil(
        async () => ((await direct(gutterLeaf, `mg ${never} v\r\n`)) === "EN" ? true : undefined),
        { deadlineMs: (GUTTER_TTL_SECONDS + 3) * 1000, intervalMs: 100, what: "the gutter copy to expire" },
      );

      // The leaf restarts empty on its port; a probe revives it and its keys go back to it.
      const restarted = await startLeaf(["--port", String(port)]);
      await health(killedDestination, false, "the restarted leaf to be marked up");
      const diverted = counters.diverted;
      const leafBefore = await commandCounts(restarted);
      const gutterAtReturn = await commandCounts(gutterLeaf);
      expect(await call(route, `set ${killedKey} 0 0 2\r\nv2\r\n`)).toBe("STORED\r\n");
      expect(await call(route, `get ${killedKey}\r\n`)).toBe(`VALUE ${killedKey} 0 2\r\nv2\r\nEND\r\n`);
      // What was written to the gutter during the outage is not copied back.
      expect(await call(route, `get ${metaLong}\r\n`)).toBe("END\r\n");
      const leafAfter = await commandCounts(restarted);
      expect(leafAfter.set).toBe(leafBefore.set + 1);
      expect(leafAfter.get).toBe(leafBefore.get + 2);
      expect(await commandCounts(gutterLeaf)).toEqual(gutterAtReturn);
      expect(counters.diverted).toBe(diverted);
    },
    SERVER_TEST_MS,
  );

  test("a delete of a healthy leaf's key also deletes a gutter copy, and answers with the leaf's reply", async () => {
    const key = onHealthy[1] as string;
    expect(await direct(gutterLeaf, `set ${key} 0 0 5\r\nstale\r\n`)).toBe("STORED");
    expect(await call(route, `set ${key} 0 0 5\r\nfresh\r\n`)).toBe("STORED\r\n");
    expect(await call(route, `delete ${key}\r\n`)).toBe("DELETED\r\n");
    expect(await direct(gutterLeaf, `mg ${key} v\r\n`)).toBe("EN");
    expect(await call(route, `delete ${key} noreply\r\n`)).toBe("NOT_FOUND\r\n"); // the server hides it
    expect(counters.gutterDeleteFailures).toBe(0);
  });
});

describe("warm-up route", () => {
  let cold: LeafProcess;
  let warm: LeafProcess;
  let route: WarmUpRoute;
  const counters: WarmUpCounters = { warmHits: 0, fills: 0, fillFailures: 0, warmDeleteFailures: 0 };

  beforeAll(async () => {
    [cold, warm] = await Promise.all([startLeaf(["--port", "0"]), startLeaf(["--port", "0"])]);
    route = new WarmUpRoute(
      new ShardedRoute(poolOf("cold", [cold])),
      new ShardedRoute(poolOf("warm", [warm])),
      {
        ttlSeconds: WARM_TTL_SECONDS,
        counters,
      },
    );
  }, SERVER_TEST_MS);

  test(
    "a get missing in cold is served from warm and the value added to cold",
    async () => {
      expect(await direct(warm, "set w:get 7 0 5\r\nhello\r\n")).toBe("STORED");
      expect(await call(route, "get w:get\r\n")).toBe("VALUE w:get 7 5\r\nhello\r\nEND\r\n");
      // The add is not awaited by the get: wait for it to land.
      const line = await pollUntil(
        async () => {
          const reply = await direct(cold, "mg w:get f t\r\n");
          return reply === "EN" ? undefined : reply;
        },
        { deadlineMs: 5000, what: "the warm value to be added to cold" },
      );
      expect(line).toMatch(/^HD f7 t\d+$/);
      const ttl = ttlOf(line);
      expect(ttl).toBeGreaterThan(WARM_TTL_SECONDS - 5);
      expect(ttl).toBeLessThanOrEqual(WARM_TTL_SECONDS);
      expect(counters.fills).toBeGreaterThanOrEqual(1);
      // Now a cold hit: warm is not asked again.
      const warmBefore = await commandCounts(warm);
      expect(await call(route, "get w:get\r\n")).toBe("VALUE w:get 7 5\r\nhello\r\nEND\r\n");
      expect(await commandCounts(warm)).toEqual(warmBefore);
    },
    SERVER_TEST_MS,
  );

  test("gets answers with cold's CAS, and the copy keeps the warm item's shorter TTL", async () => {
    expect(await direct(warm, "set w:gets 3 30 4\r\ndata\r\n")).toBe("STORED");
    const reply = await call(route, "gets w:gets\r\n");
    const match = /^VALUE w:gets 3 4 (\d+)\r\ndata\r\nEND\r\n$/.exec(reply);
    expect(match).not.toBeNull();
    const coldCas = /^VALUE w:gets 3 4 (\d+)$/.exec(await direct(cold, "gets w:gets\r\n"))?.[1];
    expect(match?.[1]).toBe(coldCas as string);
    const ttl = ttlOf(await direct(cold, "mg w:gets t\r\n"));
    expect(ttl).toBeGreaterThan(25);
    expect(ttl).toBeLessThanOrEqual(30);
  });

  test("mg is answered in its own format from cold after the add", async () => {
    expect(await direct(warm, "set w:mg 9 0 3\r\nabc\r\n")).toBe("STORED");
    expect(await call(route, "mg w:mg v f k O123\r\n")).toBe("VA 3 f9 kw:mg O123\r\nabc\r\n");
    expect(await direct(cold, "mg w:mg v\r\n")).toBe("VA 3");
    const base64 = Buffer.from("w:b64").toString("base64");
    expect(await direct(warm, "set w:b64 0 0 2\r\nzz\r\n")).toBe("STORED");
    expect(await call(route, `mg ${base64} b v\r\n`)).toBe("VA 2\r\nzz\r\n");
    expect(await direct(cold, "mg w:b64 v\r\n")).toBe("VA 2");
  });

  test("a miss in both is a miss, and nothing is added", async () => {
    expect(await call(route, "get w:nowhere\r\n")).toBe("END\r\n");
    expect(await call(route, "gets w:nowhere\r\n")).toBe("END\r\n");
    expect(await call(route, "mg w:nowhere v\r\n")).toBe("EN\r\n");
    expect(await direct(cold, "mg w:nowhere v\r\n")).toBe("EN");
  });

  test("cold's own value wins over warm's", async () => {
    expect(await direct(warm, "set w:both 0 0 4\r\nwarm\r\n")).toBe("STORED");
    expect(await direct(cold, "set w:both 0 0 4\r\ncold\r\n")).toBe("STORED");
    expect(await call(route, "get w:both\r\n")).toBe("VALUE w:both 0 4\r\ncold\r\nEND\r\n");
  });

  test("writes go to cold only; deletes to both, so a deleted key is not refilled from warm", async () => {
    expect(await call(route, "set w:new 0 0 3\r\nnew\r\n")).toBe("STORED\r\n");
    expect(await direct(cold, "mg w:new v\r\n")).toBe("VA 3");
    expect(await direct(warm, "mg w:new v\r\n")).toBe("EN");

    expect(await direct(warm, "set w:del 0 0 3\r\nold\r\n")).toBe("STORED");
    expect(await direct(cold, "set w:del 0 0 3\r\nold\r\n")).toBe("STORED");
    expect(await call(route, "delete w:del\r\n")).toBe("DELETED\r\n");
    expect(await direct(cold, "mg w:del v\r\n")).toBe("EN");
    expect(await direct(warm, "mg w:del v\r\n")).toBe("EN");
    expect(await call(route, "get w:del\r\n")).toBe("END\r\n");
    expect(counters.warmDeleteFailures).toBe(0);
    expect(counters.fillFailures).toBe(0);
  });
});
