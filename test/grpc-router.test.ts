// The gRPC server on the router's side (routeBackend): calls become memcached requests routed by a
// ShardedRoute over a Pool of real gravity leaves. Round trips reach the leaf's store; the leaf's
// error replies and the route's failures become gRPC statuses; and a slow leaf shows the bound on
// calls in flight refusing the excess with RESOURCE_EXHAUSTED.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type ServiceError, status } from "@grpc/grpc-js";
import { routeBackend } from "../src/cache/backend.ts";
import { GrpcCacheClient } from "../src/grpc/client.ts";
import { REPLY_HOLD_DEFAULTS, type ReplyHoldLimits } from "../src/grpc/reply-hold.ts";
import { type GrpcServer, startGrpcServer } from "../src/grpc/server.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { Pool } from "../src/router/pool.ts";
import { McClient } from "./helpers/mc-client.ts";
import { freePort, HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";

const SLOW_MS = 500;
const utf8 = new TextEncoder();

let leaf: LeafProcess;
let slowLeaf: LeafProcess;
const pools: Pool[] = [];
const servers: GrpcServer[] = [];
const clients: GrpcCacheClient[] = [];

function pool(port: number, timeoutMs: number): Pool {
  const made = new Pool(`pool-${port}`, {
    ...POOL_DEFAULTS,
    servers: [{ host: HOST, port, weight: 1 }],
    timeoutMs,
  });
  pools.push(made);
  return made;
}

/** A gRPC server routing to `target` and a client connected to it. */
async function serve(
  target: Pool,
  options: {
    maxConcurrentCalls?: number;
    replyHold?: ReplyHoldLimits;
    stats?: () => Record<string, number | string>;
  } = {},
) {
  const server = await startGrpcServer({
    host: HOST,
    port: 0,
    backend: routeBackend(new ShardedRoute(target), { stats: options.stats, countersPrefix: "grpc" }),
    maxConcurrentCalls: options.maxConcurrentCalls,
    replyHold: options.replyHold,
  });
  servers.push(server);
  const client = new GrpcCacheClient(`${HOST}:${server.port}`);
  clients.push(client);
  return { server, client };
}

beforeAll(async () => {
  [leaf, slowLeaf] = await Promise.all([
    startLeaf(["--port", "0"]),
    startLeaf(["--port", "0", "--inject-latency", `100%:${SLOW_MS}ms`]),
  ]);
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((server) => server.close()));
  for (const made of pools) for (const destination of made.destinations) await destination.close();
  await stopAll();
});

function bytes(text: string): Uint8Array {
  return utf8.encode(text);
}

async function failure(call: Promise<unknown>): Promise<ServiceError> {
  try {
    await call;
  } catch (error) {
    return error as ServiceError;
  }
  throw new Error("the call succeeded; expected a gRPC error status");
}

