// The zod schema of a router configuration file: what each field accepts, its defaults, and the
// expectation each field names when it is wrong (config-errors.ts turns zod's issues into one
// ConfigError). Routes name pools, so the schema is built knowing the file's pool names.
import { z } from "zod";
import { type EtcdAccessField, loadEtcdAccess } from "../discovery/etcd-access.ts";
import { HashFunctions, type HashName } from "../hash/hash-functions.ts";
import { ketamaServerName } from "../hash/ketama.ts";
import { MODULA_MAX_TOTAL_WEIGHT } from "../hash/modula.ts";
import { MAX_RELATIVE_EXPTIME_SECONDS } from "../protocol/encoder.ts";
import { CredentialError, readClientTlsFiles } from "../security/secret-files.ts";
import type { ClientTls } from "../security/tls.ts";
import { loadNatsCredentials, type NatsCredentialField } from "../transport/nats-credentials.ts";
import {
  Distribution,
  type EtcdConfig,
  HEDGE_DEFAULTS,
  type HedgeSpec,
  type ListenAddress,
  type LoaderConfig,
  type NatsConfig,
  OnDown,
  type OperationRouteConfig,
  POOL_DEFAULTS,
  type PoolConfig,
  type PrefixRouteConfig,
  REPAIR_DEFAULTS,
  ReadPolicy,
  type ReplicatedRouteConfig,
  type RouteConfig,
  type RouterConfig,
  RouteType,
  type ServerAddress,
  type ShardedRouteConfig,
  WritePolicy,
} from "./config-types.ts";

/** What the top level of a file must be. */
export const TOP_LEVEL_EXPECTED = 'an object with "pools" and "route"';
const POOL_NAME = /^[A-Za-z0-9_.-]+$/;
const HOST = /^[A-Za-z0-9_.-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$/;
// "host:port", "host:port:weight" or twemproxy's "host:port:weight name"; IPv6 hosts in brackets.
const SERVER = /^(?:\[([^\]]*)\]|([^:\s[\]]+)):(\d+)(?::(\d+))?(?:\s+(\S+))?$/;
const MAX_WEIGHT = 1_000_000;

/** What the schema needs to know about the pools before validating routes that name them. */
export interface PoolFacts {
  names: readonly string[];
  serverCounts: ReadonlyMap<string, number>;
  /** Pools whose servers come from etcd (they may be empty at start). */
  discovered: ReadonlySet<string>;
  /** The names under `loaders`. */
  loaderNames: readonly string[];
}

