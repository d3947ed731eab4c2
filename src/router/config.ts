// The router's configuration file: pools of leaves and the route tree over them.
//
//   file (.yaml/.yml/.json) ──read──> text ──Bun.YAML.parse | JSON.parse──> plain data
//     ──zod schema (built knowing the pool names)──> RouterConfig, every default applied
//   any failure ──> one ConfigError: "<file>: <field path>: expected <what>[, got <value>]"
//
// Validation reports one problem: the first unknown field if there is one (a typo usually also
// makes a required field look missing, and the unknown name is the useful clue), else the first
// problem in schema order (listen, pools, route; fields in the order the types below list them).
import { readFileSync } from "node:fs";
import { z } from "zod";
import { ConfigError } from "../errors.ts";
import { HashFunctions, type HashName } from "../hash/hash-functions.ts";
import { ketamaServerName } from "../hash/ketama.ts";
import { MODULA_MAX_TOTAL_WEIGHT } from "../hash/modula.ts";

/** How a pool spreads keys over its servers (src/hash): ketama (consistent) or modula (hash mod weight). */
export const Distribution = { Ketama: "ketama", Modula: "modula" } as const;
export type Distribution = (typeof Distribution)[keyof typeof Distribution];

/** A leaf: `host:port`, a share of keys by `weight`, and the name hashed into ketama points. */
export interface ServerAddress {
  /** A hostname or IP address; an IPv6 address is written in brackets in a server string. */
  host: string;
  /** 1..65535. */
  port: number;
  /** A positive integer, default 1: a server's share of keys grows with it. */
  weight: number;
  /** The ketama name (twemproxy's name after the weight); default "host" for port 11211, else "host:port". */
  name?: string;
}

/** Health tracking per server (mcrouter's TKO): when to mark a server down and how to probe it. */
export interface TkoConfig {
  /** Consecutive failures or timeouts that mark a server down, 1..1000, default 3. */
  failures: number;
  /** Delay before the first probe (a `version` request) of a down server, ms, 1..60000, default 500; doubles per failed probe. */
  probeIntervalMs: number;
  /** The most the probe delay grows to, ms, probeIntervalMs..3600000, default 10000. */
  maxProbeIntervalMs: number;
}

/** A pool of leaves. Its fields match src/router/pool.ts's PoolSpec. */
export interface PoolConfig {
  /** Static membership, in file order; may be empty (then only a sharded route may use the pool, and it fails every request). */
  servers: readonly ServerAddress[];
  /** A twemproxy key hash (src/hash/hash-functions.ts), default md5. */
  hash: HashName;
  /** Default ketama. */
  distribution: Distribution;
  /** TCP connections per server, 1..64, default 2. */
  connections: number;
  /** Per request, ms, 1..60000, default 1000. */
  timeoutMs: number;
  /** Per connection attempt, ms, 1..60000, default 1000. */
  connectTimeoutMs: number;
  /** Requests written and awaiting a reply, per connection, 1..65536, default 1024. */
  maxInFlight: number;
  /** Requests waiting to be written, per connection, 0..1048576, default 4096; past it a request fails at once. */
  maxQueued: number;
  tko: TkoConfig;
}

/** The defaults of a pool's optional fields. */
export const POOL_DEFAULTS = {
  hash: "md5" as HashName,
  distribution: Distribution.Ketama,
  connections: 2,
  timeoutMs: 1000,
  connectTimeoutMs: 1000,
  maxInFlight: 1024,
  maxQueued: 4096,
  tko: { failures: 3, probeIntervalMs: 500, maxProbeIntervalMs: 10_000 },
} as const satisfies Omit<PoolConfig, "servers">;

/** The value of a route's `type`, selecting its handle. */
export const RouteType = {
  Sharded: "sharded",
  Replicated: "replicated",
  Failover: "failover",
  MissFailover: "miss-failover",
  Prefix: "prefix",
  Operation: "operation",
} as const;
export type RouteType = (typeof RouteType)[keyof typeof RouteType];

/** How a replicated route writes: wait for every replica, none, a majority, or the first only (the rest in the background). */
export const WriteMode = {
  AllSync: "all-sync",
  AllAsync: "all-async",
  AllMajority: "all-majority",
  AllInitial: "all-initial",
} as const;
export type WriteMode = (typeof WriteMode)[keyof typeof WriteMode];

