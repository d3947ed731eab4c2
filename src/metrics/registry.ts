// The process's Prometheus registry and the builders that fill it (metric names: names.ts).
//
//   createRegistry ──> gravity_build_info, prom-client default metrics (gravity_process_*, gravity_nodejs_*)
//   leafMetrics    ──> collect callbacks: one native.stats() snapshot per scrape ──> gravity_store_*, gravity_leaf_*
//   routerMetrics  ──> observeRequest / observeDestination / countDestinationError on the request path
//                      collect callbacks: RouterState (TKO, pool sizes), RouterCounters (hits, hedges)
//   discoveryMetrics ─> collect callback: PoolDiscovery.following (etcd pools kept on their last members)
//   httpMetrics    ──> observe() per HTTP request (src/http/server.ts)
//   grpcMetrics    ──> collect callbacks: the gRPC server's in-flight calls, held reply bytes, refusals
//
// Totals that another component already keeps (the store's counters, RouterCounters) are exported
// as counters set at scrape time: reset, then increased by the current total. A total that went
// down (`stats reset`) is a counter reset, which rate() already handles.
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  Registry as PromRegistry,
  type Registry,
} from "prom-client";
import {
  ConnectionError,
  DestinationDownError,
  OverloadedError,
  ProtocolError,
  ServerError,
  TimeoutError,
} from "../errors.ts";
import { type NativeStats, native } from "../native/index.ts";
import { FastHistogram, type HistogramSeries } from "./fast-histogram.ts";
import {
  CommonMetrics,
  type DestinationErrorKind,
  GRPC_REFUSAL_REASONS,
  GrpcMetrics,
  type GrpcRefusalReason,
  HTTP_METHODS,
  type HttpMethod,
  type HttpRoute,
  LATENCY_BUCKETS_SECONDS,
  LeafMetrics,
  METRIC_PREFIX,
  type MetricSpec,
  type RequestOp,
  type RequestResult,
  RouterMetrics,
} from "./names.ts";

export type { Registry } from "prom-client";

/** Which executable role a registry describes (the `role` label of gravity_build_info). */
export type Role = "leaf" | "router";

export interface RegistryOptions {
  role: Role;
  version: string;
  /** prom-client's process and Node.js metrics, prefixed gravity_ (default true). */
  defaultMetrics?: boolean;
}

