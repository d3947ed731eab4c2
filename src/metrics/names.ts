// Every metric gravity exports: name, type, help and label names in one place, so registry.ts,
// the Grafana dashboard (deploy/kubernetes/base/grafana-dashboard.json) and the tests agree. Prometheus naming
// conventions (prometheus.io/docs/practices/naming): a `gravity_` prefix, base units (seconds,
// bytes), `_total` on counters and on nothing else, `_seconds` on latency histograms.
//
//   role    family                      source
//   both    gravity_build_info          set once
//   both    gravity_process_*, gravity_nodejs_*   prom-client's default metrics (DEFAULT_METRICS)
//   both    gravity_http_*              the HTTP API (src/http/server.ts), per request
//   both    gravity_grpc_*              the gRPC server's counters (src/grpc/server.ts), read at scrape time
//   leaf    gravity_store_*, gravity_leaf_*   native.stats(), read at scrape time
//   router  gravity_router_*            observe*/count* calls per request; RouterState and
//                                       RouterCounters read at scrape time
//
// Label values come from fixed sets (below) or from the configuration (pool and destination
// names), so the number of series is bounded.

export const MetricType = { Counter: "counter", Gauge: "gauge", Histogram: "histogram" } as const;
export type MetricType = (typeof MetricType)[keyof typeof MetricType];

/** One metric's identity: what `# HELP` and `# TYPE` say about it and which labels it carries. */
export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
}

/** Prefix of every gravity metric, default process metrics included. */
export const METRIC_PREFIX = "gravity_";

/** The `op` label of router requests: memcached's command names (protocol.txt), a fixed set. */
export const REQUEST_OPS = [
  "get",
  "gets",
  "gat",
  "gats",
  "set",
  "add",
  "replace",
  "append",
  "prepend",
  "cas",
  "delete",
  "touch",
  "incr",
  "decr",
  "mg",
  "ms",
  "md",
  "ma",
  "mn",
  "me",
  "version",
  "stats",
  "flush_all",
  "verbosity",
  "quit",
  "lru_crawler",
] as const;
export type RequestOp = (typeof REQUEST_OPS)[number];

/**
 * The `result` label of router requests: hit/miss for reads, ok for a success without a value,
 * the memcached refusals, an error reply (client_error, server_error), and failed when no
 * destination could answer (the route rejected).
 */
export const REQUEST_RESULTS = [
  "hit",
  "miss",
  "ok",
  "not_stored",
  "exists",
  "not_found",
  "client_error",
  "server_error",
  "failed",
] as const;
export type RequestResult = (typeof REQUEST_RESULTS)[number];

/** The `kind` label of destination errors (see errorKind in registry.ts). */
export const DESTINATION_ERROR_KINDS = [
  "timeout",
  "connection",
  "down",
  "overloaded",
  "protocol",
  "server_error",
  "other",
] as const;
export type DestinationErrorKind = (typeof DESTINATION_ERROR_KINDS)[number];

/** The `route` label of HTTP requests: the path's family, never the path itself (keys are unbounded). */
export const HTTP_ROUTES = ["cache", "healthz", "readyz", "metrics", "other"] as const;
export type HttpRoute = (typeof HTTP_ROUTES)[number];

