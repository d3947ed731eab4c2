import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { HashFunctions } from "../hash/hash-functions.ts";
import {
  ConfigFormat,
  configFormatOf,
  formatPath,
  HEDGE_DEFAULTS,
  loadConfig,
  POOL_DEFAULTS,
  type PoolConfig,
  type PrefixRouteConfig,
  parseConfig,
  REPAIR_DEFAULTS,
  type RouteConfig,
  type RouterConfig,
} from "./config.ts";

const FILE = "router.yaml";
const POOLS = `pools:
  main:
    servers: [127.0.0.1:11311, 127.0.0.1:11312]
  replicas:
    servers: [127.0.0.1:11411, 127.0.0.1:11412]
  empty: {}
`;

function yaml(text: string): RouterConfig {
  return parseConfig(text, FILE, ConfigFormat.Yaml);
}

/** The route of a config made of POOLS and `route` (YAML). */
function route(text: string): RouteConfig {
  return yaml(`${POOLS}route: ${text}\n`).route;
}

function pool(text: string): PoolConfig {
  const config = yaml(`pools:\n  main: ${text}\nroute: main\n`);
  return config.pools.get("main") as PoolConfig;
}

function configError(parse: () => unknown): ConfigError {
  try {
    parse();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config was accepted");
}

/** The message for a config made of POOLS and `route`. */
function routeError(text: string): string {
  return configError(() => route(text)).message;
}

function poolError(text: string): string {
  return configError(() => pool(text)).message;
}

describe("pools", () => {
  test("a pool with only servers gets every default", () => {
    const main = pool("{servers: [127.0.0.1:11311]}");
    expect(main).toEqual({ servers: [{ host: "127.0.0.1", port: 11311, weight: 1 }], ...POOL_DEFAULTS });
    expect(main.hash).toBe("md5");
    expect(main.distribution).toBe("ketama");
    expect(main.tko).toEqual({ failures: 3, probeIntervalMs: 500, maxProbeIntervalMs: 10_000 });
  });

  test("defaults are fresh objects per parse", () => {
    const first = pool("{}");
    const second = pool("{}");
    expect(first.servers).not.toBe(second.servers);
    expect(first.tko).not.toBe(second.tko);
    expect(first.servers).toEqual([]);
  });

  test("every field can be set", () => {
    const main = pool(`
    servers: [a:1]
    discovery: static
    transport: tcp
    hash: fnv1a_64
    distribution: modula
    connections: 64
    maxConnections: 128
    timeoutMs: 60000
    connectTimeoutMs: 5
    maxInFlight: 1
    maxQueued: 0
    tko: { failures: 1, probeIntervalMs: 10, maxProbeIntervalMs: 10 }`);
    expect(main).toEqual({
      servers: [{ host: "a", port: 1, weight: 1 }],
      discovery: "static",
      transport: "tcp",
      hash: "fnv1a_64",
      distribution: "modula",
      connections: 64,
      maxConnections: 128,
      timeoutMs: 60000,
      connectTimeoutMs: 5,
      maxInFlight: 1,
      maxQueued: 0,
      tko: { failures: 1, probeIntervalMs: 10, maxProbeIntervalMs: 10 },
    });
  });

  test("every twemproxy hash name is accepted", () => {
    for (const name of Object.keys(HashFunctions)) expect(pool(`{hash: ${name}}`).hash).toBe(name as never);
  });

  test("server strings and objects", () => {
    const main = pool(`
    servers:
      - 127.0.0.1:11311
      - 127.0.0.1:11312:2
      - "cache-3.example:11211:3 leaf-3"
      - "[::1]:11311"
      - "[fe80::1%eth0]:11312:4"
      - { host: 10.0.0.1, port: 11211 }
      - { host: 10.0.0.2, port: 11211, weight: 5, name: ten-two }`);
    expect(main.servers).toEqual([
      { host: "127.0.0.1", port: 11311, weight: 1 },
      { host: "127.0.0.1", port: 11312, weight: 2 },
      { host: "cache-3.example", port: 11211, weight: 3, name: "leaf-3" },
      { host: "::1", port: 11311, weight: 1 },
      { host: "fe80::1%eth0", port: 11312, weight: 4 },
      { host: "10.0.0.1", port: 11211, weight: 1 },
      { host: "10.0.0.2", port: 11211, weight: 5, name: "ten-two" },
    ]);
  });

  test("pools keep file order", () => {
    expect([...yaml(`${POOLS}route: main\n`).pools.keys()]).toEqual(["main", "replicas", "empty"]);
  });

  test("listen is optional and parsed to host and port", () => {
    expect(yaml(`${POOLS}route: main\n`).listen).toBeUndefined();
    expect(yaml(`listen: "0.0.0.0:11211"\n${POOLS}route: main\n`).listen).toEqual({
      host: "0.0.0.0",
      port: 11211,
    });
    expect(yaml(`listen: "[::1]:0"\n${POOLS}route: main\n`).listen).toEqual({ host: "::1", port: 0 });
  });
});

describe("routes", () => {
  test("a bare pool name is a sharded route", () => {
    expect(route("main")).toEqual({ type: "sharded", pool: "main" });
    expect(route("{type: sharded, pool: main}")).toEqual({ type: "sharded", pool: "main" });
  });

  test("sharded may use a pool without servers", () => {
    expect(route("empty")).toEqual({ type: "sharded", pool: "empty" });
  });

  test("replicated defaults: all-sync writes, one read, failover when down, no hedge, read repair", () => {
    expect(route("{type: replicated, pool: replicas}")).toEqual({
      type: "replicated",
      pool: "replicas",
      writes: "all-sync",
      reads: "one",
      onDown: "failover",
      repair: { budget: 0.05, recoveryMs: 60_000 },
    });
    expect(REPAIR_DEFAULTS).toEqual({ budget: 0.05, recoveryMs: 60_000 });
  });

  test("writeQuorum: all-sync only, 1 to the pool's servers", () => {
    expect(route("{type: replicated, pool: replicas, writeQuorum: 1}")).toMatchObject({ writeQuorum: 1 });
    expect(routeError("{type: replicated, pool: replicas, writeQuorum: 0}")).toContain("route.writeQuorum");
    expect(routeError("{type: replicated, pool: replicas, writeQuorum: 9}")).toContain(
      "at most the pool's 2 servers (writeQuorum is 9)",
    );
    expect(routeError("{type: replicated, pool: replicas, writes: all-majority, writeQuorum: 1}")).toContain(
      "writes: all-sync for writeQuorum (writes is all-majority)",
    );
  });

  test("repair settings fill in the rest from the defaults and are checked", () => {
    expect(route("{type: replicated, pool: replicas, repair: {budget: 0}}")).toMatchObject({
      repair: { budget: 0, recoveryMs: 60_000 },
    });
    expect(route("{type: replicated, pool: replicas, repair: {recoveryMs: 0}}")).toMatchObject({
      repair: { budget: 0.05, recoveryMs: 0 },
    });
    expect(routeError("{type: replicated, pool: replicas, repair: {budget: 2}}")).toContain(
      "route.repair.budget",
    );
    expect(routeError("{type: replicated, pool: replicas, repair: {recoveryMs: -1}}")).toContain(
      "route.repair.recoveryMs",
    );
    expect(routeError("{type: replicated, pool: replicas, repair: {every: 1}}")).toContain("route.repair");
  });

  test("replicated with every mode", () => {
    for (const writes of ["all-sync", "all-async", "all-majority", "all-initial"]) {
      for (const reads of ["one", "all-fastest"]) {
        for (const onDown of ["fail-fast", "failover"]) {
          expect(
            route(
              `{type: replicated, pool: replicas, writes: ${writes}, reads: ${reads}, onDown: ${onDown}}`,
            ),
          ).toEqual({
            type: "replicated",
            pool: "replicas",
            writes,
            reads,
            onDown,
            repair: REPAIR_DEFAULTS,
          } as RouteConfig);
        }
      }
    }
  });

  test("hedged reads get the hedge defaults: adaptive p95 between 1 and 1000 ms, budget 5%", () => {
    const replicated = route("{type: replicated, pool: replicas, reads: hedged}");
    expect(replicated).toEqual({
      type: "replicated",
      pool: "replicas",
      writes: "all-sync",
      reads: "hedged",
      onDown: "failover",
      hedge: { delayMs: "adaptive", budget: 0.05, percentile: 95, minDelayMs: 1, maxDelayMs: 1000 },
      repair: REPAIR_DEFAULTS,
    });
    expect(HEDGE_DEFAULTS).toEqual({
      delayMs: "adaptive",
      budget: 0.05,
      percentile: 95,
      minDelayMs: 1,
      maxDelayMs: 1000,
    });
  });

  test("hedge settings fill in the rest from the defaults", () => {
    expect(route("{type: replicated, pool: replicas, reads: hedged, hedge: {delayMs: 5}}")).toMatchObject({
      hedge: { ...HEDGE_DEFAULTS, delayMs: 5 },
    });
    expect(
      route(
        "{type: replicated, pool: replicas, reads: hedged, hedge: {delayMs: adaptive, budget: 0, percentile: 99.9, minDelayMs: 2, maxDelayMs: 2}}",
      ),
    ).toMatchObject({
      hedge: { delayMs: "adaptive", budget: 0, percentile: 99.9, minDelayMs: 2, maxDelayMs: 2 },
    });
  });

  test("failover and miss-failover take routes as children", () => {
    expect(route("{type: failover, children: [main, {type: replicated, pool: replicas}]}")).toEqual({
      type: "failover",
      children: [
        { type: "sharded", pool: "main" },
        {
          type: "replicated",
          pool: "replicas",
          writes: "all-sync",
          reads: "one",
          onDown: "failover",
          repair: REPAIR_DEFAULTS,
        },
      ],
    });
    expect(route("{type: miss-failover, children: [main, replicas, empty]}")).toEqual({
      type: "miss-failover",
      children: [
        { type: "sharded", pool: "main" },
        { type: "sharded", pool: "replicas" },
        { type: "sharded", pool: "empty" },
      ],
    });
  });

  test('prefix: literal prefixes in file order, "*" as the fallback', () => {
    const prefix = route(`
  type: prefix
  routes:
    "user:": { type: replicated, pool: replicas }
    "*": main
    "user:admin:": { type: failover, children: [main, replicas] }
    "a": empty`);
    if (prefix.type !== "prefix") throw new Error(`got a ${prefix.type} route`);
    expect([...prefix.routes.keys()]).toEqual(["user:", "user:admin:", "a"]);
    expect(prefix.routes.get("user:")).toMatchObject({ type: "replicated", pool: "replicas" });
    expect(prefix.routes.get("user:admin:")).toMatchObject({ type: "failover" });
    expect(prefix.routes.has("*")).toBe(false);
    expect(prefix.fallback).toEqual({ type: "sharded", pool: "main" });
  });

  test("operation: deletes default to the writes route (the same object)", () => {
    const operation = route("{type: operation, reads: replicas, writes: main}");
    if (operation.type !== "operation") throw new Error(`got a ${operation.type} route`);
    expect(operation.reads).toEqual({ type: "sharded", pool: "replicas" });
    expect(operation.writes).toEqual({ type: "sharded", pool: "main" });
    expect(operation.deletes).toBe(operation.writes);
    const explicit = route("{type: operation, reads: replicas, writes: main, deletes: empty}");
    expect(explicit).toMatchObject({ deletes: { type: "sharded", pool: "empty" } });
  });

  test("routes nest to any depth", () => {
    const nested = route(`
  type: prefix
  routes:
    "*":
      type: operation
      reads: { type: miss-failover, children: [{type: failover, children: [main, replicas]}, empty] }
      writes: { type: prefix, routes: { "x": replicas, "*": main } }`);
    expect(nested).toMatchObject({
      fallback: {
        type: "operation",
        reads: { type: "miss-failover", children: [{ type: "failover" }, { pool: "empty" }] },
        writes: { type: "prefix", fallback: { pool: "main" } },
      },
    });
  });
});

describe("YAML and JSON", () => {
  const json = JSON.stringify({
    listen: "127.0.0.1:11211",
    pools: {
      main: { servers: ["127.0.0.1:11311", "127.0.0.1:11312:2"] },
      replicas: { servers: [{ host: "127.0.0.1", port: 11411 }], hash: "crc32" },
    },
    route: {
      type: "prefix",
      routes: {
        "user:": { type: "replicated", pool: "replicas", reads: "hedged", hedge: { delayMs: 3 } },
        "*": "main",
      },
    },
  });
  const yamlText = `
listen: "127.0.0.1:11211"
pools:
  main:
    servers: [127.0.0.1:11311, 127.0.0.1:11312:2]
  replicas:
    servers: [{host: 127.0.0.1, port: 11411}]
    hash: crc32
route:
  type: prefix
  routes:
    "user:": {type: replicated, pool: replicas, reads: hedged, hedge: {delayMs: 3}}
    "*": main
`;

  test("the same config in either syntax parses the same", () => {
    const fromJson = parseConfig(json, "router.json", ConfigFormat.Json);
    expect(fromJson).toEqual(parseConfig(yamlText, FILE, ConfigFormat.Yaml));
    expect(fromJson.pools.get("replicas")?.hash).toBe("crc32");
  });

  test("the format follows the extension", () => {
    expect(configFormatOf("a/router.yaml")).toBe("yaml");
    expect(configFormatOf("router.YML")).toBe("yaml");
    expect(configFormatOf("router.json")).toBe("json");
    expect(configFormatOf("router.toml")).toBeUndefined();
    expect(configFormatOf("yaml")).toBeUndefined();
  });

  test("a byte order mark is ignored", () => {
    expect(parseConfig(`\ufeff${json}`, "router.json", ConfigFormat.Json).listen?.port).toBe(11211);
  });
});

describe("syntax errors name the file and the line", () => {
  test("YAML: a tab used for indentation", () => {
    const error = configError(() => yaml("pools:\n  main:\n\tservers: []\nroute: main\n"));
    expect(error.message).toBe(
      "router.yaml: line 3: expected valid YAML (Tab characters cannot be used as indentation)",
    );
    expect(error.code).toBe("ECONFIG");
    expect(error.file).toBe(FILE);
    expect(error.field).toBe("line 3");
  });

  test("YAML: an unclosed flow list names the line that opens it", () => {
    const text = "pools:\n  main: {}\n\nroute: [main\nlisten: x\n";
    expect(configError(() => yaml(text)).message).toBe(
      "router.yaml: line 4: expected valid YAML (Unexpected token)",
    );
  });

  test("YAML: an error after a multi-line flow list", () => {
    const text = 'pools:\n  main:\n    servers: [\n      "a:1",\n      "a:2"]\n  bad: : :\nroute: main\n';
    expect(configError(() => yaml(text)).field).toBe("line 6");
  });

  test("JSON: a trailing comma", () => {
    const text = '{\n  "pools": {"main": {}},\n  "route": "main",\n}\n';
    expect(configError(() => parseConfig(text, "router.json", ConfigFormat.Json)).message).toBe(
      "router.json: line 4: expected valid JSON (Property name must be a string literal)",
    );
  });

  test("JSON: text cut short ends at the last line", () => {
    const text = '{\n  "pools": {"main": {}},\n  "route": "ma';
    expect(configError(() => parseConfig(text, "router.json", ConfigFormat.Json)).field).toBe("line 3");
  });

  test("JSON: garbage after the document", () => {
    const text = '{"pools": {"main": {}}, "route": "main"}\n\n]';
    expect(configError(() => parseConfig(text, "router.json", ConfigFormat.Json)).field).toBe("line 3");
  });

  test("an empty document", () => {
    expect(configError(() => yaml("# nothing yet\n")).message).toBe(
      'router.yaml: top level: expected an object with "pools" and "route", got an empty document',
    );
  });
});

describe("validation errors name the field and what was expected", () => {
  test("a route naming a pool that does not exist", () => {
    expect(
      routeError(`
  type: prefix
  routes:
    "user:": { type: replicated, pool: replica, reads: hedged }
    "*": main`),
    ).toBe(
      'router.yaml: route.routes["user:"].pool: expected one of the pools "main", "replicas", "empty", got "replica"',
    );
  });

  test("a bare pool name that does not exist", () => {
    expect(routeError('{type: prefix, routes: {"*": mian}}')).toBe(
      'router.yaml: route.routes["*"]: expected one of the pools "main", "replicas", "empty", got "mian"',
    );
    expect(routeError("{type: failover, children: [main, {type: sharded, pool: nope}]}")).toBe(
      'router.yaml: route.children[1].pool: expected one of the pools "main", "replicas", "empty", got "nope"',
    );
  });

  test("a replicated route over a pool without servers", () => {
    expect(routeError("{type: replicated, pool: empty}")).toBe(
      'router.yaml: route.pool: expected a pool with servers (a replicated route needs at least one), got "empty"',
    );
  });

  test("hedge settings without hedged reads", () => {
    expect(routeError("{type: replicated, pool: replicas, hedge: {budget: 0.1}}")).toBe(
      "router.yaml: route.hedge: expected reads: hedged for hedge settings (reads is one)",
    );
    expect(routeError("{type: replicated, pool: replicas, reads: all-fastest, hedge: {}}")).toBe(
      "router.yaml: route.hedge: expected reads: hedged for hedge settings (reads is all-fastest)",
    );
  });

  test("hedge values", () => {
    const hedged = (hedge: string) =>
      routeError(`{type: replicated, pool: replicas, reads: hedged, hedge: ${hedge}}`);
    expect(hedged("{delayMs: fast}")).toBe(
      'router.yaml: route.hedge.delayMs: expected a delay in ms from 1 to 60000 or "adaptive", got "fast"',
    );
    expect(hedged("{delayMs: 0}")).toBe(
      "router.yaml: route.hedge.delayMs: expected an integer from 1 to 60000, got 0",
    );
    expect(hedged("{budget: 1.5}")).toBe(
      "router.yaml: route.hedge.budget: expected a fraction from 0 to 1, got 1.5",
    );
    expect(hedged("{percentile: 0}")).toBe(
      "router.yaml: route.hedge.percentile: expected a percentile from 1 to 100, got 0",
    );
    expect(hedged("{delayMs: 5, percentile: 99}")).toBe(
      'router.yaml: route.hedge.percentile: expected only with delayMs: "adaptive" (delayMs is 5), got 99',
    );
    expect(hedged("{minDelayMs: 10, maxDelayMs: 5}")).toBe(
      "router.yaml: route.hedge.maxDelayMs: expected minDelayMs <= maxDelayMs (they are 10 and 5), got 5",
    );
    expect(hedged("{minDelayMs: 2000}")).toBe(
      "router.yaml: route.hedge.minDelayMs: expected minDelayMs <= maxDelayMs (they are 2000 and 1000), got 2000",
    );
  });

  test("replicated modes", () => {
    expect(routeError("{type: replicated, pool: replicas, writes: all}")).toBe(
      'router.yaml: route.writes: expected one of all-sync, all-async, all-majority, all-initial, got "all"',
    );
    expect(routeError("{type: replicated, pool: replicas, reads: any}")).toBe(
      'router.yaml: route.reads: expected one of one, all-fastest, hedged, got "any"',
    );
    expect(routeError("{type: replicated, pool: replicas, onDown: retry}")).toBe(
      'router.yaml: route.onDown: expected one of fail-fast, failover, got "retry"',
    );
  });

  test("a prefix route without the default", () => {
    expect(routeError('{type: prefix, routes: {"user:": main}}')).toBe(
      'router.yaml: route.routes: expected a "*" entry (the route for keys no prefix matches)',
    );
  });

  test("prefixes are literal, non-empty, without spaces", () => {
    expect(routeError('{type: prefix, routes: {"user:*": main, "*": main}}')).toBe(
      'router.yaml: route.routes["user:*"]: expected a literal key prefix ("*" alone is the default route; prefixes are not globs)',
    );
    expect(routeError('{type: prefix, routes: {"": main, "*": main}}')).toBe(
      'router.yaml: route.routes[""]: expected a non-empty key prefix or "*"',
    );
    expect(routeError('{type: prefix, routes: {"a b": main, "*": main}}')).toBe(
      'router.yaml: route.routes["a b"]: expected a key prefix without spaces or control characters',
    );
    expect(routeError(`{type: prefix, routes: {"${"k".repeat(251)}": main, "*": main}}`)).toContain(
      "expected a key prefix of at most 250 bytes",
    );
  });

  test("failover routes need two children", () => {
    expect(routeError("{type: failover, children: [main]}")).toBe(
      "router.yaml: route.children: expected a list of at least 2 routes",
    );
    expect(routeError("{type: miss-failover, children: main}")).toBe(
      'router.yaml: route.children: expected a list of at least 2 routes, got "main"',
    );
    expect(routeError("{type: miss-failover}")).toBe(
      "router.yaml: route.children: expected a list of at least 2 routes, but it is missing",
    );
  });

  test("an operation route needs reads and writes", () => {
    expect(routeError("{type: operation, reads: main}")).toBe(
      'router.yaml: route.writes: expected a pool name or a route object with a "type", but it is missing',
    );
  });

  test("a route type that does not exist, or none", () => {
    const types = "sharded, replicated, failover, miss-failover, prefix, operation, gutter, warmup, loader";
    expect(routeError("{type: shardd, pool: main}")).toBe(
      `router.yaml: route.type: expected one of the route types ${types}, got "shardd"`,
    );
    expect(routeError("{pool: main}")).toBe(
      `router.yaml: route.type: expected one of the route types ${types}, but it is missing`,
    );
    expect(routeError("5")).toBe(
      'router.yaml: route: expected a pool name or a route object with a "type", got 5',
    );
    expect(routeError("[main]")).toBe(
      'router.yaml: route: expected a pool name or a route object with a "type", got a list',
    );
  });

  test("unknown fields anywhere are errors naming the known ones", () => {
    expect(configError(() => yaml(`${POOLS}route: main\nroutes: main\n`)).message).toBe(
      "router.yaml: routes: expected one of the fields listen, etcd, nats, spool, loaders, pools, route",
    );
    expect(poolError("{servers: [], conections: 3}")).toBe(
      "router.yaml: pools.main.conections: expected one of the fields servers, discovery, transport, hash, distribution, connections, maxConnections, timeoutMs, connectTimeoutMs, maxInFlight, maxQueued, tko, tls",
    );
    expect(poolError("{tko: {failure: 3}}")).toBe(
      "router.yaml: pools.main.tko.failure: expected one of the fields failures, probeIntervalMs, maxProbeIntervalMs",
    );
    expect(poolError("{servers: [{host: a, port: 1, wieght: 2}]}")).toBe(
      "router.yaml: pools.main.servers[0].wieght: expected one of the fields host, port, weight, name",
    );
    expect(routeError("{type: replicated, pool: replicas, reads: hedged, hedge: {delay: 5}}")).toBe(
      "router.yaml: route.hedge.delay: expected one of the fields delayMs, budget, percentile, minDelayMs, maxDelayMs",
    );
    expect(routeError('{type: prefix, route: {"*": main}}')).toBe(
      "router.yaml: route.route: expected one of the fields type, routes",
    );
  });

  test("an unknown field is reported before the missing field it was meant to be", () => {
    expect(routeError("{type: replicated, pol: replicas}")).toBe(
      "router.yaml: route.pol: expected one of the fields type, pool, writes, writeQuorum, reads, hedge, onDown, repair",
    );
  });

  test("server strings", () => {
    const format = '"host:port", "host:port:weight" or "host:port:weight name" (IPv6 hosts in brackets)';
    expect(poolError("{servers: [localhost]}")).toBe(
      `router.yaml: pools.main.servers[0]: expected ${format}, got "localhost"`,
    );
    expect(poolError('{servers: ["::1:11211"]}')).toBe(
      `router.yaml: pools.main.servers[0]: expected ${format}, got "::1:11211"`,
    );
    expect(poolError('{servers: ["a:1", "a:1:1.5"]}')).toBe(
      `router.yaml: pools.main.servers[1]: expected ${format}, got "a:1:1.5"`,
    );
    expect(poolError('{servers: ["a:0"]}')).toBe(
      'router.yaml: pools.main.servers[0]: expected a port from 1 to 65535, got "a:0"',
    );
    expect(poolError('{servers: ["a:65536"]}')).toBe(
      'router.yaml: pools.main.servers[0]: expected a port from 1 to 65535, got "a:65536"',
    );
    expect(poolError('{servers: ["a:1:0"]}')).toBe(
      'router.yaml: pools.main.servers[0]: expected a weight from 1 to 1000000, got "a:1:0"',
    );
    expect(poolError("{servers: [11211]}")).toBe(
      'router.yaml: pools.main.servers[0]: expected "host:port[:weight]" or an object {host, port, weight, name}, got 11211',
    );
  });

  test("server objects", () => {
    expect(poolError("{servers: [{host: a}]}")).toBe(
      "router.yaml: pools.main.servers[0].port: expected an integer from 1 to 65535, but it is missing",
    );
    expect(poolError("{servers: [{host: a, port: 1, weight: 0}]}")).toBe(
      "router.yaml: pools.main.servers[0].weight: expected an integer from 1 to 1000000, got 0",
    );
    expect(poolError('{servers: [{host: "a b", port: 1}]}')).toBe(
      'router.yaml: pools.main.servers[0].host: expected a hostname or IP address, got "a b"',
    );
  });

  test("duplicate servers", () => {
    expect(poolError('{servers: ["a:1", "b:2", "a:1:3"]}')).toBe(
      'router.yaml: pools.main.servers[2]: expected a server not already listed (a:1 is servers[0]), got "a:1:3"',
    );
    expect(poolError('{servers: ["a:1", {host: a, port: 1}]}')).toBe(
      "router.yaml: pools.main.servers[1]: expected a server not already listed (a:1 is servers[0])",
    );
    expect(poolError('{servers: ["a:1:1 leaf", "b:1:1 leaf"]}')).toBe(
      'router.yaml: pools.main.servers[1]: expected a unique ketama name ("leaf" is servers[0]\'s), got "b:1:1 leaf"',
    );
  });

  test("numbers out of range or of the wrong kind", () => {
    expect(poolError("{connections: 100}")).toBe(
      "router.yaml: pools.main.connections: expected an integer from 1 to 64, got 100",
    );
    expect(poolError("{connections: 0}")).toBe(
      "router.yaml: pools.main.connections: expected an integer from 1 to 64, got 0",
    );
    expect(poolError("{connections: 1.5}")).toBe(
      "router.yaml: pools.main.connections: expected an integer from 1 to 64, got 1.5",
    );
    expect(poolError('{timeoutMs: "1000"}')).toBe(
      'router.yaml: pools.main.timeoutMs: expected an integer from 1 to 60000, got "1000"',
    );
    expect(poolError("{maxQueued: -1}")).toBe(
      "router.yaml: pools.main.maxQueued: expected an integer from 0 to 1048576, got -1",
    );
    expect(poolError("{connections: 4, maxConnections: 2}")).toBe(
      "router.yaml: pools.main.maxConnections: expected at least connections (4), got 2",
    );
    expect(poolError("{tko: {probeIntervalMs: 2000, maxProbeIntervalMs: 1000}}")).toBe(
      "router.yaml: pools.main.tko.maxProbeIntervalMs: expected at least probeIntervalMs (2000), got 1000",
    );
  });

  test("hash and distribution names", () => {
    expect(poolError("{hash: sha1}")).toBe(
      `router.yaml: pools.main.hash: expected one of the hashes ${Object.keys(HashFunctions).join(", ")}, got "sha1"`,
    );
    expect(poolError("{distribution: random}")).toBe(
      'router.yaml: pools.main.distribution: expected one of ketama, modula, got "random"',
    );
  });

  test("modula weights must fit its slot table", () => {
    const servers = Array.from({ length: 17 }, (_, i) => `"s${i}:1:1000000"`).join(", ");
    expect(poolError(`{distribution: modula, servers: [${servers}]}`)).toBe(
      "router.yaml: pools.main.servers: expected weights that sum to at most 16777216 with distribution modula (they sum to 17000000)",
    );
    expect(pool(`{servers: [${servers}]}`).servers).toHaveLength(17); // ketama has no such limit
  });

  test("pools: present, not empty, well named", () => {
    expect(configError(() => yaml("route: main\n")).message).toBe(
      "router.yaml: pools: expected an object of pools by name, but it is missing",
    );
    expect(configError(() => yaml("pools: {}\nroute: main\n")).message).toBe(
      "router.yaml: pools: expected at least one pool",
    );
    expect(configError(() => yaml('pools: {"a b": {}}\nroute: main\n')).message).toBe(
      'router.yaml: pools["a b"]: expected a pool name of letters, digits, "_", "." and "-"',
    );
    expect(configError(() => yaml("pools: {main: [a:1]}\nroute: main\n")).message).toBe(
      "router.yaml: pools.main: expected an object, got a list",
    );
    expect(configError(() => yaml("pools: {main: {}}\n")).message).toBe(
      'router.yaml: route: expected a pool name or a route object with a "type", but it is missing',
    );
  });

  test('"__proto__" is refused wherever it appears', () => {
    expect(configError(() => yaml("pools: {__proto__: {}, main: {}}\nroute: main\n")).message).toBe(
      "router.yaml: pools.__proto__: expected a name other than __proto__",
    );
    const text =
      '{"pools": {"main": {}}, "route": {"type": "prefix", "routes": {"__proto__": "main", "*": "main"}}}';
    expect(configError(() => parseConfig(text, "router.json", ConfigFormat.Json)).message).toBe(
      "router.json: route.routes.__proto__: expected a name other than __proto__",
    );
  });

  test("listen", () => {
    expect(configError(() => yaml(`listen: 11211\n${POOLS}route: main\n`)).message).toBe(
      'router.yaml: listen: expected "host:port", got 11211',
    );
    expect(configError(() => yaml(`listen: "localhost:99999"\n${POOLS}route: main\n`)).message).toBe(
      'router.yaml: listen: expected "host:port" with a port from 0 to 65535, got "localhost:99999"',
    );
  });

  test("the top level must be an object", () => {
    expect(configError(() => yaml("- main\n")).message).toBe(
      'router.yaml: top level: expected an object with "pools" and "route", got a list',
    );
    expect(configError(() => parseConfig('"main"', "r.json", ConfigFormat.Json)).message).toBe(
      'r.json: top level: expected an object with "pools" and "route", got "main"',
    );
  });

  test("the error carries file, field and expectation apart", () => {
    const error = configError(() => pool("{connections: 100}"));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.file).toBe(FILE);
    expect(error.field).toBe("pools.main.connections");
    expect(error.expected).toBe("an integer from 1 to 64, got 100");
  });

  test("field paths read like code", () => {
    expect(formatPath([])).toBe("top level");
    expect(formatPath(["route", "routes", "user:", "children", 0, "pool"])).toBe(
      'route.routes["user:"].children[0].pool',
    );
    expect(formatPath(["pools", "my-pool", "servers", 3])).toBe('pools["my-pool"].servers[3]');
  });
});