describe("through a route to a real leaf", () => {
  test("every Cache method round trips, and the item is on the leaf as <group>:<key>", async () => {
    const { client } = await serve(pool(leaf.port, 5000), { stats: () => ({ role: "router" }) });
    await client.set("rt", "a", bytes("alpha"));
    await client.set("rt", "b", bytes("beta"), 300);
    expect(await client.get("rt", "a")).toEqual({ found: true, value: bytes("alpha") });
    expect(await client.get("rt", "nope")).toEqual({ found: false, value: new Uint8Array(0) });
    expect(await client.getMulti("rt", ["b", "nope", "a"])).toEqual([
      { found: true, value: bytes("beta") },
      { found: false, value: new Uint8Array(0) },
      { found: true, value: bytes("alpha") },
    ]);
    expect(await client.touch("rt", "a", 100)).toBe(true);
    expect(await client.touch("rt", "nope", 100)).toBe(false);

    const memcached = await McClient.connect(leaf.port);
    try {
      await memcached.send("get rt:a\r\n");
      expect(await memcached.readLines(3)).toEqual(["VALUE rt:a 0 5", "alpha", "END"]);
      await memcached.send("set rt:c 0 0 5\r\ngamma\r\n");
      expect(await memcached.readLine()).toBe("STORED");
    } finally {
      memcached.close();
    }
    expect(await client.get("rt", "c")).toEqual({ found: true, value: bytes("gamma") });

    expect(await client.delete("rt", "a")).toBe(true);
    expect(await client.delete("rt", "a")).toBe(false);
    await client.set("rt", "gone", bytes("v"), -1);
    expect(await client.get("rt", "gone")).toMatchObject({ found: false });

    expect(Object.fromEntries(await client.stats())).toEqual({
      grpc_cmd_get: "7",
      grpc_get_hits: "4",
      grpc_get_misses: "3",
      grpc_cmd_set: "3",
      grpc_cmd_delete: "2",
      grpc_cmd_touch: "2",
      role: "router",
    });
    expect((await client.stats("rt")).get("cmd_get")).toBe("7");
  });

  test("bad keys never reach the leaf; a value over the leaf's limit is INVALID_ARGUMENT", async () => {
    const { client } = await serve(pool(leaf.port, 5000));
    const bad = await failure(client.set("rt", "a b", bytes("v")));
    expect([bad.code, bad.details]).toEqual([
      status.INVALID_ARGUMENT,
      "key has a space or control byte 0x20 at 1",
    ]);
    expect(Object.fromEntries(await client.stats())).toMatchObject({ grpc_cmd_set: "0" });

    await client.set("big", "v", bytes("old"));
    const large = await failure(client.set("big", "v", new Uint8Array(leaf.maxItemBytes)));
    expect([large.code, large.details]).toEqual([
      status.INVALID_ARGUMENT,
      "SERVER_ERROR object too large for cache",
    ]);
    expect(await client.get("big", "v")).toMatchObject({ found: false });
    // The connection to the leaf stays in step after the error reply.
    await client.set("big", "w", bytes("small"));
    expect(await client.get("big", "w")).toEqual({ found: true, value: bytes("small") });
  });

  test("a leaf nobody listens on is UNAVAILABLE; a leaf slower than the pool's timeout is DEADLINE_EXCEEDED", async () => {
    const { client } = await serve(pool(await freePort(), 1000));
    const down = await failure(client.get("g", "k"));
    expect(down.code).toBe(status.UNAVAILABLE);
    expect(down.details).toMatch(/127\.0\.0\.1:\d+/);

    const { client: impatient } = await serve(pool(slowLeaf.port, SLOW_MS / 5));
    const late = await failure(impatient.get("g", "k"));
    expect(late.code).toBe(status.DEADLINE_EXCEEDED);
  });
});

describe("calls in flight are bounded", () => {
  test(
    "past maxConcurrentCalls a call is refused with RESOURCE_EXHAUSTED at once; the server recovers",
    async () => {
      const limit = 20;
      const calls = 200;
      // A first guess of 0 reply bytes: with the default (1 MiB, reply-hold.ts) this fresh
      // connection would run 4 calls at a time and make the rest wait rather than meet the limit.
      const { server, client } = await serve(pool(slowLeaf.port, 10 * SLOW_MS), {
        maxConcurrentCalls: limit,
        replyHold: { ...REPLY_HOLD_DEFAULTS, initialGuessBytes: 0 },
      });
      await client.set("slow", "k", bytes("v"));
      const started = performance.now();
      const outcomes = await Promise.all(
        Array.from({ length: calls }, () =>
          client.get("slow", "k").then(
            () => ({ code: status.OK, ms: performance.now() - started }),
            (error: ServiceError) => ({ code: error.code, ms: performance.now() - started }),
          ),
        ),
      );
      const ok = outcomes.filter((outcome) => outcome.code === status.OK);
      const refused = outcomes.filter((outcome) => outcome.code === status.RESOURCE_EXHAUSTED);
      expect(ok.length + refused.length).toBe(calls);
      // Every call arrives while the first `limit` wait on the slow leaf, so at least those are served
      // and some are refused.
      expect(ok.length).toBeGreaterThanOrEqual(limit);
      expect(refused.length).toBeGreaterThan(0);
      expect(server.rejectedCalls).toBe(refused.length);
      // Refusals do not wait for the leaf.
      expect(Math.min(...refused.map((outcome) => outcome.ms))).toBeLessThan(SLOW_MS);
      expect(server.inFlight).toBe(0);
      expect(await client.get("slow", "k")).toEqual({ found: true, value: bytes("v") });
    },
    SERVER_TEST_MS,
  );
});