/** The pool names and server counts of unvalidated data, as far as they can be read. */
export function poolFacts(data: unknown): PoolFacts {
  const pools = isPlainObject(data) ? data.pools : undefined;
  const loaderNames = isPlainObject(data) && isPlainObject(data.loaders) ? Object.keys(data.loaders) : [];
  if (!isPlainObject(pools))
    return { names: [], serverCounts: new Map(), discovered: new Set(), loaderNames };
  const serverCounts = new Map<string, number>();
  const discovered = new Set<string>();
  for (const [name, pool] of Object.entries(pools)) {
    const servers = isPlainObject(pool) ? pool.servers : undefined;
    serverCounts.set(name, Array.isArray(servers) ? servers.length : 0);
    if (isPlainObject(pool) && pool.discovery === "etcd") discovered.add(name);
  }
  return { names: [...serverCounts.keys()], serverCounts, discovered, loaderNames };
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

// What the TLS client files hold, in the pool's tls section and the etcd and nats sections alike.
const CLIENT_TLS_EXPECTED = {
  ca: "a PEM CA bundle file",
  cert: "a PEM client certificate file",
  key: "a PEM private key file",
} as const;

const PASSWORD_FILE_EXPECTED = "a file whose first line is the password";

// What each field of a pool's tls section holds.
const POOL_TLS_EXPECTED: Record<keyof ClientTls, string> = {
  ...CLIENT_TLS_EXPECTED,
  serverName: "the name the leaves' certificates carry",
};

const pemPath = (field: "ca" | "cert" | "key") =>
  z
    .string({ error: POOL_TLS_EXPECTED[field] })
    .min(1, { error: `${POOL_TLS_EXPECTED[field]} (an empty path)` });

// TLS to a pool's leaves; the leaf's certificate must chain to `ca` and name the host or serverName.
// The files are read as the config is loaded (readClientTlsFiles, as for etcd and NATS): a bad path
// fails the load, or the reload, which keeps the old config, instead of every handshake later.
const poolTls = strict({
  ca: pemPath("ca"),
  cert: pemPath("cert").optional(),
  key: pemPath("key").optional(),
  serverName: z
    .string({ error: POOL_TLS_EXPECTED.serverName })
    .regex(/^[A-Za-z0-9_.:-]+$/, { error: POOL_TLS_EXPECTED.serverName })
    .optional(),
}).transform(
  (value, ctx): ClientTls =>
    withCredentialIssues(ctx, value, POOL_TLS_EXPECTED, () => {
      const pem = readClientTlsFiles(value);
      const tls: ClientTls = { ...pem, ca: pem.ca as string }; // a non-empty path, so read
      if (value.serverName !== undefined) tls.serverName = value.serverName;
      return tls;
    }),
);

const pool = strict({
  servers: servers.default(() => []),
  discovery: oneOf(["static", "etcd"]).default(POOL_DEFAULTS.discovery),
  transport: oneOf(["tcp", "nats"]).default(POOL_DEFAULTS.transport),
  hash: oneOf(hashNames, "one of the hashes").default(POOL_DEFAULTS.hash),
  distribution: oneOf(["ketama", "modula"]).default(POOL_DEFAULTS.distribution),
  connections: integer(1, 64).default(POOL_DEFAULTS.connections),
  maxConnections: integer(1, 256).optional(),
  timeoutMs: integer(1, 60_000).default(POOL_DEFAULTS.timeoutMs),
  connectTimeoutMs: integer(1, 60_000).default(POOL_DEFAULTS.connectTimeoutMs),
  maxInFlight: integer(1, 65_536).default(POOL_DEFAULTS.maxInFlight),
  maxQueued: integer(0, 1_048_576).default(POOL_DEFAULTS.maxQueued),
  tko: tko.default(() => ({ ...POOL_DEFAULTS.tko })),
  tls: poolTls.optional(),
})
  .superRefine((value, ctx) => {
    if (value.maxConnections !== undefined && value.maxConnections < value.connections) {
      ctx.addIssue({
        code: "custom",
        path: ["maxConnections"],
        message: `at least connections (${value.connections})`,
      });
    }
    if (value.discovery === "etcd" && value.servers.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["servers"],
        message: "no servers with discovery: etcd (the pool's members come from etcd)",
      });
    }
    if (value.transport === "nats" && value.tls !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["tls"],
        message: "no tls with transport: nats (TLS to NATS is set in the top-level nats section)",
      });
    }
    const totalWeight = value.servers.reduce((sum, entry) => sum + entry.weight, 0);
    if (value.distribution === Distribution.Modula && totalWeight > MODULA_MAX_TOTAL_WEIGHT) {
      ctx.addIssue({
        code: "custom",
        path: ["servers"],
        message: `weights that sum to at most ${MODULA_MAX_TOTAL_WEIGHT} with distribution modula (they sum to ${totalWeight})`,
      });
    }
  })
  .transform((value) => ({
    ...value,
    maxConnections: value.maxConnections ?? Math.max(value.connections, POOL_DEFAULTS.maxConnections),
  }));

const pools = z
  .record(z.string().regex(POOL_NAME, { error: 'a pool name of letters, digits, "_", "." and "-"' }), pool, {
    error: "an object of pools by name",
  })
  .refine((record) => Object.keys(record).length > 0, { error: "at least one pool" })
  .transform((record): ReadonlyMap<string, PoolConfig> => new Map(Object.entries(record)));