/** How a replicated route reads: one replica, all at once (first reply wins), or one then a hedge after a delay. */
export const ReadMode = { One: "one", AllFastest: "all-fastest", Hedged: "hedged" } as const;
export type ReadMode = (typeof ReadMode)[keyof typeof ReadMode];

/** What a replicated route does when the replica it picked is down: fail, or try another replica. */
export const OnDown = { FailFast: "fail-fast", Failover: "failover" } as const;
export type OnDown = (typeof OnDown)[keyof typeof OnDown];

/** When and how often a hedged read sends a second request ("The Tail at Scale", Dean and Barroso). */
export interface HedgeConfig {
  /** Wait before hedging, ms 1..60000, or "adaptive" (the pool's latency percentile); default "adaptive". */
  delayMs: number | "adaptive";
  /** The most hedges per read, as a fraction 0..1 of reads, default 0.05. */
  budget: number;
  /** Adaptive only: the latency percentile to wait for, 1..100, default 95. */
  percentile: number;
  /** Adaptive only: bounds of the delay, ms 1..60000, defaults 1 and 1000 (min <= max). */
  minDelayMs: number;
  maxDelayMs: number;
}

/** The defaults of a hedge's optional fields. */
export const HEDGE_DEFAULTS = {
  delayMs: "adaptive",
  budget: 0.05,
  percentile: 95,
  minDelayMs: 1,
  maxDelayMs: 1000,
} as const satisfies HedgeConfig;

/** Consistent hashing over a pool (its hash and distribution). A bare pool name in the file means this. */
export interface ShardedRouteConfig {
  type: "sharded";
  /** The name of a pool under `pools`. */
  pool: string;
}

/** Every server of the pool holds every key. */
export interface ReplicatedRouteConfig {
  type: "replicated";
  /** The name of a pool under `pools` with at least one server. */
  pool: string;
  /** Default all-sync. */
  writes: WriteMode;
  /** Default one. */
  reads: ReadMode;
  /** Set exactly when reads is hedged (defaults applied if the file has no `hedge`). */
  hedge?: HedgeConfig;
  /** Default failover. */
  onDown: OnDown;
}

/** Tries the children in order: the next one on an error or a timeout. */
export interface FailoverRouteConfig {
  type: "failover";
  /** At least 2. */
  children: readonly RouteConfig[];
}

/** Tries the children in order: the next one on a miss. */
export interface MissFailoverRouteConfig {
  type: "miss-failover";
  /** At least 2. */
  children: readonly RouteConfig[];
}

/** The longest configured prefix of the key picks the route; the file's "*" entry (required) is `fallback`. */
export interface PrefixRouteConfig {
  type: "prefix";
  /** Literal key prefixes (no "*" in them), in file order; the "*" entry is not among them. */
  routes: ReadonlyMap<string, RouteConfig>;
  /** The route for keys no prefix matches: the file's "*" entry. */
  fallback: RouteConfig;
}

/** Reads, writes and deletes take separate routes. */
export interface OperationRouteConfig {
  type: "operation";
  reads: RouteConfig;
  writes: RouteConfig;
  /** Default: the same object as `writes`. */
  deletes: RouteConfig;
}

/** A node of the route tree, discriminated by `type`. */
export type RouteConfig =
  | ShardedRouteConfig
  | ReplicatedRouteConfig
  | FailoverRouteConfig
  | MissFailoverRouteConfig
  | PrefixRouteConfig
  | OperationRouteConfig;

/** Where the router accepts clients. Port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** A validated router configuration, every default applied. */
export interface RouterConfig {
  /** From `listen: "host:port"`; undefined when the file has none. The CLI's --listen/--port override it. */
  listen?: ListenAddress;
  /** At least one pool, by name ([A-Za-z0-9_.-]+), in file order. */
  pools: ReadonlyMap<string, PoolConfig>;
  route: RouteConfig;
}

/** The syntax of a configuration file, chosen by its extension. */
export const ConfigFormat = { Yaml: "yaml", Json: "json" } as const;
export type ConfigFormat = (typeof ConfigFormat)[keyof typeof ConfigFormat];

/** The format for a file name: .yaml and .yml are YAML, .json is JSON (any case); else undefined. */
export function configFormatOf(file: string): ConfigFormat | undefined {
  const extension = /\.([^./\\]+)$/.exec(file)?.[1]?.toLowerCase();
  if (extension === "yaml" || extension === "yml") return ConfigFormat.Yaml;
  if (extension === "json") return ConfigFormat.Json;
  return undefined;
}

