// The HTTP API of a leaf, in-process: the store configured as the leaf configures it, the server on
// port 0 over nativeBackend(). Every route and status: round trips (binary values, percent-encoded
// and non-UTF-8 keys), TTL from the header and the query (expiry through native.advanceClock),
// bad keys and TTLs (400), too large (413), unknown group (404), wrong method (405), health,
// readiness both ways, and /metrics parsed and checked against the documented names.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { nativeBackend } from "../src/cache/backend.ts";
import { leafReady, type Readiness } from "../src/http/readiness.ts";
import { type HttpServer, startHttpServer } from "../src/http/server.ts";
import { type MetricFamily, parseExposition, sampleValue } from "../src/metrics/exposition.ts";
import { CommonMetrics, DEFAULT_METRICS, LeafMetrics } from "../src/metrics/names.ts";
import { createRegistry, leafMetrics, type Registry } from "../src/metrics/registry.ts";
import { getValue, native } from "../src/native/index.ts";

const MIB = 1024 * 1024;
const HOST = "127.0.0.1";
const GROUPS = ["users", "ttl", "bad", "big", "del", "stats"];
const utf8 = new TextEncoder();

let server: HttpServer;
let registry: Registry;
let readiness: Readiness = true;
let base: string;

beforeAll(() => {
  // The first configure() in a process wins; another in-process test may have configured it first.
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  registry = createRegistry({ role: "leaf", version: "test" });
  leafMetrics(registry);
  server = startHttpServer({
    host: HOST,
    port: 0,
    backend: nativeBackend(),
    ready: () => readiness,
    registry,
    groups: GROUPS,
  });
  base = `http://${HOST}:${server.port}`;
});

afterAll(async () => {
  await server.stop(true);
});

function cacheUrl(group: string, key: string, query = ""): string {
  return `${base}/v1/cache/${group}/${key}${query}`;
}

function put(
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, { method: "PUT", body, headers });
}

async function errorOf(response: Response): Promise<string> {
  expect(response.headers.get("content-type")).toBe("application/json");
  const body = (await response.json()) as { error: string };
  expect(typeof body.error).toBe("string");
  return body.error;
}

