// The registry builders: one store snapshot per scrape, builders that may run twice on one
// registry, a registry without default metrics, and the error kinds of destination failures.
import { beforeAll, describe, expect, test } from "bun:test";
import {
  ConnectionError,
  DestinationDownError,
  OverloadedError,
  ProtocolError,
  ServerError,
  TimeoutError,
} from "../errors.ts";
import { native } from "../native/index.ts";
import { parseExposition, sampleValue } from "./exposition.ts";
import { createRegistry, errorKind, httpMetrics, leafMetrics } from "./registry.ts";

const MIB = 1024 * 1024;

beforeAll(() => {
  // The first configure() in a process wins; another in-process test may have configured it first.
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
});

describe("leafMetrics", () => {
  test("reads the store once per scrape, whatever the number of store metrics", async () => {
    const registry = createRegistry({ role: "leaf", version: "test", defaultMetrics: false });
    let reads = 0;
    leafMetrics(registry, () => {
      reads++;
      return native.stats();
    });
    expect(reads).toBe(0);
    await registry.metrics();
    expect(reads).toBe(1);
    native.set("registry:one", new Uint8Array(3));
    const families = parseExposition(await registry.metrics());
    expect(reads).toBe(2);
    expect(sampleValue(families, "gravity_store_items")).toBe(native.stats().curr_items);
  });

  test("a registry without default metrics holds only gravity's own", async () => {
    const registry = createRegistry({ role: "leaf", version: "1.2.3", defaultMetrics: false });
    const families = parseExposition(await registry.metrics());
    expect([...families.keys()]).toEqual(["gravity_build_info"]);
    expect(sampleValue(families, "gravity_build_info", { role: "leaf", version: "1.2.3" })).toBe(1);
  });
});

describe("httpMetrics", () => {
  test("a second recorder on one registry shares the first one's metrics", async () => {
    const registry = createRegistry({ role: "router", version: "test", defaultMetrics: false });
    httpMetrics(registry).observe("GET", "cache", 200, 0.001);
    httpMetrics(registry).observe("GET", "cache", 200, 0.002);
    httpMetrics(registry).observe("PATCH", "other", 404, 0.002);
    const families = parseExposition(await registry.metrics());
    expect(
      sampleValue(families, "gravity_http_requests_total", { method: "GET", route: "cache", status: "200" }),
    ).toBe(2);
    expect(
      sampleValue(families, "gravity_http_requests_total", {
        method: "other",
        route: "other",
        status: "404",
      }),
    ).toBe(1);
    const sum = sampleValue(
      families,
      "gravity_http_request_duration_seconds",
      { method: "GET", route: "cache" },
      "gravity_http_request_duration_seconds_sum",
    );
    expect(sum).toBeCloseTo(0.003, 9);
  });
});

describe("errorKind", () => {
  test("names each failure of a destination", () => {
    expect(errorKind(new TimeoutError("slow", 100))).toBe("timeout");
    expect(errorKind(new ConnectionError("h:1", "refused"))).toBe("connection");
    expect(errorKind(new DestinationDownError("h:1"))).toBe("down");
    expect(errorKind(new OverloadedError("full"))).toBe("overloaded");
    expect(errorKind(new ProtocolError("garbage"))).toBe("protocol");
    expect(errorKind(new ServerError("SERVER_ERROR", "oops"))).toBe("server_error");
    expect(errorKind(new Error("bug"))).toBe("other");
    expect(errorKind("text")).toBe("other");
  });
});