/** Reads, parses and validates a configuration file. Throws ConfigError for every problem, I/O included. */
export function loadConfig(file: string): RouterConfig {
  const format = requireConfigFormat(file);
  return parseConfig(readConfigText(file), file, format);
}

/** The format of a configuration file by its extension; throws ConfigError for any other name. */
export function requireConfigFormat(file: string): ConfigFormat {
  const format = configFormatOf(file);
  if (format === undefined) throw new ConfigError(file, "file name", "a .yaml, .yml or .json extension");
  return format;
}

/** A configuration file's text (UTF-8); throws ConfigError naming the reason (ENOENT, EACCES...). */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(file, "file", `a readable file (${reason})`, { cause: error });
  }
}

/** Parses and validates configuration text; `file` names it in errors. Throws ConfigError. */
export function parseConfig(text: string, file: string, format: ConfigFormat): RouterConfig {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a byte order mark
  let data: unknown;
  try {
    data = format === ConfigFormat.Json ? JSON.parse(text) : Bun.YAML.parse(text);
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^\w+ Parse error: /, "") : String(error);
    const line = format === ConfigFormat.Json ? jsonErrorLine(text) : yamlErrorLine(text);
    const where = line === undefined ? "syntax" : `line ${line}`;
    const syntax = format === ConfigFormat.Json ? "JSON" : "YAML";
    throw new ConfigError(file, where, `valid ${syntax} (${reason})`, { cause: error });
  }
  if (data === null || data === undefined) {
    throw new ConfigError(file, TOP_LEVEL, `${TOP_LEVEL_EXPECTED}, got an empty document`);
  }
  // zod's records drop a "__proto__" key without a word (it cannot be assigned as a plain key).
  const proto = protoKeyPath(data, []);
  if (proto !== undefined) throw new ConfigError(file, formatPath(proto), "a name other than __proto__");
  const result = configSchema(poolFacts(data)).safeParse(data, { error: defaultExpectation });
  if (result.success) return result.data;
  const problem = firstProblem(result.error.issues, data);
  throw new ConfigError(file, problem.field, problem.expected, { cause: result.error });
}

// ── The schema ─────────────────────────────────────────────────────────────────────────────────

const TOP_LEVEL = "top level";
const TOP_LEVEL_EXPECTED = 'an object with "pools" and "route"';
const POOL_NAME = /^[A-Za-z0-9_.-]+$/;
const HOST = /^[A-Za-z0-9_.-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/;
// "host:port", "host:port:weight" or twemproxy's "host:port:weight name"; IPv6 hosts in brackets.
const SERVER = /^(?:\[([^\]]*)\]|([^:\s[\]]+)):(\d+)(?::(\d+))?(?:\s+(\S+))?$/;
const MAX_WEIGHT = 1_000_000;

/** What the schema needs to know about the pools before validating routes that name them. */
interface PoolFacts {
  names: readonly string[];
  serverCounts: ReadonlyMap<string, number>;
}

function poolFacts(data: unknown): PoolFacts {
  const pools = isPlainObject(data) ? data.pools : undefined;
  if (!isPlainObject(pools)) return { names: [], serverCounts: new Map() };
  const serverCounts = new Map<string, number>();
  for (const [name, pool] of Object.entries(pools)) {
    const servers = isPlainObject(pool) ? pool.servers : undefined;
    serverCounts.set(name, Array.isArray(servers) ? servers.length : 0);
  }
  return { names: [...serverCounts.keys()], serverCounts };
}

function integer(min: number, max: number) {
  const expected = `an integer from ${min} to ${max}`;
  return z
    .number({ error: expected })
    .int({ error: expected })
    .min(min, { error: expected })
    .max(max, { error: expected });
}

function fraction() {
  const expected = "a fraction from 0 to 1";
  return z.number({ error: expected }).min(0, { error: expected }).max(1, { error: expected });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T, what = "one of") {
  return z.enum(values, { error: `${what} ${values.join(", ")}` });
}

/** An object that rejects unknown fields, naming the fields it knows. */
function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const known = `one of the fields ${Object.keys(shape).join(", ")}`;
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? known : issue.code === "invalid_type" ? "an object" : undefined,
  });
}

