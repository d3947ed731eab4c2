// The router's configuration as the rest of the router sees it once validated: pools of leaves,
// the route tree over them, and the defaults of every optional field. config.ts re-exports all of it.
import type { EtcdAccess } from "../discovery/etcd-access.ts";
import type { HashName } from "../hash/hash-functions.ts";
import type { ClientTls } from "../security/tls.ts";
import type { NatsCredentials } from "../transport/nats-credentials.ts";

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
  /**
   * Where the servers come from: "static" (the list above, default) or "etcd" (the leaves
   * registered under `{etcd.prefix}/pools/{pool name}/`; `servers` must then be empty).
   */
  discovery: "static" | "etcd";
  /**
   * How requests reach the leaves: "tcp" (pooled pipelined connections, default) or "nats"
   * (request/reply on {nats.prefix}.leaf.{pool}.{leaf id}; a server's leaf id is its `name`, else
   * "host:port", as the leaf's --nats-leaf-id says).
   */
  transport: "tcp" | "nats";
  /** A twemproxy key hash (src/hash/hash-functions.ts), default md5. */
  hash: HashName;
  /** Default ketama. */
  distribution: Distribution;
  /** TCP connections per server kept open, 1..64, default 2. */
  connections: number;
  /**
   * The most TCP connections per server, `connections`..256, default 16: more are opened while
   * every one has a request waiting, so a stalled reply holds as few requests as possible.
   */
  maxConnections: number;
  /** Per request, ms, 1..60000, default 1000. */
  timeoutMs: number;
  /** Per connection attempt, ms, 1..60000, default 1000. */
  connectTimeoutMs: number;
  /** Requests written and awaiting a reply, per connection, 1..65536, default 1024. */
  maxInFlight: number;
  /** Requests waiting to be written, per connection, 0..1048576, default 4096; past it a request fails at once. */
  maxQueued: number;
  tko: TkoConfig;
  /**
   * TLS to the pool's leaves (transport tcp only; discovered members too): the PEM text of the
   * files the config names, read when it is loaded. Absent: plaintext.
   */
  tls?: ClientTls;
}

/** The defaults of a pool's optional fields. */
export const POOL_DEFAULTS = {
  discovery: "static",
  transport: "tcp",
  hash: "md5" as HashName,
  distribution: Distribution.Ketama,
  connections: 2,
  maxConnections: 16,
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
  Gutter: "gutter",
  WarmUp: "warmup",
  Loader: "loader",
} as const;
export type RouteType = (typeof RouteType)[keyof typeof RouteType];

/**
 * How a replicated route writes: wait for every replica (or writeQuorum of them), none, a majority
 * of the pool, or the first only (the rest in the background).
 */
export const WritePolicy = {
  AllSync: "all-sync",
  AllAsync: "all-async",
  AllMajority: "all-majority",
  AllInitial: "all-initial",
} as const;
export type WritePolicy = (typeof WritePolicy)[keyof typeof WritePolicy];

/** How a replicated route reads: one replica, all at once (first reply wins), or one then a hedge after a delay. */
export const ReadPolicy = { One: "one", AllFastest: "all-fastest", Hedged: "hedged" } as const;
export type ReadPolicy = (typeof ReadPolicy)[keyof typeof ReadPolicy];

/** What a replicated route does when the replica it picked is down: fail, or try another replica. */
export const OnDown = { FailFast: "fail-fast", Failover: "failover" } as const;
export type OnDown = (typeof OnDown)[keyof typeof OnDown];

/** When and how often a hedged read sends a second request ("The Tail at Scale", Dean and Barroso). */
export interface HedgeSpec {
  /** Wait before hedging, ms 1..60000, or "adaptive" (the pool's latency percentile); default "adaptive". */
  delayMs: number | "adaptive";
  /** The most hedges per read, as a fraction 0..1 of reads, default 0.05. */
  budget: number;
  /** Adaptive only: the percentile of the pool's recent read latencies to wait for, 1..100, default 95. */
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
} as const satisfies HedgeSpec;

/**
 * Read repair of a replicated pool (src/router/handles/read-repair.ts): a miss on one replica is
 * looked up on the others and a hit is added back to it with memcached's add.
 */
export interface ReadRepairSpec {
  /**
   * The most lookups for misses on replicas that are not recovering, as a fraction 0..1 of reads,
   * default 0.05 (0: only recovering replicas are repaired).
   */
  budget: number;
  /**
   * How long a replica seen down (TKO) or losing a connection counts as recovering, ms
   * 0..86400000, default 60000: it is read first and every miss on it is looked up (0: never).
   */
  recoveryMs: number;
}