describe("loadConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "gravity-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("loads the example config in deploy/", () => {
    const config = loadConfig(join(import.meta.dir, "../../deploy/router.example.yaml"));
    expect(config.listen).toEqual({ host: "127.0.0.1", port: 11211 });
    expect([...config.pools.keys()]).toEqual(["main", "replicas", "gutter"]);
    expect(config.route.type).toBe("prefix");
  });

  test("loads YAML and JSON files by extension", () => {
    const yamlFile = join(dir, "router.yml");
    const jsonFile = join(dir, "router.json");
    writeFileSync(yamlFile, "pools: {main: {servers: [a:1]}}\nroute: main\n");
    writeFileSync(jsonFile, '{"pools": {"main": {"servers": ["a:1"]}}, "route": "main"}');
    expect(loadConfig(jsonFile)).toEqual(loadConfig(yamlFile));
  });

  test("errors name the file as given", () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "pools: {main: {}}\nroute: nope\n");
    expect(configError(() => loadConfig(file)).message).toBe(
      `${file}: route: expected one of the pools "main", got "nope"`,
    );
  });

  test("a missing file, or one with another extension", () => {
    const missing = join(dir, "missing.yaml");
    expect(configError(() => loadConfig(missing)).message).toBe(
      `${missing}: file: expected a readable file (ENOENT)`,
    );
    const toml = join(dir, "router.toml");
    writeFileSync(toml, "");
    expect(configError(() => loadConfig(toml)).message).toBe(
      `${toml}: file name: expected a .yaml, .yml or .json extension`,
    );
  });
});