function parseServer(text: string, ctx: z.core.$RefinementCtx<string>): ServerAddress {
  const match = SERVER.exec(text.trim());
  const host = match?.[1] ?? match?.[2] ?? "";
  const bracketed = match?.[1] !== undefined;
  const port = Number(match?.[3]);
  const weight = match?.[4] === undefined ? 1 : Number(match[4]);
  let expected: string | undefined;
  if (match === null || !(bracketed ? IPV6 : HOST).test(host)) {
    expected = '"host:port", "host:port:weight" or "host:port:weight name" (IPv6 hosts in brackets)';
  } else if (!(port >= 1 && port <= 65535)) {
    expected = "a port from 1 to 65535";
  } else if (!(weight >= 1 && weight <= MAX_WEIGHT)) {
    expected = `a weight from 1 to ${MAX_WEIGHT}`;
  }
  if (expected !== undefined) {
    ctx.issues.push({ code: "custom", message: expected, input: text });
    return z.NEVER;
  }
  const server: ServerAddress = { host, port, weight };
  if (match?.[5] !== undefined) server.name = match[5];
  return server;
}

const serverObject = strict({
  host: z
    .string({ error: "a hostname or IP address" })
    .regex(/^[^\s[\]]+$/, { error: "a hostname or IP address" }),
  port: integer(1, 65535),
  weight: integer(1, MAX_WEIGHT).default(1),
  name: z.string({ error: "a non-empty name" }).min(1, { error: "a non-empty name" }).optional(),
});

const server = z.union([z.string().transform(parseServer), serverObject], {
  error: '"host:port[:weight]" or an object {host, port, weight, name}',
});

const servers = z.array(server, { error: "a list of servers" }).superRefine((list, ctx) => {
  const seenAddress = new Map<string, number>();
  const seenName = new Map<string, number>();
  list.forEach((entry, index) => {
    const address = `${entry.host}:${entry.port}`;
    const name = ketamaServerName(entry.host, entry.port, entry.name);
    const sameAddress = seenAddress.get(address);
    const sameName = seenName.get(name);
    if (sameAddress !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [index],
        message: `a server not already listed (${address} is servers[${sameAddress}])`,
      });
    } else if (sameName !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: [index],
        message: `a unique ketama name ("${name}" is servers[${sameName}]'s)`,
      });
    }
    seenAddress.set(address, seenAddress.get(address) ?? index);
    seenName.set(name, seenName.get(name) ?? index);
  });
});

const hashNames = Object.keys(HashFunctions) as [HashName, ...HashName[]];
const tko = strict({
  failures: integer(1, 1000).default(POOL_DEFAULTS.tko.failures),
  probeIntervalMs: integer(1, 60_000).default(POOL_DEFAULTS.tko.probeIntervalMs),
  maxProbeIntervalMs: integer(1, 3_600_000).default(POOL_DEFAULTS.tko.maxProbeIntervalMs),
}).superRefine((value, ctx) => {
  if (value.maxProbeIntervalMs < value.probeIntervalMs) {
    ctx.addIssue({
      code: "custom",
      path: ["maxProbeIntervalMs"],
      message: `at least probeIntervalMs (${value.probeIntervalMs})`,
    });
  }
});

const pool = strict({
  servers: servers.default(() => []),
  hash: oneOf(hashNames, "one of the hashes").default(POOL_DEFAULTS.hash),
  distribution: oneOf(["ketama", "modula"]).default(POOL_DEFAULTS.distribution),
  connections: integer(1, 64).default(POOL_DEFAULTS.connections),
  timeoutMs: integer(1, 60_000).default(POOL_DEFAULTS.timeoutMs),
  connectTimeoutMs: integer(1, 60_000).default(POOL_DEFAULTS.connectTimeoutMs),
  maxInFlight: integer(1, 65_536).default(POOL_DEFAULTS.maxInFlight),
  maxQueued: integer(0, 1_048_576).default(POOL_DEFAULTS.maxQueued),
  tko: tko.default(() => ({ ...POOL_DEFAULTS.tko })),
}).superRefine((value, ctx) => {
  const totalWeight = value.servers.reduce((sum, entry) => sum + entry.weight, 0);
  if (value.distribution === Distribution.Modula && totalWeight > MODULA_MAX_TOTAL_WEIGHT) {
    ctx.addIssue({
      code: "custom",
      path: ["servers"],
      message: `weights that sum to at most ${MODULA_MAX_TOTAL_WEIGHT} with distribution modula (they sum to ${totalWeight})`,
    });
  }
});

