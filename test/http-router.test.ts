// The HTTP API of a router: routeBackend over a ShardedRoute of a real gravity leaf. Round trips
// reach the leaf as memcached requests (the leaf's item key is {group}:{key}, the TTL arrives as
// the exptime), the leaf's refusal of a large value is a 413, a pool with no live leaf gives 502
// (connection refused) then 503 (marked down), and /readyz follows the pools' health.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { routeBackend } from "../src/cache/backend.ts";
import { routerReady } from "../src/http/readiness.ts";
import { type HttpServer, startHttpServer } from "../src/http/server.ts";
import { parseExposition, sampleValue } from "../src/metrics/exposition.ts";
import { CommonMetrics } from "../src/metrics/names.ts";
import { createRegistry, type Registry, routerMetrics } from "../src/metrics/registry.ts";
import { encodeMetaGet } from "../src/protocol/encoder.ts";
import { ReplyType } from "../src/protocol/reply.ts";
import { Op, Request } from "../src/protocol/request.ts";
import { POOL_DEFAULTS } from "../src/router/config.ts";
import { ShardedRoute } from "../src/router/handles/sharded.ts";
import { Pool } from "../src/router/pool.ts";
import { RouterCounters, type RouterState } from "../src/router/server.ts";
import { McClient } from "./helpers/mc-client.ts";
import { freePort, HOST, type LeafProcess, SERVER_TEST_MS, startLeaf, stopAll } from "./helpers/servers.ts";

const MIB = 1024 * 1024;
const utf8 = new TextEncoder();

let leaf: LeafProcess;
let main: Pool;
let dead: Pool;
let state: RouterState;
let registry: Registry;
let server: HttpServer;
let deadServer: HttpServer;
let base: string;

beforeAll(async () => {
  leaf = await startLeaf(["--port", "0", "--memory", "64mb", "--max-item-size", "1m"]);
  main = new Pool("main", { ...POOL_DEFAULTS, servers: [{ host: HOST, port: leaf.port, weight: 1 }] });
  dead = new Pool("dead", {
    ...POOL_DEFAULTS,
    servers: [{ host: HOST, port: await freePort(), weight: 1 }],
    tko: { failures: 2, probeIntervalMs: 60_000, maxProbeIntervalMs: 60_000 },
  });
  state = { root: new ShardedRoute(main), pools: new Map([["main", main]]) };
  registry = createRegistry({ role: "router", version: "test" });
  routerMetrics(registry, { state: () => state, counters: new RouterCounters() });
  const ready = () => routerReady(() => state);
  // Values up to 2 MiB pass the API so that the leaf's own limit (1 MiB) is what refuses them.
  server = startHttpServer({
    host: HOST,
    port: 0,
    backend: routeBackend(state.root),
    ready,
    registry,
    maxValueBytes: 2 * MIB,
  });
  deadServer = startHttpServer({
    host: HOST,
    port: 0,
    backend: routeBackend(new ShardedRoute(dead)),
    ready,
    registry,
  });
  base = `http://${HOST}:${server.port}`;
}, SERVER_TEST_MS);

afterAll(async () => {
  await server?.stop(true);
  await deadServer?.stop(true);
  for (const pool of [main, dead])
    for (const destination of pool?.destinations ?? []) await destination.close();
  await stopAll();
});

async function errorOf(response: Response): Promise<string> {
  return ((await response.json()) as { error: string }).error;
}

describe("through the route tree to a leaf", () => {
  test("a value put is got back, and the leaf holds it under {group}:{key}", async () => {
    const value = new Uint8Array(5000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 13) & 0xff;
    expect((await fetch(`${base}/v1/cache/users/bob`, { method: "PUT", body: value })).status).toBe(204);
    const got = await fetch(`${base}/v1/cache/users/bob`);
    expect(got.status).toBe(200);
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(value);

    const client = await McClient.connect(leaf.port, HOST);
    try {
      await client.send("get users:bob\r\n");
      const reply = await client.readThroughLine("END");
      expect(reply.subarray(0, 24)).toEqual(utf8.encode("VALUE users:bob 0 5000\r\n"));
      expect(reply.subarray(24, 24 + 5000)).toEqual(value);
    } finally {
      client.close();
    }
  });

  test("the TTL reaches the leaf as the item's exptime", async () => {
    const put = await fetch(`${base}/v1/cache/users/ttl?ttl=300`, { method: "PUT", body: "v" });
    expect(put.status).toBe(204);
    const request = new Request(Op.MetaGet);
    request.keys = [utf8.encode("users:ttl")];
    request.raw = encodeMetaGet("users:ttl", ["t"]);
    const reply = await state.root.route(request);
    expect(reply.type).toBe(ReplyType.MetaHeader);
    const remaining = Number(reply.metaFlag("t"));
    expect(remaining).toBeGreaterThan(290);
    expect(remaining).toBeLessThanOrEqual(300);
  });

  test("a miss and a delete", async () => {
    expect((await fetch(`${base}/v1/cache/users/nobody`)).status).toBe(404);
    await fetch(`${base}/v1/cache/users/gone`, { method: "PUT", body: "v" });
    expect((await fetch(`${base}/v1/cache/users/gone`, { method: "DELETE" })).status).toBe(204);
    expect((await fetch(`${base}/v1/cache/users/gone`, { method: "DELETE" })).status).toBe(404);
    expect((await fetch(`${base}/v1/cache/users/gone`)).status).toBe(404);
  });

  test("a value the leaf refuses as too large is 413", async () => {
    const response = await fetch(`${base}/v1/cache/users/huge`, {
      method: "PUT",
      body: new Uint8Array(MIB + 100),
    });
    expect(response.status).toBe(413);
    expect(await errorOf(response)).toBe("object too large for cache");
  });

  test("bad keys never reach the leaf", async () => {
    const response = await fetch(`${base}/v1/cache/users/a%20b`);
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(/space or control byte/);
  });
});

describe("failures and readiness", () => {
  test("no live leaf: 502 with the connection error, then 503 once the destination is marked down", async () => {
    const deadBase = `http://${HOST}:${deadServer.port}`;
    const statuses: number[] = [];
    const reasons: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await fetch(`${deadBase}/v1/cache/users/x`);
      statuses.push(response.status);
      reasons.push(await errorOf(response));
    }
    expect(statuses).toEqual([502, 502, 503]);
    expect(reasons[0]).toContain(dead.destinations[0]?.name as string);
    expect(reasons[2]).toMatch(/marked down after consecutive failures/);
  });

  test("/readyz is 200 while every pool has a destination up, 503 naming the pool otherwise", async () => {
    const ready = await fetch(`${base}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
    expect(dead.destinations[0]?.down).toBe(true); // from the test above
    const previous = state;
    state = { root: previous.root, pools: new Map([...previous.pools, ["dead", dead]]) };
    try {
      const notReady = await fetch(`${base}/readyz`);
      expect([notReady.status, await notReady.text()]).toEqual([503, "no destination up in pool dead\n"]);
    } finally {
      state = previous;
    }
  });

  test("/metrics of the router counts the API's requests with their statuses", async () => {
    const response = await fetch(`${base}/metrics`);
    const families = parseExposition(await response.text());
    expect(families.get(CommonMetrics.httpRequests.name)?.type).toBe("counter");
    const count = (status: string) =>
      sampleValue(families, "gravity_http_requests_total", { method: "GET", route: "cache", status });
    expect(count("502")).toBe(2);
    expect(count("503")).toBe(1);
    expect(count("200")).toBe(1);
    expect(sampleValue(families, "gravity_router_pool_destinations", { pool: "main" })).toBe(1);
  });
});