describe("GET, PUT, DELETE", () => {
  test("a value put is got back as the same bytes, stored under {group}:{key}", async () => {
    const value = new Uint8Array(1000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    const stored = await put(cacheUrl("users", "alice"), value);
    expect(stored.status).toBe(204);
    const got = await fetch(cacheUrl("users", "alice"));
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(value);
    expect(getValue("users:alice")).toEqual(value);
  });

  test("an empty value is a value; a put replaces", async () => {
    expect((await put(cacheUrl("users", "empty"), "first")).status).toBe(204);
    expect((await put(cacheUrl("users", "empty"), new Uint8Array(0))).status).toBe(204);
    const got = await fetch(cacheUrl("users", "empty"));
    expect(got.status).toBe(200);
    expect((await got.arrayBuffer()).byteLength).toBe(0);
  });

  test("keys are percent-decoded to bytes: UTF-8, slashes and bytes that are not UTF-8", async () => {
    expect((await put(cacheUrl("users", encodeURIComponent("clé/ü")), "utf8")).status).toBe(204);
    expect(getValue(utf8.encode("users:clé/ü"))).toEqual(utf8.encode("utf8"));
    expect((await put(cacheUrl("users", "raw%FF%80"), "raw")).status).toBe(204);
    expect(getValue(new Uint8Array([...utf8.encode("users:raw"), 0xff, 0x80]))).toEqual(utf8.encode("raw"));
    expect(await (await fetch(cacheUrl("users", "raw%ff%80"))).text()).toBe("raw");
  });

  test("a miss is 404", async () => {
    const response = await fetch(cacheUrl("users", "nobody"));
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toBe("not found");
  });

  test("delete is 204 once, then 404", async () => {
    await put(cacheUrl("del", "k"), "v");
    expect((await fetch(cacheUrl("del", "k"), { method: "DELETE" })).status).toBe(204);
    const again = await fetch(cacheUrl("del", "k"), { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(await errorOf(again)).toBe("not found");
    expect((await fetch(cacheUrl("del", "k"))).status).toBe(404);
  });

  test("other methods are 405 with Allow", async () => {
    const response = await fetch(cacheUrl("users", "alice"), { method: "POST", body: "x" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, PUT, DELETE");
  });
});

describe("TTL", () => {
  test("from X-Gravity-TTL: expires once the store clock passes it", async () => {
    expect((await put(cacheUrl("ttl", "header"), "v", { "X-Gravity-TTL": "10" })).status).toBe(204);
    native.advanceClock(9);
    expect((await fetch(cacheUrl("ttl", "header"))).status).toBe(200);
    native.advanceClock(1);
    expect((await fetch(cacheUrl("ttl", "header"))).status).toBe(404);
  });

  test("from ?ttl=, and agreeing header and query are fine", async () => {
    expect((await put(cacheUrl("ttl", "query", "?ttl=5"), "v")).status).toBe(204);
    expect((await put(cacheUrl("ttl", "both", "?ttl=5"), "v", { "x-gravity-ttl": "5" })).status).toBe(204);
    native.advanceClock(4);
    expect((await fetch(cacheUrl("ttl", "query"))).status).toBe(200);
    expect((await fetch(cacheUrl("ttl", "both"))).status).toBe(200);
    native.advanceClock(1);
    expect((await fetch(cacheUrl("ttl", "query"))).status).toBe(404);
    expect((await fetch(cacheUrl("ttl", "both"))).status).toBe(404);
  });

  test("no TTL or 0 never expires; 30 days is the longest", async () => {
    expect((await put(cacheUrl("ttl", "forever"), "v")).status).toBe(204);
    expect((await put(cacheUrl("ttl", "zero", "?ttl=0"), "v")).status).toBe(204);
    expect((await put(cacheUrl("ttl", "month", "?ttl=2592000"), "v")).status).toBe(204);
    native.advanceClock(2_592_000 - 1);
    expect((await fetch(cacheUrl("ttl", "month"))).status).toBe(200);
    native.advanceClock(1);
    expect((await fetch(cacheUrl("ttl", "month"))).status).toBe(404);
    expect((await fetch(cacheUrl("ttl", "forever"))).status).toBe(200);
    expect((await fetch(cacheUrl("ttl", "zero"))).status).toBe(200);
  });

  test("bad TTLs are 400 and store nothing", async () => {
    const bad: [string, Record<string, string>][] = [
      ["?ttl=abc", {}],
      ["?ttl=-1", {}],
      ["?ttl=1.5", {}],
      ["?ttl=2592001", {}],
      ["", { "X-Gravity-TTL": "soon" }],
      ["?ttl=5", { "X-Gravity-TTL": "6" }],
    ];
    for (const [query, headers] of bad) {
      const response = await put(cacheUrl("ttl", "bad", query), "v", headers);
      expect([query, response.status]).toEqual([query, 400]);
      expect(await errorOf(response)).toMatch(/ttl|TTL/);
    }
    expect((await fetch(cacheUrl("ttl", "bad"))).status).toBe(404);
  });
});

describe("refusals", () => {
  test("bad groups and keys are 400 with the reason", async () => {
    const cases: [string, RegExp][] = [
      [`${base}/v1/cache/users/`, /key is empty/],
      [`${base}/v1/cache/users`, /expected \/v1\/cache\/\{group\}\/\{key\}/],
      [`${base}/v1/cache//k`, /group is empty/],
      [`${base}/v1/cache/us%3Aers/k`, /group must not contain ':'/],
      [cacheUrl("users", "a%20b"), /space or control byte 0x20/],
      [cacheUrl("users", "a%0Ab"), /space or control byte 0x0a/],
      [cacheUrl("users", "a%7Fb"), /control byte 0x7f/],
      [cacheUrl("users", "k".repeat(250 - "users:".length + 1)), /key is 251 bytes; the limit is 250/],
      [cacheUrl("users", "bad%zzescape"), /percent-encoding/],
      [cacheUrl("users", "trailing%F"), /percent-encoding/],
    ];
    for (const [url, reason] of cases) {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const response = await fetch(url, { method, body: method === "PUT" ? "v" : null });
        expect([url, method, response.status]).toEqual([url, method, 400]);
        expect(await errorOf(response)).toMatch(reason);
      }
    }
  });

  test("the longest item key (250 bytes) is fine", async () => {
    const key = "k".repeat(250 - "users:".length);
    expect((await put(cacheUrl("users", key), "v")).status).toBe(204);
    expect(await (await fetch(cacheUrl("users", key))).text()).toBe("v");
  });

  test("an unknown group is 404 with its own error", async () => {
    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await fetch(cacheUrl("nope", "k"), { method, body: method === "PUT" ? "v" : null });
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({ error: "unknown group" });
    }
  });

  test("a value over the limit is 413 before it is read; one the store refuses is 413 and drops the old value", async () => {
    expect((await put(cacheUrl("big", "k"), "old")).status).toBe(204);
    const over = await put(cacheUrl("big", "k"), new Uint8Array(MIB + 1));
    expect(over.status).toBe(413);
    expect(await errorOf(over)).toMatch(/larger than 1048576 bytes/);
    expect(await (await fetch(cacheUrl("big", "k"))).text()).toBe("old");
    // Within the API's limit but not the store's: the item's overhead counts too (memcached -I).
    const refused = await put(cacheUrl("big", "k"), new Uint8Array(MIB - 16));
    expect(refused.status).toBe(413);
    expect(await errorOf(refused)).toBe("object too large for cache");
    expect((await fetch(cacheUrl("big", "k"))).status).toBe(404);
  });

  test("an unknown path is 404", async () => {
    expect((await fetch(`${base}/v2/cache/users/alice`)).status).toBe(404);
    expect((await fetch(`${base}/`)).status).toBe(404);
  });
});

describe("health and readiness", () => {
  test("/healthz is 200 ok", async () => {
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok\n");
  });

  test("/readyz follows ready(): 200, then 503 with the reason, then 200 again", async () => {
    readiness = leafReady();
    expect(readiness).toBe(true);
    const ready = await fetch(`${base}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
    readiness = "draining";
    const draining = await fetch(`${base}/readyz`);
    expect([draining.status, await draining.text()]).toEqual([503, "draining\n"]);
    readiness = false;
    const notReady = await fetch(`${base}/readyz`);
    expect([notReady.status, await notReady.text()]).toEqual([503, "not ready\n"]);
    readiness = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  test("probes take GET and HEAD only", async () => {
    expect((await fetch(`${base}/healthz`, { method: "HEAD" })).status).toBe(200);
    expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
  });
});

describe("/metrics", () => {
  async function scrape(): Promise<Map<string, MetricFamily>> {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(registry.contentType);
    return parseExposition(await response.text());
  }

  test("serves every documented leaf, common and default metric with its type", async () => {
    await fetch(cacheUrl("stats", "warm"));
    const families = await scrape();
    for (const spec of [
      ...Object.values(LeafMetrics),
      ...Object.values(CommonMetrics),
      ...Object.values(DEFAULT_METRICS),
    ]) {
      expect([spec.name, families.get(spec.name)?.type]).toEqual([spec.name, spec.type]);
      expect(families.get(spec.name)?.help).toBe(spec.help);
    }
    for (const family of families.values()) expect(family.name).toStartWith("gravity_");
    expect(sampleValue(families, "gravity_build_info", { role: "leaf", version: "test" })).toBe(1);
  });

  test("store numbers are the store's", async () => {
    const families = await scrape();
    const stats = native.stats();
    expect(sampleValue(families, "gravity_store_items")).toBe(stats.curr_items);
    expect(sampleValue(families, "gravity_store_bytes")).toBe(stats.bytes);
    expect(sampleValue(families, "gravity_store_limit_bytes")).toBe(64 * MIB);
    expect(sampleValue(families, "gravity_store_item_size_max_bytes")).toBe(stats.item_size_max);
    expect(sampleValue(families, "gravity_store_evictions_total")).toBe(stats.evictions);
    expect(sampleValue(families, "gravity_store_admissions_rejected_total")).toBe(stats.admissions_rejected);
    expect(sampleValue(families, "gravity_store_reclaimed_total")).toBe(stats.reclaimed);
    expect(sampleValue(families, "gravity_store_commands_total", { command: "get" })).toBe(stats.cmd_get);
    expect(sampleValue(families, "gravity_store_commands_total", { command: "set" })).toBe(stats.cmd_set);
    expect(sampleValue(families, "gravity_store_hits_total", { command: "get" })).toBe(stats.get_hits);
    expect(sampleValue(families, "gravity_store_misses_total", { command: "get" })).toBe(stats.get_misses);
    expect(sampleValue(families, "gravity_store_sets_refused_total", { reason: "too_large" })).toBe(
      stats.store_too_large,
    );
    expect(sampleValue(families, "gravity_leaf_connections")).toBe(stats.curr_connections);
  });

  test("a hit, a miss and a put move the counters by one each", async () => {
    await put(cacheUrl("stats", "hit"), "v");
    const before = await scrape();
    await fetch(cacheUrl("stats", "hit"));
    await fetch(cacheUrl("stats", "miss"));
    await put(cacheUrl("stats", "other"), "v");
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    expect(moved("gravity_store_hits_total", { command: "get" })).toBe(1);
    expect(moved("gravity_store_misses_total", { command: "get" })).toBe(1);
    expect(moved("gravity_store_commands_total", { command: "set" })).toBe(1);
    expect(moved("gravity_store_items", {})).toBe(1);
    expect(moved("gravity_http_requests_total", { method: "GET", route: "cache", status: "200" })).toBe(1);
    expect(moved("gravity_http_requests_total", { method: "GET", route: "cache", status: "404" })).toBe(1);
    expect(moved("gravity_http_requests_total", { method: "PUT", route: "cache", status: "204" })).toBe(1);
    // The first scrape's own response was counted after it was written.
    expect(moved("gravity_http_requests_total", { method: "GET", route: "metrics", status: "200" })).toBe(1);
    const count = (families: Map<string, MetricFamily>) =>
      sampleValue(
        families,
        "gravity_http_request_duration_seconds",
        { method: "GET", route: "cache" },
        "gravity_http_request_duration_seconds_count",
      ) ?? 0;
    expect(count(after) - count(before)).toBe(2);
  });
});