const pools = z
  .record(z.string().regex(POOL_NAME, { error: 'a pool name of letters, digits, "_", "." and "-"' }), pool, {
    error: "an object of pools by name",
  })
  .refine((record) => Object.keys(record).length > 0, { error: "at least one pool" })
  .transform((record): ReadonlyMap<string, PoolConfig> => new Map(Object.entries(record)));

const listen = z.string({ error: '"host:port"' }).transform((text, ctx): ListenAddress => {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_.-]+)):(\d+)$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (match === null || !(port <= 65535)) {
    ctx.issues.push({ code: "custom", message: '"host:port" with a port from 0 to 65535', input: text });
    return z.NEVER;
  }
  return { host: match[1] ?? match[2] ?? "", port };
});

// A key prefix: what a memcached key may start with (no spaces or control characters, at most 250
// bytes). "*" alone is the default route; a "*" elsewhere is a glob this router does not do.
const prefixKey = z.string().superRefine((key, ctx) => {
  let expected: string | undefined;
  if (key === "") expected = 'a non-empty key prefix or "*"';
  else if (key !== "*" && key.includes("*"))
    expected = 'a literal key prefix ("*" alone is the default route; prefixes are not globs)';
  else if ([...key].some((char) => char <= " " || char === "\u007f"))
    expected = "a key prefix without spaces or control characters";
  else if (Buffer.byteLength(key) > 250) expected = "a key prefix of at most 250 bytes";
  if (expected !== undefined) ctx.addIssue({ code: "custom", message: expected });
});

function configSchema(facts: PoolFacts) {
  const poolsExpected =
    facts.names.length === 0
      ? "the name of a pool (there are none)"
      : `one of the pools ${facts.names.map((name) => JSON.stringify(name)).join(", ")}`;
  const poolRef = z.string({ error: poolsExpected }).refine((name) => facts.names.includes(name), {
    error: poolsExpected,
  });

  const route: z.ZodType<RouteConfig> = z.lazy(() =>
    z.union([shorthand, routeObject], { error: 'a pool name or a route object with a "type"' }),
  );
  const children = z
    .array(route, { error: "a list of at least 2 routes" })
    .min(2, { error: "a list of at least 2 routes" });

  const shorthand = poolRef.transform(
    (name): ShardedRouteConfig => ({ type: RouteType.Sharded, pool: name }),
  );

  const sharded = strict({ type: z.literal(RouteType.Sharded), pool: poolRef });

  const hedge = strict({
    delayMs: z
      .union([integer(1, 60_000), z.literal("adaptive")], {
        error: 'a delay in ms from 1 to 60000 or "adaptive"',
      })
      .optional(),
    budget: fraction().optional(),
    percentile: z
      .number({ error: "a percentile from 1 to 100" })
      .min(1, { error: "a percentile from 1 to 100" })
      .max(100, { error: "a percentile from 1 to 100" })
      .optional(),
    minDelayMs: integer(1, 60_000).optional(),
    maxDelayMs: integer(1, 60_000).optional(),
  })
    .superRefine((value, ctx) => {
      if (value.delayMs !== undefined && value.delayMs !== "adaptive") {
        for (const field of ["percentile", "minDelayMs", "maxDelayMs"] as const) {
          if (value[field] !== undefined) {
            ctx.addIssue({
              code: "custom",
              path: [field],
              message: `only with delayMs: "adaptive" (delayMs is ${value.delayMs})`,
            });
          }
        }
      }
      const min = value.minDelayMs ?? HEDGE_DEFAULTS.minDelayMs;
      const max = value.maxDelayMs ?? HEDGE_DEFAULTS.maxDelayMs;
      if (min > max) {
        ctx.addIssue({
          code: "custom",
          path: [value.maxDelayMs === undefined ? "minDelayMs" : "maxDelayMs"],
          message: `minDelayMs <= maxDelayMs (they are ${min} and ${max})`,
        });
      }
    })
    .transform((value): HedgeConfig => ({ ...HEDGE_DEFAULTS, ...value }));

  const replicated = strict({
    type: z.literal(RouteType.Replicated),
    pool: poolRef,
    writes: oneOf(["all-sync", "all-async", "all-majority", "all-initial"]).default(WriteMode.AllSync),
    reads: oneOf(["one", "all-fastest", "hedged"]).default(ReadMode.One),
    hedge: hedge.optional(),
    onDown: oneOf(["fail-fast", "failover"]).default(OnDown.Failover),
  })
    .superRefine((value, ctx) => {
      if ((facts.serverCounts.get(value.pool) ?? 0) === 0) {
        ctx.addIssue({
          code: "custom",
          path: ["pool"],
          message: "a pool with servers (a replicated route needs at least one)",
        });
      }
      if (value.hedge !== undefined && value.reads !== ReadMode.Hedged) {
        ctx.addIssue({
          code: "custom",
          path: ["hedge"],
          message: `reads: hedged for hedge settings (reads is ${value.reads})`,
        });
      }
    })
    .transform((value): ReplicatedRouteConfig => {
      const { hedge: given, ...rest } = value;
      if (value.reads !== ReadMode.Hedged) return rest;
      return { ...rest, hedge: given ?? { ...HEDGE_DEFAULTS } };
    });

  const failover = strict({ type: z.literal(RouteType.Failover), children });
  const missFailover = strict({ type: z.literal(RouteType.MissFailover), children });

  const prefix = strict({
    type: z.literal(RouteType.Prefix),
    routes: z
      .record(prefixKey, route, { error: "an object of routes by key prefix" })
      .superRefine((record, ctx) => {
        if (!Object.hasOwn(record, "*")) {
          ctx.addIssue({ code: "custom", message: 'a "*" entry (the route for keys no prefix matches)' });
        }
      }),
  }).transform((value): PrefixRouteConfig => {
    const routes = new Map(Object.entries(value.routes));
    const fallback = routes.get("*") as RouteConfig;
    routes.delete("*");
    return { type: RouteType.Prefix, routes, fallback };
  });

  const operation = strict({
    type: z.literal(RouteType.Operation),
    reads: route,
    writes: route,
    deletes: route.optional(),
  }).transform(
    (value): OperationRouteConfig => ({
      type: RouteType.Operation,
      reads: value.reads,
      writes: value.writes,
      deletes: value.deletes ?? value.writes,
    }),
  );

  const routeObject = z.discriminatedUnion(
    "type",
    [sharded, replicated, failover, missFailover, prefix, operation],
    {
      error: `one of the route types ${Object.values(RouteType).join(", ")}`,
    },
  );

  return z
    .strictObject(
      { listen: listen.optional(), pools, route },
      {
        error: (issue) =>
          issue.code === "unrecognized_keys"
            ? "one of the fields listen, pools, route"
            : issue.code === "invalid_type"
              ? TOP_LEVEL_EXPECTED
              : undefined,
      },
    )
    .transform((value): RouterConfig => {
      const config: RouterConfig = { pools: value.pools, route: value.route };
      if (value.listen !== undefined) config.listen = value.listen;
      return config;
    });
}

