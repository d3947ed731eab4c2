// Router metrics against a real leaf: a ShardedRoute over a Pool of one gravity leaf, plus a pool
// whose only server listens nowhere. The test plays the router server's part at the call sites
// the lead wires (observeRequest after each reply, observeDestination / countDestinationError
// around a destination's send) and checks what /metrics-style scrapes of the registry say:
// requests by op and result, latency histograms, TKO state, pool sizes, hedges, RouterCounters.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { routerReady } from "../src/http/readiness.ts";
import { type MetricFamily, parseExposition, sampleValue } from "../src/metrics/exposition.ts";
import { CommonMetrics, DEFAULT_METRICS, RouterMetrics } from "../src/metrics/names.ts";
import {
  createRegistry,
  discoveryMetrics,
  errorKind,
  type Registry,
  type RouterMetricsRecorder,
  routerMetrics,
} from "../src/metrics/registry.ts";
import { encodeDelete, encodeGet, encodeMetaGet, encodeStore } from "../src/protocol/encoder.ts";
import { Reply, ReplyType } from "../src/protocol/reply.ts";
import { Op, Request } from "../src/protocol/request.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { Pool } from "../src/router/pool.ts";
import { opLabel, resultLabel } from "../src/router/request-labels.ts";
import { RouterCounters, type RouterState } from "../src/router/server.ts";
import { freePort, HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";

const utf8 = new TextEncoder();

let leaf: LeafProcess;
let main: Pool;
let dead: Pool;
let lost: Pool; // listens nowhere, outside the router state: a route that fails
let deadPort: number;
let state: RouterState;
let counters: RouterCounters;
let registry: Registry;
let recorder: RouterMetricsRecorder;

beforeAll(async () => {
  leaf = await startLeaf(["--port", "0", "--memory", "64mb"]);
  deadPort = await freePort();
  main = new Pool("main", { ...POOL_DEFAULTS, servers: [{ host: HOST, port: leaf.port, weight: 1 }] });
  dead = new Pool("dead", {
    ...POOL_DEFAULTS,
    servers: [{ host: HOST, port: deadPort, weight: 1 }],
    tko: { failures: 3, probeIntervalMs: 60_000, maxProbeIntervalMs: 60_000 },
  });
  lost = new Pool("lost", { ...POOL_DEFAULTS, servers: [{ host: HOST, port: await freePort(), weight: 1 }] });
  state = {
    root: new ShardedRoute(main),
    pools: new Map([
      ["main", main],
      ["dead", dead],
    ]),
  };
  counters = new RouterCounters();
  registry = createRegistry({ role: "router", version: "test" });
  recorder = routerMetrics(registry, { state: () => state, counters });
  discoveryMetrics(registry, () => [
    ["watched", true],
    ["cut-off", false],
  ]);
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const pool of [main, dead, lost])
    for (const destination of pool.destinations) await destination.close();
  await stopAll();
});

async function scrape(): Promise<Map<string, MetricFamily>> {
  return parseExposition(await registry.metrics());
}

function request(op: Op, key: string, raw: Uint8Array, value?: string): Request {
  const out = new Request(op);
  out.keys = [utf8.encode(key)];
  if (value !== undefined) out.value = utf8.encode(value);
  out.raw = raw;
  return out;
}

// What the router server does per request once wired: route, time, record op and result.
async function serve(
  root: { route(request: Request): Promise<Reply> },
  req: Request,
): Promise<Reply | Error> {
  const start = performance.now();
  try {
    const reply = await root.route(req);
    recorder.observeRequest(opLabel(req.op), resultLabel(req.op, reply), (performance.now() - start) / 1000);
    return reply;
  } catch (error) {
    recorder.observeRequest(opLabel(req.op), "failed", (performance.now() - start) / 1000);
    return error as Error;
  }
}

// What a destination's send does once wired: time a reply, count a failure by kind.
async function send(pool: Pool, req: Request): Promise<Reply | Error> {
  const destination = pool.destinations[0];
  if (destination === undefined) throw new Error("empty pool");
  const start = performance.now();
  try {
    const reply = await destination.send(req);
    recorder.observeDestination(destination.name, (performance.now() - start) / 1000);
    return reply;
  } catch (error) {
    recorder.countDestinationError(destination.name, errorKind(error));
    return error as Error;
  }
}