// What each credential field of the etcd section holds (paths are relative to the working directory).
const ETCD_ACCESS_EXPECTED: Record<EtcdAccessField, string> = {
  endpoints: "etcd endpoints, all https:// or all http://",
  ...CLIENT_TLS_EXPECTED,
  username: "an etcd user name",
  passwordFile: PASSWORD_FILE_EXPECTED,
};

// What each credential field of the nats section holds (paths are relative to the working directory).
const NATS_CREDENTIAL_EXPECTED: Record<NatsCredentialField, string> = {
  servers: "NATS servers",
  ...CLIENT_TLS_EXPECTED,
  user: "a NATS user",
  passwordFile: PASSWORD_FILE_EXPECTED,
  tokenFile: "a file whose first line is the token",
  nkeyFile: "a file holding an NKey user seed",
  credsFile: "a NATS .creds file",
};

/**
 * Runs `load` (which reads the credential files a section names): its CredentialError becomes an
 * issue on the field at fault, worded as what that field holds (`expected`), then the error's
 * reason; the input shown is the field's value (a path or a user name, never a file's contents).
 * A field given without its pair (cert without key) is an issue on the missing one.
 */
function withCredentialIssues<Field extends string, T>(
  ctx: z.RefinementCtx,
  value: Partial<Record<Field, unknown>>,
  expected: Record<Field, string>,
  load: () => T,
): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof CredentialError)) throw error;
    const field = error.field as Field;
    const missing = error.missing as Field | undefined;
    ctx.issues.push(
      missing === undefined
        ? {
            code: "custom",
            path: [field],
            message: `${expected[field]} (${error.message})`,
            input: value[field],
          }
        : {
            code: "custom",
            path: [missing],
            message: `${expected[missing]} too (with ${field})`,
            input: undefined,
          },
    );
    return z.NEVER;
  }
}

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