// ── From zod issues to one ConfigError ─────────────────────────────────────────────────────────

type Issue = z.core.$ZodIssue;
type PathKey = PropertyKey;

/** The expectation for issues whose schema gave no message of its own (zod's defaults are not for humans). */
function defaultExpectation(issue: z.core.$ZodRawIssue): string {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected === "array" ? "a list" : `a ${issue.expected}`;
    case "invalid_value":
      return `one of ${issue.values.map((value) => JSON.stringify(value)).join(", ")}`;
    default:
      return "a valid value";
  }
}

interface Problem {
  path: readonly PathKey[];
  expected: string;
  /** Whether to show the value found even when it is a list or an object (type errors). */
  showValue: boolean;
  /** A field the schema does not know (a typo, most often). */
  unknown?: true;
  /** The last path element, a record key, is what is wrong (its value is beside the point). */
  key?: true;
}

/** Flattens unions (to the branch the value was meant for), record keys and unknown fields. */
function problems(issues: readonly Issue[], base: readonly PathKey[], out: Problem[]): void {
  for (const issue of issues) {
    const path = [...base, ...issue.path];
    if (issue.code === "invalid_union" && issue.errors.length > 0) {
      // The branch that got past the type check is the one the value was written for.
      const branch = issue.errors.find((branchIssues) => branchIssues.some((inner) => !isMismatch(inner)));
      if (branch !== undefined) problems(branch, path, out);
      else out.push({ path, expected: issue.message, showValue: true });
    } else if (issue.code === "invalid_key") {
      for (const inner of issue.issues)
        out.push({ path, expected: inner.message, showValue: false, key: true });
    } else if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        out.push({ path: [...path, key], expected: issue.message, showValue: false, unknown: true });
      }
    } else {
      out.push({ path, expected: issue.message, showValue: issue.code === "invalid_type" });
    }
  }
}