/** A new registry with gravity_build_info and the default process metrics; the CLI makes one per process. */
export function createRegistry(options: RegistryOptions): Registry {
  const registry = new PromRegistry();
  const info = gauge(registry, CommonMetrics.buildInfo);
  info.set({ version: options.version, role: options.role }, 1);
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

// A metric already registered under the spec's name is returned as is (so a builder can run twice
// on one registry, e.g. two HTTP servers); else a new one is registered.
function existing<T>(registry: Registry, spec: MetricSpec): T | undefined {
  return registry.getSingleMetric(spec.name) as T | undefined;
}

function counter(registry: Registry, spec: MetricSpec, collect?: (this: Counter) => void): Counter {
  return (
    existing<Counter>(registry, spec) ??
    new Counter({ name: spec.name, help: spec.help, labelNames: spec.labels, registers: [registry], collect })
  );
}

function gauge(registry: Registry, spec: MetricSpec, collect?: (this: Gauge) => void): Gauge {
  return (
    existing<Gauge>(registry, spec) ??
    new Gauge({ name: spec.name, help: spec.help, labelNames: spec.labels, registers: [registry], collect })
  );
}

function histogram(registry: Registry, spec: MetricSpec): Histogram {
  return (
    existing<Histogram>(registry, spec) ??
    new Histogram({
      name: spec.name,
      help: spec.help,
      labelNames: spec.labels,
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers: [registry],
    })
  );
}

function fastHistogram(registry: Registry, spec: MetricSpec): FastHistogram {
  const found = registry.getSingleMetric(spec.name);
  if (found instanceof FastHistogram) return found;
  return new FastHistogram(spec.name, spec.help, spec.labels ?? [], LATENCY_BUCKETS_SECONDS, registry);
}

// A counter that mirrors totals kept elsewhere: read() gives [labels, total] pairs at scrape time.
function mirroredCounter(
  registry: Registry,
  spec: MetricSpec,
  read: () => readonly (readonly [Record<string, string>, number])[],
): Counter {
  return counter(registry, spec, function collect() {
    this.reset();
    for (const [labels, total] of read()) this.inc(labels, Math.max(0, total));
  });
}

function mirroredGauge(registry: Registry, spec: MetricSpec, read: () => number): Gauge {
  return gauge(registry, spec, function collect() {
    this.set(read());
  });
}

const NO_LABELS: Record<string, string> = {};

/**
 * Registers the leaf's store and listener metrics, read from `stats` (default: the addon's
 * process-global store) once per scrape.
 */
export function leafMetrics(registry: Registry, stats: () => NativeStats = () => native.stats()): void {
  // Every collect callback of one scrape runs in the same synchronous pass (prom-client calls each
  // metric's get() before awaiting any), so one snapshot serves them all and the numbers agree.
  let snapshot: NativeStats | undefined;
  const now = (): NativeStats => {
    if (snapshot === undefined) {
      snapshot = stats();
      queueMicrotask(() => {
        snapshot = undefined;
      });
    }
    return snapshot;
  };
  const total = (spec: MetricSpec, field: keyof NativeStats) =>
    mirroredCounter(registry, spec, () => [[NO_LABELS, now()[field]]]);
  const level = (spec: MetricSpec, field: keyof NativeStats) =>
    mirroredGauge(registry, spec, () => now()[field]);

  level(LeafMetrics.storeItems, "curr_items");
  level(LeafMetrics.storeBytes, "bytes");
  level(LeafMetrics.storeLimitBytes, "limit_maxbytes");
  level(LeafMetrics.storeItemSizeMaxBytes, "item_size_max");
  level(LeafMetrics.storeShards, "shards");
  level(LeafMetrics.leafConnections, "curr_connections");
  total(LeafMetrics.storeItemsStored, "total_items");
  total(LeafMetrics.storeEvictions, "evictions");
  total(LeafMetrics.storeEvictedUnfetched, "evicted_unfetched");
  total(LeafMetrics.storeAdmissionsRejected, "admissions_rejected");
  total(LeafMetrics.storeReclaimed, "reclaimed");
  total(LeafMetrics.storeExpiredUnfetched, "expired_unfetched");
  total(LeafMetrics.storeGetExpired, "get_expired");
  total(LeafMetrics.leafConnectionsTotal, "total_connections");
  mirroredCounter(registry, LeafMetrics.storeCommands, () => {
    const s = now();
    return [
      [{ command: "get" }, s.cmd_get],
      [{ command: "set" }, s.cmd_set],
      [{ command: "touch" }, s.cmd_touch],
    ];
  });
  mirroredCounter(registry, LeafMetrics.storeHits, () => {
    const s = now();
    return [
      [{ command: "get" }, s.get_hits],
      [{ command: "touch" }, s.touch_hits],
      [{ command: "delete" }, s.delete_hits],
    ];
  });
  mirroredCounter(registry, LeafMetrics.storeMisses, () => {
    const s = now();
    return [
      [{ command: "get" }, s.get_misses],
      [{ command: "touch" }, s.touch_misses],
      [{ command: "delete" }, s.delete_misses],
    ];
  });
  mirroredCounter(registry, LeafMetrics.storeSetsRefused, () => {
    const s = now();
    return [
      [{ reason: "too_large" }, s.store_too_large],
      [{ reason: "no_memory" }, s.store_no_memory],
    ];
  });
}

/** What routerMetrics reads of a destination (src/transport/tcp-destination.ts TcpDestination fits). */
export interface DestinationView {
  readonly name: string;
  readonly down: boolean;
  readonly inFlightCount: number;
}

/** What routerMetrics reads from the router's state at scrape time (src/router/server.ts RouterState fits). */
export interface RouterStateView {
  readonly pools: ReadonlyMap<string, { readonly destinations: readonly DestinationView[] }>;
}

/** The totals routerMetrics reads at scrape time (src/router/server.ts RouterCounters fits). */
export interface RouterTotalsView {
  readonly currConnections: number;
  readonly totalConnections: number;
  readonly getHits: number;
  readonly getMisses: number;
  readonly routeErrors: number;
  readonly hedges: { readonly sent: number; readonly won: number };
  /** Counter groups of route handles: objects of numbers, by field name. */
  readonly loader: object;
  readonly gutter: object;
  readonly warmup: object;
  readonly backgroundWrites: object;
  readonly readRepair: object;
  /** The load budget (src/router/load-budget.ts LoadBudget fits). */
  readonly budget: { readonly overloaded: number; readonly inFlight: number; readonly bufferedBytes: number };
}

/** What routerMetrics reads of the delete spool at scrape time (src/router/spool.ts DeleteSpool fits). */
export interface SpoolView {
  readonly bytes: number;
  readonly counters: {
    readonly refused: Readonly<Record<string, number>>;
    readonly droppedBytes: Readonly<Record<string, number>>;
    readonly replayed: number;
  };
}

export interface RouterMetricsSource {
  /** The current route tree's pools (read per scrape, so a reload shows at once). */
  state: () => RouterStateView;
  counters: RouterTotalsView;
  /** The delete spool, when the config has one. */
  spool?: SpoolView;
}

/** What the router's request path calls; each call is a few property lookups and one increment. */
export interface RouterMetricsRecorder {
  /** One client request answered: its op, its result and the time from arrival to reply, in seconds. */
  observeRequest(op: RequestOp, result: RequestResult, seconds: number): void;
  /** One reply from destination `name` ("host:port") after `seconds`. */
  observeDestination(name: string, seconds: number): void;
  /** One request to destination `name` that failed; `kind` from errorKind(error). */
  countDestinationError(name: string, kind: DestinationErrorKind): void;
}

/** Registers the router's metrics and returns the functions its request path calls. */
export function routerMetrics(registry: Registry, source: RouterMetricsSource): RouterMetricsRecorder {
  const counters = source.counters;
  mirroredCounter(registry, RouterMetrics.getHits, () => [[NO_LABELS, counters.getHits]]);
  mirroredCounter(registry, RouterMetrics.getMisses, () => [[NO_LABELS, counters.getMisses]]);
  mirroredCounter(registry, RouterMetrics.routeErrors, () => [[NO_LABELS, counters.routeErrors]]);
  mirroredCounter(registry, RouterMetrics.connectionsTotal, () => [[NO_LABELS, counters.totalConnections]]);
  mirroredCounter(registry, RouterMetrics.hedgesSent, () => [[NO_LABELS, counters.hedges.sent]]);
  mirroredCounter(registry, RouterMetrics.hedgesWon, () => [[NO_LABELS, counters.hedges.won]]);
  // Each handle's counters, by field name in snake_case: loader loads, gutter diverted...
  // The replicated route has two groups, told apart by a prefix: background_write_ok, repair_hits...
  const routeEvents: [string, object, string][] = [
    ["loader", counters.loader, ""],
    ["gutter", counters.gutter, ""],
    ["warmup", counters.warmup, ""],
    ["replicated", counters.backgroundWrites, "background_write_"],
    ["replicated", counters.readRepair, "repair_"],
  ];
  mirroredCounter(registry, RouterMetrics.routeEvents, () =>
    routeEvents.flatMap(([route, group, prefix]) =>
      (Object.entries(group) as [string, number][]).map(
        ([event, total]) => [{ route, event: `${prefix}${snakeCase(event)}` }, total] as const,
      ),
    ),
  );
  mirroredGauge(registry, RouterMetrics.connections, () => counters.currConnections);
  mirroredCounter(registry, RouterMetrics.overloaded, () => [[NO_LABELS, counters.budget.overloaded]]);
  mirroredGauge(registry, RouterMetrics.inFlight, () => counters.budget.inFlight);
  mirroredGauge(registry, RouterMetrics.bufferedBytes, () => counters.budget.bufferedBytes);
  // Without a spool in the config: no series, and 0 bytes.
  const spool = source.spool;
  const byReason = (group: Readonly<Record<string, number>> | undefined) =>
    Object.entries(group ?? {}).map(([reason, total]) => [{ reason }, total] as const);
  mirroredCounter(registry, RouterMetrics.spoolRefused, () => byReason(spool?.counters.refused));
  mirroredCounter(registry, RouterMetrics.spoolDropped, () => byReason(spool?.counters.droppedBytes));
  mirroredCounter(registry, RouterMetrics.spoolReplayed, () =>
    spool === undefined ? [] : [[NO_LABELS, spool.counters.replayed]],
  );
  mirroredGauge(registry, RouterMetrics.spoolBytes, () => spool?.bytes ?? 0);

  // Pools and destinations change on reload: each scrape starts from no series, so a removed
  // destination disappears instead of reporting its last state forever.
  gauge(registry, RouterMetrics.destinationDown, function collect() {
    this.reset();
    for (const [pool, { destinations }] of source.state().pools) {
      for (const destination of destinations)
        this.set({ pool, destination: destination.name }, destination.down ? 1 : 0);
    }
  });
  gauge(registry, RouterMetrics.destinationInFlight, function collect() {
    this.reset();
    for (const [pool, { destinations }] of source.state().pools) {
      for (const destination of destinations)
        this.set({ pool, destination: destination.name }, destination.inFlightCount);
    }
  });
  gauge(registry, RouterMetrics.poolDestinations, function collect() {
    this.reset();
    for (const [pool, { destinations }] of source.state().pools) this.set({ pool }, destinations.length);
  });
  gauge(registry, RouterMetrics.poolHealthyDestinations, function collect() {
    this.reset();
    for (const [pool, { destinations }] of source.state().pools) {
      this.set({ pool }, destinations.filter((destination) => !destination.down).length);
    }
  });

  // The request path's metrics: series resolved once per label set, then plain increments
  // (fast-histogram.ts); the per-(op, result) totals are mirrored into a counter at scrape time.
  const requestTotals = new Map<string, { labels: Record<string, string>; total: number }>();
  mirroredCounter(registry, RouterMetrics.requests, () =>
    [...requestTotals.values()].map(({ labels, total }) => [labels, total] as const),
  );
  const requestDuration = fastHistogram(registry, RouterMetrics.requestDuration);
  const destinationDuration = fastHistogram(registry, RouterMetrics.destinationDuration);
  const destinationErrors = counter(registry, RouterMetrics.destinationErrors);
  const opDurations = new Map<string, HistogramSeries>();
  const destinationDurations = new Map<string, HistogramSeries>();
  return {
    observeRequest(op, result, seconds) {
      const key = `${op} ${result}`;
      let totals = requestTotals.get(key);
      if (totals === undefined) {
        totals = { labels: { op, result }, total: 0 };
        requestTotals.set(key, totals);
      }
      totals.total++;
      let duration = opDurations.get(op);
      if (duration === undefined) {
        duration = requestDuration.series({ op });
        opDurations.set(op, duration);
      }
      duration.observe(seconds);
    },
    observeDestination(name, seconds) {
      let duration = destinationDurations.get(name);
      if (duration === undefined) {
        duration = destinationDuration.series({ destination: name });
        destinationDurations.set(name, duration);
      }
      duration.observe(seconds);
    },
    countDestinationError(name, kind) {
      destinationErrors.inc({ destination: name, kind });
    },
  };
}

/**
 * Registers gravity_router_discovery_following: per pool with discovery: etcd, 1 while its members
 * follow etcd, 0 while the last ones are kept (`following` is PoolDiscovery.following, per scrape).
 */
export function discoveryMetrics(
  registry: Registry,
  following: () => Iterable<readonly [string, boolean]>,
): void {
  gauge(registry, RouterMetrics.discoveryFollowing, function collect() {
    this.reset();
    for (const [pool, current] of following()) this.set({ pool }, current ? 1 : 0);
  });
}

/** What grpcMetrics reads of the gRPC server at scrape time (src/grpc/server.ts GrpcServer fits). */
export interface GrpcServerView {
  readonly inFlight: number;
  readonly heldReplyBytes: number;
  readonly refusedCalls: Readonly<Record<GrpcRefusalReason, number>>;
}

/** Registers gravity_grpc_*: the gRPC server's calls in flight, unread reply bytes and refusals by reason. */
export function grpcMetrics(registry: Registry, server: GrpcServerView): void {
  mirroredGauge(registry, GrpcMetrics.inFlight, () => server.inFlight);
  mirroredGauge(registry, GrpcMetrics.heldReplyBytes, () => server.heldReplyBytes);
  mirroredCounter(registry, GrpcMetrics.refusedCalls, () =>
    GRPC_REFUSAL_REASONS.map((reason) => [{ reason }, server.refusedCalls[reason]] as const),
  );
}

/** The `kind` label for an error a destination's send() rejected with (errors.ts classes). */
export function errorKind(error: unknown): DestinationErrorKind {
  if (error instanceof TimeoutError) return "timeout";
  if (error instanceof DestinationDownError) return "down";
  if (error instanceof ConnectionError) return "connection";
  if (error instanceof OverloadedError) return "overloaded";
  if (error instanceof ProtocolError) return "protocol";
  if (error instanceof ServerError) return "server_error";
  return "other";
}

/** What the HTTP server calls once per response. */
export interface HttpMetricsRecorder {
  observe(method: string, route: HttpRoute, status: number, seconds: number): void;
}

const KNOWN_METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);

/** Registers (or finds) the HTTP API's metrics. */
export function httpMetrics(registry: Registry): HttpMetricsRecorder {
  const requests = counter(registry, CommonMetrics.httpRequests);
  const duration = histogram(registry, CommonMetrics.httpDuration);
  // Children per label set, so a request skips prom-client's label hashing.
  const requestChildren = new Map<string, { inc(): void }>();
  const durationChildren = new Map<string, { observe(value: number): void }>();
  return {
    observe(method, route, status, seconds) {
      const label: HttpMethod = KNOWN_METHODS.has(method) ? (method as HttpMethod) : "other";
      const key = `${label} ${route}`;
      const statusKey = `${key} ${status}`;
      let child = requestChildren.get(statusKey);
      if (child === undefined) {
        child = requests.labels(label, route, String(status));
        requestChildren.set(statusKey, child);
      }
      child.inc();
      let timer = durationChildren.get(key);
      if (timer === undefined) {
        timer = duration.labels(label, route);
        durationChildren.set(key, timer);
      }
      timer.observe(seconds);
    },
  };
}

// gutterDeleteFailures -> gutter_delete_failures
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}