/** The schema of a whole file whose pools are `facts`; its output is a RouterConfig. */
export function configSchema(facts: PoolFacts) {
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
    .transform((value): HedgeSpec => ({ ...HEDGE_DEFAULTS, ...value }));

  const repair = strict({
    budget: fraction().default(REPAIR_DEFAULTS.budget),
    recoveryMs: integer(0, 86_400_000).default(REPAIR_DEFAULTS.recoveryMs),
  });

  const replicated = strict({
    type: z.literal(RouteType.Replicated),
    pool: poolRef,
    writes: oneOf(["all-sync", "all-async", "all-majority", "all-initial"]).default(WritePolicy.AllSync),
    writeQuorum: integer(1, 1000).optional(),
    reads: oneOf(["one", "all-fastest", "hedged"]).default(ReadPolicy.One),
    hedge: hedge.optional(),
    onDown: oneOf(["fail-fast", "failover"]).default(OnDown.Failover),
    repair: repair.default({ ...REPAIR_DEFAULTS }),
  })
    .superRefine((value, ctx) => {
      const servers = facts.serverCounts.get(value.pool) ?? 0;
      if (servers === 0 && !facts.discovered.has(value.pool)) {
        ctx.addIssue({
          code: "custom",
          path: ["pool"],
          message: "a pool with servers (a replicated route needs at least one)",
        });
      }
      if (value.writeQuorum !== undefined && value.writes !== WritePolicy.AllSync) {
        ctx.addIssue({
          code: "custom",
          path: ["writeQuorum"],
          message: `writes: all-sync for writeQuorum (writes is ${value.writes})`,
        });
      } else if (value.writeQuorum !== undefined && servers > 0 && value.writeQuorum > servers) {
        ctx.addIssue({
          code: "custom",
          path: ["writeQuorum"],
          message: `at most the pool's ${servers} servers (writeQuorum is ${value.writeQuorum})`,
        });
      }
      if (value.hedge !== undefined && value.reads !== ReadPolicy.Hedged) {
        ctx.addIssue({
          code: "custom",
          path: ["hedge"],
          message: `reads: hedged for hedge settings (reads is ${value.reads})`,
        });
      }
    })
    .transform((value): ReplicatedRouteConfig => {
      const { hedge: given, ...rest } = value;
      if (value.reads !== ReadPolicy.Hedged) return rest;
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

  const loaderNames = facts.loaderNames;
  const loadersExpected =
    loaderNames.length === 0
      ? "the name of a loader (there are none under loaders)"
      : `one of the loaders ${loaderNames.map((name) => JSON.stringify(name)).join(", ")}`;
  const loaderRoute = strict({
    type: z.literal(RouteType.Loader),
    loader: z.string({ error: loadersExpected }).refine((name) => loaderNames.includes(name), {
      error: loadersExpected,
    }),
    route,
    ttlSeconds: integer(0, MAX_RELATIVE_EXPTIME_SECONDS).default(300),
    negativeTtlSeconds: integer(0, MAX_RELATIVE_EXPTIME_SECONDS).default(30),
    timeoutMs: integer(1, 600_000).default(1000),
    waitMs: integer(1, 600_000).default(2000),
    leases: z.boolean({ error: "true or false" }).default(false),
  });

  const gutter = strict({
    type: z.literal(RouteType.Gutter),
    pool: poolRef,
    gutter: poolRef,
    ttlSeconds: integer(1, MAX_RELATIVE_EXPTIME_SECONDS).default(10),
  });
  const warmup = strict({
    type: z.literal(RouteType.WarmUp),
    cold: route,
    warm: route,
    ttlSeconds: integer(1, MAX_RELATIVE_EXPTIME_SECONDS).default(3600),
  });

  const routeObject = z.discriminatedUnion(
    "type",
    [sharded, replicated, failover, missFailover, prefix, operation, gutter, warmup, loaderRoute],
    {
      error: `one of the route types ${Object.values(RouteType).join(", ")}`,
    },
  );

  const nonEmpty = (what: string) => z.string({ error: what }).min(1, { error: what });
  // The TLS client files of the etcd and nats sections: paths, read by the section's loader.
  const clientTlsPaths = {
    ca: nonEmpty(CLIENT_TLS_EXPECTED.ca).optional(),
    cert: nonEmpty(CLIENT_TLS_EXPECTED.cert).optional(),
    key: nonEmpty(CLIENT_TLS_EXPECTED.key).optional(),
  };
  const etcd = strict({
    endpoints: z
      .array(z.string({ error: "an etcd URL or host:port" }).min(1, { error: "an etcd URL or host:port" }), {
        error: "a list of etcd endpoints",
      })
      .min(1, { error: "at least one etcd endpoint" }),
    prefix: z
      .string({ error: 'a key prefix such as "/gravity"' })
      .min(1, { error: 'a key prefix such as "/gravity"' })
      .default("/gravity"),
    ...clientTlsPaths,
    username: nonEmpty(ETCD_ACCESS_EXPECTED.username).optional(),
    passwordFile: nonEmpty(ETCD_ACCESS_EXPECTED.passwordFile).optional(),
  }).transform(
    (value, ctx): EtcdConfig =>
      withCredentialIssues(ctx, value, ETCD_ACCESS_EXPECTED, () => ({
        ...loadEtcdAccess(value),
        prefix: value.prefix,
      })),
  );

  const nats = strict({
    servers: z.array(nonEmpty("a NATS URL or host:port"), { error: "a list of NATS servers" }).min(1, {
      error: "at least one NATS server",
    }),
    prefix: nonEmpty('a subject prefix such as "gravity"').default("gravity"),
    ingress: z.boolean({ error: "true or false" }).default(false),
    invalidation: strict({
      subject: nonEmpty('a subject such as "gravity.invalidate"'),
      clusterId: nonEmpty("this cluster's id"),
    }).optional(),
    ...clientTlsPaths,
    user: nonEmpty(NATS_CREDENTIAL_EXPECTED.user).optional(),
    passwordFile: nonEmpty(NATS_CREDENTIAL_EXPECTED.passwordFile).optional(),
    tokenFile: nonEmpty(NATS_CREDENTIAL_EXPECTED.tokenFile).optional(),
    nkeyFile: nonEmpty(NATS_CREDENTIAL_EXPECTED.nkeyFile).optional(),
    credsFile: nonEmpty(NATS_CREDENTIAL_EXPECTED.credsFile).optional(),
  }).transform((value, ctx): NatsConfig => {
    const { servers, prefix, ingress, invalidation } = value;
    return withCredentialIssues(ctx, value, NATS_CREDENTIAL_EXPECTED, () => ({
      servers,
      prefix,
      ingress,
      ...(invalidation === undefined ? {} : { invalidation }),
      credentials: loadNatsCredentials(value),
    }));
  });

  const loader = z.discriminatedUnion(
    "type",
    [
      strict({
        type: z.literal("http"),
        url: nonEmpty('a URL template with {key}, such as "http://origin/items/{key}"').refine(
          (url) => url.includes("{key}"),
          { error: 'a URL template with {key}, such as "http://origin/items/{key}"' },
        ),
        headers: z.record(z.string(), z.string({ error: "a header value" })).default({}),
        maxValueBytes: integer(1, 1024 ** 3).default(1024 * 1024),
      }),
      strict({
        type: z.literal("sqlite"),
        path: nonEmpty("a SQLite database file"),
        query: nonEmpty("a query with one parameter for the key, returning one value"),
      }),
      strict({
        type: z.literal("sql"),
        url: nonEmpty("a postgres:// or mysql:// URL"),
        query: nonEmpty("a query with one parameter for the key, returning one value"),
        maxConnections: integer(1, 1000).default(10),
      }),
    ],
    { error: "one of the loader types http, sqlite, sql" },
  );
  const loaders = z
    .record(
      z.string().regex(POOL_NAME, { error: 'a loader name of letters, digits, "_", "." and "-"' }),
      loader,
      {
        error: "an object of loaders by name",
      },
    )
    .transform((record): ReadonlyMap<string, LoaderConfig> => new Map(Object.entries(record)));

  const spool = strict({
    dir: nonEmpty("a directory for the delete spool"),
    maxBytes: integer(4096, 2 ** 40).default(16 * 1024 * 1024),
  });

  return z
    .strictObject(
      {
        listen: listen.optional(),
        etcd: etcd.optional(),
        nats: nats.optional(),
        spool: spool.optional(),
        loaders: loaders.optional(),
        pools,
        route,
      },
      {
        error: (issue) =>
          issue.code === "unrecognized_keys"
            ? "one of the fields listen, etcd, nats, spool, loaders, pools, route"
            : issue.code === "invalid_type"
              ? TOP_LEVEL_EXPECTED
              : undefined,
      },
    )
    .superRefine((value, ctx) => {
      // Runs even when a pool failed (zod checks on): only a parsed pools map is looked at.
      if (!(value.pools instanceof Map)) return;
      for (const [name, spec] of value.pools) {
        if (spec.discovery === "etcd" && value.etcd === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["etcd"],
            message: `an etcd section (endpoints, prefix) since pool "${name}" has discovery: etcd`,
          });
          return;
        }
        if (spec.transport === "nats" && value.nats === undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["nats"],
            message: `a nats section (servers, prefix) since pool "${name}" has transport: nats`,
          });
          return;
        }
      }
    })
    .transform((value): RouterConfig => {
      const config: RouterConfig = { pools: value.pools, route: value.route };
      if (value.listen !== undefined) config.listen = value.listen;
      if (value.etcd !== undefined) config.etcd = value.etcd;
      if (value.spool !== undefined) config.spool = value.spool;
      if (value.loaders !== undefined) config.loaders = value.loaders;
      if (value.nats !== undefined) config.nats = value.nats;
      return config;
    });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