function isMismatch(issue: Issue): boolean {
  return issue.path.length === 0 && (issue.code === "invalid_type" || issue.code === "invalid_value");
}

function firstProblem(issues: readonly Issue[], data: unknown): { field: string; expected: string } {
  const all: Problem[] = [];
  problems(issues, [], all);
  const problem = all.find((candidate) => candidate.unknown) ?? all[0];
  if (problem === undefined) return { field: TOP_LEVEL, expected: "a valid configuration" };
  const value = valueAt(data, problem.path);
  let expected = problem.expected;
  if (problem.unknown || problem.key) {
    // The name is what is wrong, and the path shows it.
  } else if (value.missing) expected += ", but it is missing";
  else if (problem.showValue || isScalar(value.value)) expected += `, got ${describe(value.value)}`;
  return { field: formatPath(problem.path), expected };
}

function valueAt(data: unknown, path: readonly PathKey[]): { missing: boolean; value?: unknown } {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, key)) return { missing: true };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return { missing: false, value };
}

function isScalar(value: unknown): boolean {
  return value === null || (typeof value !== "object" && typeof value !== "function");
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (value !== null && typeof value === "object") return "an object";
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** A field path as a reader would write it in code: route.routes["user:"].children[1].pool. */
export function formatPath(path: readonly PathKey[]): string {
  if (path.length === 0) return TOP_LEVEL;
  let text = "";
  for (const key of path) {
    if (typeof key === "number") text += `[${key}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(key)))
      text += text === "" ? String(key) : `.${String(key)}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

/** The path of the first "__proto__" key in parsed data, if any. */
function protoKeyPath(data: unknown, path: PathKey[]): PathKey[] | undefined {
  if (data === null || typeof data !== "object") return undefined;
  for (const [key, value] of Object.entries(data)) {
    const at = [...path, Array.isArray(data) ? Number(key) : key];
    if (key === "__proto__") return at;
    const found = protoKeyPath(value, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

// ── Syntax error lines ─────────────────────────────────────────────────────────────────────────
// Neither Bun.YAML.parse nor JSON.parse says where a syntax error is, so the line is found here.

/**
 * YAML: the line after the longest prefix of whole lines that parses. Lines before it are valid
 * YAML; the error is on that line or in a construct (a flow list, a quoted string) opened there.
 */
function yamlErrorLine(text: string): number | undefined {
  const lines = text.split("\n");
  for (let count = lines.length - 1; count >= 0; count--) {
    try {
      Bun.YAML.parse(lines.slice(0, count).join("\n"));
      return count + 1;
    } catch {
      // Still failing: the error is at or before this prefix's last line.
    }
  }
  return undefined;
}

/** JSON: the line of the first character where the text stops being JSON (RFC 8259 grammar). */
function jsonErrorLine(text: string): number | undefined {
  let at = 0;
  const fail = (): never => {
    throw at;
  };
  const space = () => {
    while (at < text.length && " \t\n\r".includes(text[at] as string)) at++;
  };
  const token = (pattern: RegExp) => {
    pattern.lastIndex = at;
    if (!pattern.test(text)) fail();
    at = pattern.lastIndex;
  };
  // biome-ignore lint/suspicious/noControlCharactersInRegex: RFC 8259 strings exclude U+0000..U+001F
  const string = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*"/y;
  const scalar = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  const value = (): void => {
    space();
    const open = text[at];
    if (open !== "{" && open !== "[") {
      token(open === '"' ? string : scalar);
      return;
    }
    const close = open === "{" ? "}" : "]";
    at++;
    space();
    if (text[at] === close) {
      at++;
      return;
    }
    for (;;) {
      if (open === "{") {
        space();
        token(string);
        space();
        if (text[at] !== ":") fail();
        at++;
      }
      value();
      space();
      if (text[at] === ",") at++;
      else if (text[at] === close) {
        at++;
        return;
      } else fail();
    }
  };
  try {
    value();
    space();
    if (at < text.length) fail();
    return undefined; // JSON.parse and this grammar disagree: say nothing rather than guess
  } catch (offset) {
    if (typeof offset !== "number") return undefined; // nested too deep for this scanner
    return text.slice(0, offset).split("\n").length;
  }
}