describe("router metrics", () => {
  test("every documented router metric is registered with its type (HTTP ones come with the HTTP server)", async () => {
    const families = await scrape();
    for (const spec of [
      ...Object.values(RouterMetrics),
      CommonMetrics.buildInfo,
      ...Object.values(DEFAULT_METRICS),
    ]) {
      expect([spec.name, families.get(spec.name)?.type]).toEqual([spec.name, spec.type]);
    }
    expect(sampleValue(families, "gravity_build_info", { role: "router" })).toBe(1);
    const following = RouterMetrics.discoveryFollowing.name;
    expect(sampleValue(families, following, { pool: "watched" })).toBe(1);
    expect(sampleValue(families, following, { pool: "cut-off" })).toBe(0);
  });

  test("requests by op and result, through the route tree to the leaf", async () => {
    const root = state.root;
    expect(await serve(root, request(Op.Set, "m:a", encodeStore("set", "m:a", "v"), "v"))).toMatchObject({
      type: ReplyType.Stored,
    });
    await serve(root, request(Op.Get, "m:a", encodeGet(["m:a"])));
    await serve(root, request(Op.Get, "m:none", encodeGet(["m:none"])));
    await serve(root, request(Op.Get, "m:none2", encodeGet(["m:none2"])));
    await serve(root, request(Op.MetaGet, "m:a", encodeMetaGet("m:a", ["v"])));
    await serve(root, request(Op.MetaGet, "m:a", encodeMetaGet("m:a", ["t"])));
    await serve(root, request(Op.MetaGet, "m:none", encodeMetaGet("m:none", ["v"])));
    await serve(root, request(Op.Add, "m:a", encodeStore("add", "m:a", "v"), "v"));
    await serve(root, request(Op.Delete, "m:a", encodeDelete("m:a")));
    await serve(root, request(Op.Delete, "m:a", encodeDelete("m:a")));
    const failed = await serve(new ShardedRoute(lost), request(Op.Get, "m:x", encodeGet(["m:x"])));
    expect(failed).toBeInstanceOf(Error);

    const families = await scrape();
    const requests = (op: string, result: string) =>
      sampleValue(families, "gravity_router_requests_total", { op, result });
    expect(requests("set", "ok")).toBe(1);
    expect(requests("get", "hit")).toBe(1);
    expect(requests("get", "miss")).toBe(2);
    expect(requests("mg", "hit")).toBe(2); // VA with v, HD without
    expect(requests("mg", "miss")).toBe(1);
    expect(requests("add", "not_stored")).toBe(1);
    expect(requests("delete", "ok")).toBe(1);
    expect(requests("delete", "not_found")).toBe(1);
    expect(requests("get", "failed")).toBe(1);
    const getCount = sampleValue(
      families,
      "gravity_router_request_duration_seconds",
      { op: "get" },
      "gravity_router_request_duration_seconds_count",
    );
    expect(getCount).toBe(4);
    const inf = sampleValue(
      families,
      "gravity_router_request_duration_seconds",
      { op: "get", le: "+Inf" },
      "gravity_router_request_duration_seconds_bucket",
    );
    expect(inf).toBe(4);
  });

  test("per-destination latency and errors by kind; TKO state and pool sizes from RouterState", async () => {
    const mainName = main.destinations[0]?.name as string;
    const deadName = dead.destinations[0]?.name as string;
    expect(deadName).toBe(`${HOST}:${deadPort}`);
    for (let i = 0; i < 3; i++) await send(main, request(Op.Get, "m:d", encodeGet(["m:d"])));
    let families = await scrape();
    expect(
      sampleValue(families, "gravity_router_destination_down", { pool: "main", destination: mainName }),
    ).toBe(0);
    expect(
      sampleValue(families, "gravity_router_destination_down", { pool: "dead", destination: deadName }),
    ).toBe(0);
    expect(routerReady(() => state)).toBe(true);

    // Three refused connections in a row mark it down (POOL_DEFAULTS tko.failures); then it fails fast.
    const errors: unknown[] = [];
    for (let i = 0; i < 4; i++) errors.push(await send(dead, request(Op.Get, "m:d", encodeGet(["m:d"]))));
    expect(errors.map(errorKind)).toEqual(["connection", "connection", "connection", "down"]);
    expect(dead.destinations[0]?.down).toBe(true);

    families = await scrape();
    const count = sampleValue(
      families,
      "gravity_router_destination_request_duration_seconds",
      { destination: mainName },
      "gravity_router_destination_request_duration_seconds_count",
    );
    expect(count).toBe(3);
    expect(
      sampleValue(families, "gravity_router_destination_errors_total", {
        destination: deadName,
        kind: "connection",
      }),
    ).toBe(3);
    expect(
      sampleValue(families, "gravity_router_destination_errors_total", {
        destination: deadName,
        kind: "down",
      }),
    ).toBe(1);
    expect(
      sampleValue(families, "gravity_router_destination_down", { pool: "dead", destination: deadName }),
    ).toBe(1);
    expect(
      sampleValue(families, "gravity_router_destination_down", { pool: "main", destination: mainName }),
    ).toBe(0);
    expect(sampleValue(families, "gravity_router_pool_destinations", { pool: "dead" })).toBe(1);
    expect(sampleValue(families, "gravity_router_pool_healthy_destinations", { pool: "dead" })).toBe(0);
    expect(sampleValue(families, "gravity_router_pool_healthy_destinations", { pool: "main" })).toBe(1);
    expect(
      sampleValue(families, "gravity_router_destination_in_flight", { pool: "main", destination: mainName }),
    ).toBe(0);
    expect(routerReady(() => state)).toBe("no destination up in pool dead");
  });

  test("a reload's state replaces the pools' series", async () => {
    const previous = state;
    lost = new Pool("lost", {
      ...POOL_DEFAULTS,
      servers: [{ host: HOST, port: await freePort(), weight: 1 }],
    });
    state = { root: previous.root, pools: new Map([["main", main]]) };
    try {
      const families = await scrape();
      expect(
        families.get("gravity_router_pool_destinations")?.samples.map((sample) => sample.labels.pool),
      ).toEqual(["main"]);
      expect(families.get("gravity_router_destination_down")?.samples).toHaveLength(1);
    } finally {
      state = previous;
    }
  });

  test("hits, misses, route errors, connections and hedges come from RouterCounters at scrape time", async () => {
    counters.getHits = 7;
    counters.getMisses = 3;
    counters.routeErrors = 2;
    counters.currConnections = 4;
    counters.totalConnections = 9;
    counters.hedges.sent = 5;
    counters.hedges.won = 2;
    let families = await scrape();
    expect(sampleValue(families, "gravity_router_get_hits_total")).toBe(7);
    expect(sampleValue(families, "gravity_router_get_misses_total")).toBe(3);
    expect(sampleValue(families, "gravity_router_route_errors_total")).toBe(2);
    expect(sampleValue(families, "gravity_router_connections")).toBe(4);
    expect(sampleValue(families, "gravity_router_connections_total")).toBe(9);
    expect(sampleValue(families, "gravity_router_hedges_sent_total")).toBe(5);
    expect(sampleValue(families, "gravity_router_hedges_won_total")).toBe(2);
    // Every counter a route handle keeps, by route and event.
    counters.loader.loads = 11;
    counters.gutter.gutterDeleteFailures = 1;
    counters.warmup.warmHits = 6;
    counters.backgroundWrites.failed = 2;
    families = await scrape();
    const event = (route: string, name: string) =>
      sampleValue(families, "gravity_router_route_events_total", { route, event: name });
    expect(event("loader", "loads")).toBe(11);
    expect(event("loader", "not_found")).toBe(0);
    expect(event("gutter", "gutter_delete_failures")).toBe(1);
    expect(event("warmup", "warm_hits")).toBe(6);
    expect(event("replicated", "background_write_failed")).toBe(2);
    counters.hedges.sent++;
    counters.reset(); // `stats reset`: totals restart, which Prometheus reads as a counter reset
    families = await scrape();
    expect(sampleValue(families, "gravity_router_hedges_sent_total")).toBe(0);
    expect(
      sampleValue(families, "gravity_router_route_events_total", { route: "loader", event: "loads" }),
    ).toBe(0);
    expect(sampleValue(families, "gravity_router_connections")).toBe(4);
  });
});

describe("request labels", () => {
  test("every op has a label and results cover the reply types", () => {
    const labels = new Set(Object.values(Op).map(opLabel));
    expect(labels.size).toBe(Object.values(Op).length);
    const reply = (type: ReplyType) => new Reply(type);
    expect(resultLabel(Op.Set, reply(ReplyType.Stored))).toBe("ok");
    expect(resultLabel(Op.Cas, reply(ReplyType.Exists))).toBe("exists");
    expect(resultLabel(Op.MetaSet, reply(ReplyType.MetaNotStored))).toBe("not_stored");
    expect(resultLabel(Op.MetaSet, reply(ReplyType.MetaHeader))).toBe("ok");
    expect(resultLabel(Op.Get, reply(ReplyType.ServerError))).toBe("server_error");
    expect(resultLabel(Op.Get, reply(ReplyType.ClientError))).toBe("client_error");
    expect(resultLabel(Op.Incr, reply(ReplyType.Number))).toBe("ok");
  });
});