/** The defaults of read repair, on unless the file says otherwise. */
export const REPAIR_DEFAULTS = { budget: 0.05, recoveryMs: 60_000 } as const satisfies ReadRepairSpec;

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
  writes: WritePolicy;
  /**
   * all-sync only: how many replicas must store a write before it is acknowledged, 1..the pool's
   * servers; default (undefined) every replica of the pool, so a write with a replica down fails.
   */
  writeQuorum?: number;
  /** Default one. */
  reads: ReadPolicy;
  /** Set exactly when reads is hedged (defaults applied if the file has no `hedge`). */
  hedge?: HedgeSpec;
  /** Default failover. */
  onDown: OnDown;
  /** Default REPAIR_DEFAULTS. */
  repair: ReadRepairSpec;
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
/**
 * Consistent hashing over `pool`, with a gutter: while a key's leaf is down (TKO) or unreachable,
 * its reads and writes go to the `gutter` pool with their TTL capped to ttlSeconds ("Scaling
 * Memcache at Facebook" §3.3, mcrouter's gutter); deletes go to both.
 */
export interface GutterRouteConfig {
  type: "gutter";
  pool: string;
  /** A (small) pool name: sharded over it. */
  gutter: string;
  /** 1..2592000, default 10. */
  ttlSeconds: number;
}

/** Read the cold route first; on a miss read warm and add the value to cold (mcrouter's WarmUpRoute). */
export interface WarmUpRouteConfig {
  type: "warmup";
  cold: RouteConfig;
  warm: RouteConfig;
  /** The longest TTL a warmed-up copy gets, 1..2592000, default 3600. */
  ttlSeconds: number;
}

/**
 * Read-through (groupcache's getter): a get that misses in `route` is loaded from the named
 * origin (one load per key at a time: singleflight), stored with ttlSeconds and answered; a
 * not-found is stored as a negative entry for negativeTtlSeconds; an origin error is a
 * SERVER_ERROR and nothing is stored.
 */
export interface LoaderRouteConfig {
  type: "loader";
  loader: string;
  route: RouteConfig;
  /** 0..2592000 (0 = no expiry), default 300. */
  ttlSeconds: number;
  /** 0..2592000 (0 = no negative caching), default 30. */
  negativeTtlSeconds: number;
  /** One origin load's limit, ms, default 1000. */
  timeoutMs: number;
  /** How long a miss waits for a load already in flight, ms, default 2000. */
  waitMs: number;
  /** Leases on behalf of plain gets, so misses on every router share one load (default false). */
  leases: boolean;
}

/** An origin values are loaded from: an HTTP URL template, SQLite, or PostgreSQL/MySQL. */
export type LoaderConfig =
  | { type: "http"; url: string; headers: Readonly<Record<string, string>>; maxValueBytes: number }
  | { type: "sqlite"; path: string; query: string }
  | { type: "sql"; url: string; query: string; maxConnections: number };

export type RouteConfig =
  | LoaderRouteConfig
  | ShardedRouteConfig
  | ReplicatedRouteConfig
  | FailoverRouteConfig
  | MissFailoverRouteConfig
  | PrefixRouteConfig
  | OperationRouteConfig
  | GutterRouteConfig
  | WarmUpRouteConfig;

/** Where the router accepts clients. Port 0 picks a free port. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** A validated router configuration, every default applied. */
/**
 * The etcd cluster that pools with `discovery: etcd` watch: its endpoints (client URLs or
 * host:port, at least one) and, read from the files the section names, TLS and an etcd user
 * (EtcdAccess).
 */
export interface EtcdConfig extends EtcdAccess {
  /** Key prefix, default "/gravity": leaves register under `{prefix}/pools/{pool}/{leafId}`. */
  prefix: string;
}

/** The NATS servers of the aggregate layer: transport, ingress and the invalidation bus. */
export interface NatsConfig {
  /** NATS URLs or host:port, at least one. */
  servers: readonly string[];
  /** Subject prefix, default "gravity". */
  prefix: string;
  /** Accept the original interface: requests on {prefix}.ingress.{pool}[.{key}] (default false). */
  ingress: boolean;
  /** Broadcast deletes on `subject` and apply other clusters' (default: off). */
  invalidation?: { subject: string; clusterId: string };
  /**
   * TLS and authentication, read from the files the section names (empty: plain, anonymous).
   * The NATS connection is opened at start: a reload re-reads the files but does not reconnect.
   */
  credentials: NatsCredentials;
}

export interface RouterConfig {
  /** From `listen: "host:port"`; undefined when the file has none. The CLI's --listen/--port override it. */
  listen?: ListenAddress;
  /** Required when a pool says `discovery: etcd`. */
  etcd?: EtcdConfig;
  /** Required when a pool says `transport: nats`. */
  nats?: NatsConfig;
  /** Origins by name, for routes of type loader. */
  loaders?: ReadonlyMap<string, LoaderConfig>;
  /**
   * The delete spool (mcrouter's asynclog): a delete a leaf cannot take is fsync'd to
   * `{dir}/{host:port}.spool` and replayed in order when the leaf is back, across router restarts.
   * Read at start only. Default: off.
   */
  spool?: { dir: string; maxBytes: number };
  /** At least one pool, by name ([A-Za-z0-9_.-]+), in file order. */
  pools: ReadonlyMap<string, PoolConfig>;
  route: RouteConfig;
}