describe("etcd discovery", () => {
  test("a pool with discovery: etcd takes its servers from etcd and needs the etcd section", () => {
    const config = parseConfig(
      `etcd: { endpoints: ["127.0.0.1:2379"] }
pools:
  dyn: { discovery: etcd }
route: { type: replicated, pool: dyn }`,
      "router.yaml",
      ConfigFormat.Yaml,
    );
    expect(config.etcd).toEqual({ endpoints: ["127.0.0.1:2379"], prefix: "/gravity" });
    expect(config.pools.get("dyn")?.discovery).toBe("etcd");
    expect(config.pools.get("dyn")?.servers).toEqual([]);
    const missing = configError(() =>
      parseConfig(`pools: { dyn: { discovery: etcd } }\nroute: dyn`, "router.yaml", ConfigFormat.Yaml),
    );
    expect(missing.message).toBe(
      'router.yaml: etcd: expected an etcd section (endpoints, prefix) since pool "dyn" has discovery: etcd, but it is missing',
    );
    const both = configError(() =>
      parseConfig(
        `etcd: { endpoints: [a:1] }\npools: { dyn: { discovery: etcd, servers: [b:2] } }\nroute: dyn`,
        "router.yaml",
        ConfigFormat.Yaml,
      ),
    );
    expect(both.message).toContain("pools.dyn.servers: expected no servers with discovery: etcd");
  });
});

describe("gutter and warm-up routes", () => {
  test("parse with their defaults; pool names are checked", () => {
    const config = parseConfig(
      `pools: { main: { servers: [a:1] }, gut: { servers: [b:2] }, old: { servers: [c:3] } }
route:
  type: prefix
  routes:
    "g:": { type: gutter, pool: main, gutter: gut }
    "*": { type: warmup, cold: main, warm: old }`,
      "router.yaml",
      ConfigFormat.Yaml,
    );
    const route = config.route as PrefixRouteConfig;
    expect(route.routes.get("g:")).toEqual({ type: "gutter", pool: "main", gutter: "gut", ttlSeconds: 10 });
    expect(route.fallback).toEqual({
      type: "warmup",
      cold: { type: "sharded", pool: "main" },
      warm: { type: "sharded", pool: "old" },
      ttlSeconds: 3600,
    });
    const bad = configError(() =>
      parseConfig(
        `pools: { main: { servers: [a:1] } }\nroute: { type: gutter, pool: main, gutter: nope }`,
        "router.yaml",
        ConfigFormat.Yaml,
      ),
    );
    expect(bad.message).toStartWith('router.yaml: route.gutter: expected one of the pools "main"');
  });
});