/** The `method` label of HTTP requests; anything else is counted as "other". */
export const HTTP_METHODS = ["GET", "HEAD", "PUT", "DELETE", "POST", "other"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/**
 * The `reason` label of refused gRPC calls (RESOURCE_EXHAUSTED): calls_in_flight (--grpc-max-calls
 * were being answered) or unread_replies (clients had left too many reply bytes unread,
 * src/grpc/reply-hold.ts).
 */
export const GRPC_REFUSAL_REASONS = ["calls_in_flight", "unread_replies"] as const;
export type GrpcRefusalReason = (typeof GRPC_REFUSAL_REASONS)[number];

/** Histogram buckets for request latencies, in seconds: 50 µs (a local hit) to 5 s (timeouts). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

function counter(name: string, help: string, labels: readonly string[] = []): MetricSpec {
  return { name, type: MetricType.Counter, help, labels };
}

function gauge(name: string, help: string, labels: readonly string[] = []): MetricSpec {
  return { name, type: MetricType.Gauge, help, labels };
}

function histogram(name: string, help: string, labels: readonly string[] = []): MetricSpec {
  return { name, type: MetricType.Histogram, help, labels };
}

/** The metrics of both roles. */
export const CommonMetrics = {
  buildInfo: gauge("gravity_build_info", "Always 1; the labels name the running gravity.", [
    "version",
    "role",
  ]),
  httpRequests: counter("gravity_http_requests_total", "HTTP API requests answered, by route and status.", [
    "method",
    "route",
    "status",
  ]),
  httpDuration: histogram(
    "gravity_http_request_duration_seconds",
    "Time from an HTTP request's arrival to its response, in seconds.",
    ["method", "route"],
  ),
} as const satisfies Record<string, MetricSpec>;

/** The gRPC server of both roles (src/grpc/server.ts), registered once it listens. */
export const GrpcMetrics = {
  inFlight: gauge("gravity_grpc_inflight_calls", "gRPC calls being answered now (against --grpc-max-calls)."),
  heldReplyBytes: gauge(
    "gravity_grpc_held_reply_bytes",
    "Value bytes of gRPC replies sent and not yet read by their clients, every connection together (new calls are refused past 16 MiB).",
  ),
  refusedCalls: counter(
    "gravity_grpc_refused_calls_total",
    "gRPC calls refused with RESOURCE_EXHAUSTED, by reason: calls_in_flight (--grpc-max-calls) or unread_replies (replies clients left unread).",
    ["reason"],
  ),
} as const satisfies Record<string, MetricSpec>;

/** The leaf's store and listener, from native.stats() (memcached's stats names in the help). */
export const LeafMetrics = {
  storeItems: gauge("gravity_store_items", "Items in the store (curr_items)."),
  storeBytes: gauge("gravity_store_bytes", "Bytes the store's items cost, overhead included (bytes)."),
  storeLimitBytes: gauge("gravity_store_limit_bytes", "The store's memory limit (limit_maxbytes, --memory)."),
  storeItemSizeMaxBytes: gauge(
    "gravity_store_item_size_max_bytes",
    "The item size limit (item_size_max, --max-item-size).",
  ),
  storeShards: gauge("gravity_store_shards", "Lock shards of the store."),
  storeItemsStored: counter("gravity_store_items_stored_total", "Items ever stored (total_items)."),
  storeEvictions: counter(
    "gravity_store_evictions_total",
    "Live items evicted to make room for new ones (evictions).",
  ),
  storeEvictedUnfetched: counter(
    "gravity_store_evicted_unfetched_total",
    "Items evicted without ever being read (evicted_unfetched).",
  ),
  storeAdmissionsRejected: counter(
    "gravity_store_admissions_rejected_total",
    "Window candidates W-TinyLFU evicted because they lost their admission duel (admissions_rejected).",
  ),
  storeReclaimed: counter(
    "gravity_store_reclaimed_total",
    "Expired items whose memory was reclaimed (reclaimed).",
  ),
  storeExpiredUnfetched: counter(
    "gravity_store_expired_unfetched_total",
    "Items that expired without ever being read (expired_unfetched).",
  ),
  storeCommands: counter(
    "gravity_store_commands_total",
    "Commands the store executed, by command (cmd_get, cmd_set, cmd_touch).",
    ["command"],
  ),
  storeHits: counter(
    "gravity_store_hits_total",
    "Lookups that found the key, by command (get_hits, touch_hits, delete_hits).",
    ["command"],
  ),
  storeMisses: counter(
    "gravity_store_misses_total",
    "Lookups that did not find the key, by command (get_misses, touch_misses, delete_misses).",
    ["command"],
  ),
  storeGetExpired: counter(
    "gravity_store_get_expired_total",
    "Gets that missed because the item had expired (get_expired).",
  ),
  storeSetsRefused: counter(
    "gravity_store_sets_refused_total",
    "Sets refused, by reason: too_large (store_too_large) or no_memory (store_no_memory).",
    ["reason"],
  ),
  leafConnections: gauge("gravity_leaf_connections", "Open memcached client connections (curr_connections)."),
  leafConnectionsTotal: counter(
    "gravity_leaf_connections_total",
    "memcached client connections ever accepted (total_connections).",
  ),
} as const satisfies Record<string, MetricSpec>;

/** The router: requests, destinations, pools and hedging. */
export const RouterMetrics = {
  requests: counter("gravity_router_requests_total", "Client requests answered, by op and result.", [
    "op",
    "result",
  ]),
  requestDuration: histogram(
    "gravity_router_request_duration_seconds",
    "Time from a request's arrival to its reply being ready, in seconds, by op.",
    ["op"],
  ),
  getHits: counter("gravity_router_get_hits_total", "Keys of get requests that were hits (get_hits)."),
  getMisses: counter(
    "gravity_router_get_misses_total",
    "Keys of get requests that were misses (get_misses).",
  ),
  routeErrors: counter(
    "gravity_router_route_errors_total",
    "Requests no destination could answer (SERVER_ERROR to the client).",
  ),
  connections: gauge("gravity_router_connections", "Open client connections (curr_connections)."),
  connectionsTotal: counter(
    "gravity_router_connections_total",
    "Client connections ever accepted (total_connections).",
  ),
  hedgesSent: counter("gravity_router_hedges_sent_total", "Hedged reads sent to a second replica."),
  overloaded: counter(
    "gravity_router_overloaded_total",
    "Requests refused and replies dropped for the load limits (--max-inflight, --max-buffered-bytes): SERVER_ERROR, 503 or RESOURCE_EXHAUSTED to the client.",
  ),
  inFlight: gauge(
    "gravity_router_inflight_requests",
    "Requests routed and not yet answered, every front door together (against --max-inflight).",
  ),
  bufferedBytes: gauge(
    "gravity_router_buffered_bytes",
    "Request bytes in flight, expected and held reply bytes (against --max-buffered-bytes).",
  ),
  routeEvents: counter(
    "gravity_router_route_events_total",
    "What route handles did, by route (loader, gutter, warmup, replicated) and event (their counters).",
    ["route", "event"],
  ),
  spoolRefused: counter(
    "gravity_router_spool_refused_deletes_total",
    "Deletes the delete spool refused (SERVER_ERROR to the client), by reason: full (maxBytes) or io (a write failed).",
    ["reason"],
  ),
  spoolDropped: counter(
    "gravity_router_spool_dropped_bytes_total",
    "Bytes of spooled deletes dropped when the spool was opened, by reason: torn (a write cut short), corrupt (bad length, checksum or header), over_limit (more than maxBytes).",
    ["reason"],
  ),
  spoolReplayed: counter(
    "gravity_router_spool_replayed_deletes_total",
    "Spooled deletes replayed to their leaf once it answered again.",
  ),
  spoolBytes: gauge(
    "gravity_router_spool_bytes",
    "Bytes of deletes the delete spool holds on disk now (against its maxBytes).",
  ),
  hedgesWon: counter(
    "gravity_router_hedges_won_total",
    "Hedged reads whose reply arrived first and was used.",
  ),
  destinationDuration: histogram(
    "gravity_router_destination_request_duration_seconds",
    "Time a destination (leaf) took to reply to one request, in seconds.",
    ["destination"],
  ),
  destinationErrors: counter(
    "gravity_router_destination_errors_total",
    "Requests to a destination that failed, by kind.",
    ["destination", "kind"],
  ),
  destinationDown: gauge(
    "gravity_router_destination_down",
    "1 while the destination is marked down (TKO), else 0.",
    ["pool", "destination"],
  ),
  destinationInFlight: gauge(
    "gravity_router_destination_in_flight",
    "Requests sent to the destination and not yet answered.",
    ["pool", "destination"],
  ),
  poolDestinations: gauge("gravity_router_pool_destinations", "Destinations configured in the pool.", [
    "pool",
  ]),
  discoveryFollowing: gauge(
    "gravity_router_discovery_following",
    "1 while an etcd pool's members follow etcd; 0 while etcd is unreachable or has lost its quorum and the pool keeps its last members.",
    ["pool"],
  ),
  poolHealthyDestinations: gauge(
    "gravity_router_pool_healthy_destinations",
    "Destinations of the pool not marked down.",
    ["pool"],
  ),
} as const satisfies Record<string, MetricSpec>;

/**
 * prom-client's default metrics (collectDefaultMetrics with METRIC_PREFIX) that the dashboard and
 * the tests rely on; prom-client exports more (heap spaces, handles, GC) under the same prefix.
 */
export const DEFAULT_METRICS = {
  cpuSeconds: counter(
    "gravity_process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
  ),
  residentMemory: gauge("gravity_process_resident_memory_bytes", "Resident memory size in bytes."),
  openFds: gauge("gravity_process_open_fds", "Number of open file descriptors."),
  startTime: gauge(
    "gravity_process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
  ),
  eventLoopLagP99: gauge(
    "gravity_nodejs_eventloop_lag_p99_seconds",
    "The 99th percentile of the recorded event loop delays.",
  ),
  heapUsed: gauge("gravity_nodejs_heap_size_used_bytes", "Process heap size used from Node.js in bytes."),
} as const satisfies Record<string, MetricSpec>;

/** Every documented metric, by name. */
export const ALL_METRICS: ReadonlyMap<string, MetricSpec> = new Map(
  [
    ...Object.values(CommonMetrics),
    ...Object.values(GrpcMetrics),
    ...Object.values(LeafMetrics),
    ...Object.values(RouterMetrics),
    ...Object.values(DEFAULT_METRICS),
  ].map((spec) => [spec.name, spec]),
);
