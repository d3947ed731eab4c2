// `gravity router --config FILE`: a memcached-protocol proxy in front of pools of leaves.

import { routeBackend } from "../cache/backend.ts";
import { budgetedBackend } from "../cache/budgeted-backend.ts";
import { UsageError } from "../errors.ts";
import { routerReady } from "../http/readiness.ts";
import {
  createRegistry,
  type DestinationView,
  discoveryMetrics,
  errorKind,
  grpcMetrics,
  type RouterStateView,
  routerMetrics,
} from "../metrics/registry.ts";
import { loadConfig, type RouterConfig } from "../router/config.ts";
import { watchConfig } from "../router/config-watch.ts";
import { type RouteHandle, unavailableRoute } from "../router/handles/handle.ts";
import { DEFAULT_LOAD_LIMITS, LoadBudget, type LoadLimits, threadShare } from "../router/load-budget.ts";
import type { NatsContext } from "../router/pool.ts";
import { PoolDiscovery } from "../router/pool-discovery.ts";
import { Router } from "../router/router.ts";
import { RouterCounters, type RouterState, startRouterServer } from "../router/server.ts";
import { DeleteSpool, describeRecovery } from "../router/spool.ts";
import { RouterThreads, ThreadsRegistry } from "../router/threads.ts";
import { ingressDelete, serveIngress } from "../transport/nats-ingress.ts";
import { InvalidationBus } from "../transport/nats-invalidation.ts";
import { describeNatsStatus, NatsLink } from "../transport/nats-link.ts";
import { MEMCACHED_VERSION, VERSION } from "../version.ts";
import { FlagKind, type FlagSpec, type FlagValues, flagHelp, parseFlags } from "./args.ts";
import { GRPC_FLAGS, startGrpcFromFlags } from "./grpc-flags.ts";
import { HTTP_FLAGS, startHttpFromFlags } from "./http-flags.ts";
import { readSaslFile, SASL_FLAG } from "./sasl-flag.ts";
import { announceMemcachedPort, SECURITY_FLAGS, securityFromFlags } from "./security-flags.ts";

export const ROUTER_FLAGS: readonly FlagSpec[] = [
  {
    name: "config",
    kind: FlagKind.String,
    default: "",
    help: "route configuration file (YAML or JSON), required",
  },
  {
    name: "check-config",
    kind: FlagKind.String,
    default: "",
    help: "validate this configuration file and exit: 0 if valid, 2 naming what is wrong (as nutcracker -t)",
  },
  {
    name: "listen",
    kind: FlagKind.String,
    default: "",
    help: "address to listen on (default: the config's listen, else 127.0.0.1)",
  },
  {
    name: "port",
    kind: FlagKind.Integer,
    default: -1,
    min: -1,
    max: 65535,
    help: "TCP port, 0 = any free port (default: the config's listen, else 11211)",
  },
  {
    name: "max-connections",
    kind: FlagKind.Integer,
    default: 1024,
    min: 1,
    max: 1_000_000,
    help: "open client connections allowed",
  },
  {
    name: "max-item-size",
    kind: FlagKind.Bytes,
    default: "1m",
    min: 1024,
    max: 1024 ** 3,
    help: "largest value accepted from clients, as the leaves' -I",
  },
  {
    name: "max-inflight",
    kind: FlagKind.Integer,
    default: DEFAULT_LOAD_LIMITS.maxInflight,
    min: 1,
    max: 10_000_000,
    help: "requests routed and not yet answered, all clients (memcached, HTTP, gRPC) together; more get SERVER_ERROR overloaded",
  },
  {
    name: "max-buffered-bytes",
    kind: FlagKind.Bytes,
    default: "16m",
    min: 1024 * 1024,
    max: 64 * 1024 ** 3,
    help: "request bytes in flight plus reply bytes not yet written, all clients together; more get SERVER_ERROR overloaded",
  },
  {
    name: "max-client-inflight",
    kind: FlagKind.Integer,
    default: DEFAULT_LOAD_LIMITS.maxClientInflight,
    min: 1,
    max: 1_000_000,
    help: "per client connection: requests read and not yet answered; past it the router stops reading that client",
  },
  {
    name: "max-client-buffered-bytes",
    kind: FlagKind.Bytes,
    default: "1m",
    min: 64 * 1024,
    max: 1024 ** 3,
    help: "per client connection: its request bytes in flight plus reply bytes it has not read; past it the router stops reading that client",
  },
  {
    name: "threads",
    kind: FlagKind.Integer,
    default: 1,
    min: 1,
    max: 64,
    help: "listener threads on the port, each with its own route tree from the config",
  },
  SASL_FLAG,
  ...HTTP_FLAGS,
  ...GRPC_FLAGS,
  ...SECURITY_FLAGS,
  {
    name: "verbose",
    kind: FlagKind.Count,
    default: 0,
    min: 0,
    max: 3,
    short: "v",
    help: "log more: -v route errors (one line a second at most), -vv every client connection",
  },
  { name: "help", kind: FlagKind.Boolean, default: false, help: "show this help" },
];

// A route for the moment before the router exists (never used to answer a request).
const NO_ROUTE: RouteHandle = unavailableRoute(new Error("the router is starting"));

export const ROUTER_USAGE = `usage: gravity router --config FILE [flags]

Runs a router: clients speak the memcached protocol to it, it routes each request through the
route tree of the config file to pools of leaves. SIGHUP or a change of the file reloads it.

flags:
${flagHelp(ROUTER_FLAGS)}`;

const STOP_GRACE_MS = 5000;
const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 11211;

export async function routerCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, ROUTER_FLAGS);
  if (flags.help === true) {
    console.log(ROUTER_USAGE);
    return 0;
  }
  const security = securityFromFlags(flags);
  const checked = flags["check-config"] as string;
  if (checked !== "") return checkConfig(checked, flags.threads as number);
  const file = flags.config as string;
  if (file === "") throw new UsageError("--config: required (a YAML or JSON route configuration file)");
  const config = loadConfig(file);
  const [configHost, configPort] = splitListen(config);
  const host = (flags.listen as string) || configHost || DEFAULT_HOST;
  const flagPort = flags.port as number;
  const port = flagPort >= 0 ? flagPort : (configPort ?? DEFAULT_PORT);
  const threadCount = flags.threads as number;
  if (threadCount > 1 && config.spool !== undefined)
    throw new UsageError(spoolWithThreads(file, threadCount));

  const limits = loadLimits(flags);
  // Each thread holds its share of the process's limits (the main thread is one of them).
  const budget = new LoadBudget(threadShare(limits, threadCount));
  const sasl = readSaslFile(flags["sasl-file"] as string);
  const counters = new RouterCounters();
  const registry = createRegistry({ role: "router", version: VERSION });
  // Reads the router through a forward reference: the recorder must exist before the router
  // (its destinations report to it), and the router's state before the first scrape.
  let current: () => RouterState = () => ({ root: NO_ROUTE, pools: new Map() });
  const spool = await openSpool(config);
  const metrics = routerMetrics(registry, {
    state: () => current(),
    counters,
    ...(spool === undefined ? {} : { spool }),
  });
  await PoolDiscovery.checkAccess(config);
  const nats = await openNats(config);
  const router = new Router(
    config,
    counters,
    {
      onHealthChange: (destination, down, reason) => logHealth(0, destination.name, down, reason),
      onReply: (destination, ms) => metrics.observeDestination(destination.name, ms / 1000),
      onError: (destination, error) => metrics.countDestinationError(destination.name, errorKind(error)),
    },
    nats?.context,
    spool,
  );
  const aggregate = nats === undefined ? undefined : serveAggregate(nats, config, () => router.current());
  current = () => router.current();
  let server: ReturnType<typeof startRouterServer>;
  try {
    server = startRouterServer({
      host,
      // With threads, a plain bind first proves the port is free (and picks it, for port 0):
      // otherwise a second router on the same port would silently split traffic with this one.
      port: threadCount > 1 ? probePort(host, port) : port,
      reusePort: threadCount > 1,
      extraStats: [
        ["threads", String(threadCount)],
        ["thread", "0"],
      ],
      maxConnections: flags["max-connections"] as number,
      maxItemBytes: flags["max-item-size"] as number,
      verbosity: { level: flags.verbose as number },
      ...(sasl === undefined ? {} : { sasl }),
      version: MEMCACHED_VERSION,
      state: () => router.current(),
      counters,
      metrics,
      budget,
      tls: security.tls,
      authPasswords: security.authPasswords,
      ...(aggregate?.bus === undefined ? {} : { onDelete: publishDeleteOf(aggregate.bus) }),
    });
  } catch (error) {
    await router.close();
    throw new Error(`cannot listen on ${host}:${port} (--listen, --port): ${(error as Error).message}`);
  }
  let fatal: Error | null = null;
  let requestStop: (reason: string) => void = () => {};
  let threads: RouterThreads | undefined;
  try {
    threads =
      threadCount === 1
        ? undefined
        : await RouterThreads.start({
            threads: threadCount,
            config,
            host,
            port: server.port,
            maxConnections: flags["max-connections"] as number,
            maxItemBytes: flags["max-item-size"] as number,
            limits: budget.limits,
            tls: security.tls,
            authPasswords: security.authPasswords,
            verbosity: flags.verbose as number,
            ...(sasl === undefined ? {} : { sasl }),
            onDelete: aggregate?.bus === undefined ? null : publishDeleteOf(aggregate.bus),
            onHealthChange: logHealth,
            onFatal: (error) => {
              fatal = error;
              requestStop(error.message);
            },
          });
  } catch (error) {
    await server.stop(0);
    await router.close();
    throw error;
  }
  // Readiness and /metrics see every thread: a destination is down if any thread has it down (TKO).
  const readyView = () =>
    threads === undefined ? router.current() : withThreadHealth(router.current(), threads);
  let http: ReturnType<typeof startHttpFromFlags>;
  try {
    http = startHttpFromFlags("router", flags, host, () => ({
      backend: budgetedBackend(
        routeBackend(() => router.current().root, { countersPrefix: "http" }),
        budget,
      ),
      ready: () => routerReady(readyView),
      registry: threads === undefined ? registry : new ThreadsRegistry(registry, threads),
      maxValueBytes: flags["max-item-size"] as number,
      ...security,
    }));
  } catch (error) {
    await Promise.all([server.stop(0), threads?.stop(0)]);
    await router.close();
    throw error;
  }
  let grpc: Awaited<ReturnType<typeof startGrpcFromFlags>>;
  try {
    grpc = await startGrpcFromFlags("router", flags, host, () => ({
      backend: budgetedBackend(
        routeBackend(() => router.current().root, { countersPrefix: "grpc" }),
        budget,
      ),
      ready: () => routerReady(readyView),
      ...security,
    }));
    if (grpc !== null) grpcMetrics(registry, grpc);
  } catch (error) {
    await Promise.all([server.stop(0), threads?.stop(0), http?.stop(true)]);
    await router.close();
    throw error;
  }
  const pools = [...router.current().pools].map(([name, pool]) => `${name}: ${pool.destinations.length}`);
  // Pools with discovery: etcd get their servers from etcd; every member change recomposes the
  // configuration and reloads the router (pool-discovery.ts).
  const discovery = new PoolDiscovery(
    (composed) => {
      router.reload(composed);
      const sizes = [...router.current().pools].map(([name, pool]) => `${name}: ${pool.destinations.length}`);
      reloadThreads(threads, composed).then(
        () => console.log(`gravity router: membership changed (pools ${sizes.join(", ")})`),
        (error: Error) => console.error(`gravity router: membership changed: ${error.message}`),
      );
    },
    (line) => console.error(`gravity router: etcd: ${line}`),
  );
  discoveryMetrics(registry, () => discovery.following());
  if (PoolDiscovery.needed(config)) discovery.update(config);

  // The main thread builds its tree first: a config it cannot build reaches no worker. With
  // discovery, the composed config reaches the workers from the discovery callback above.
  const reload = (why: string, next: RouterConfig) => {
    try {
      if (threadCount > 1 && next.spool !== undefined)
        throw new UsageError(spoolWithThreads(file, threadCount));
      if (PoolDiscovery.needed(next)) discovery.update(next);
      else {
        router.reload(next);
        void discovery.stop();
      }
    } catch (error) {
      console.error(`gravity router: ${why}: keeping the previous config: ${(error as Error).message}`);
      return;
    }
    reloadThreads(threads, PoolDiscovery.needed(next) ? undefined : next).then(
      () => console.log(`gravity router: ${why}: reloaded ${file}`),
      (error: Error) => console.error(`gravity router: ${why}: ${error.message}`),
    );
  };
  const reject = (why: string, error: Error) =>
    console.error(`gravity router: ${why}: keeping the previous config: ${error.message}`);
  const watch = watchConfig(
    file,
    (next, why) => reload(why, next),
    (error, why) => reject(why, error),
  );
  const stopWatching = () => watch.stop();
  // SIGHUP reads the file now; one the watch has already applied is not reloaded (or logged) again.
  process.on("SIGHUP", () => {
    if (!watch.check("SIGHUP")) console.log(`gravity router: SIGHUP: ${file} unchanged, nothing to reload`);
  });

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (reason: string) => {
      if (stopping) {
        console.error(`gravity router: ${reason} again, exiting now`);
        resolve(1);
        return;
      }
      stopping = true;
      console.log(`gravity router: ${reason}, stopping`);
      stopWatching();
      Promise.all([
        server.stop(STOP_GRACE_MS),
        threads?.stop(STOP_GRACE_MS),
        http?.stop(true),
        grpc?.close(),
        discovery.stop(),
      ])
        .then(() => router.close())
        .then(() => aggregate?.close())
        .then(() => spool?.close())
        .then(() => nats?.context.link.close())
        .then(
          () => resolve(fatal === null ? 0 : 1),
          () => resolve(1),
        );
    };
    requestStop = stop;
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // Printed once every signal has its handler: whoever waits for this line may signal at once.
    console.log(
      `gravity router listening on ${host}:${server.port} (config ${file}; pools ${pools.join(", ")}; threads ${threadCount})`,
    );
    announceMemcachedPort("router", host, security, sasl !== undefined || security.authPasswords !== null);
  });
}

// The load limits of the --max-*inflight and --max-*buffered-bytes flags.
function loadLimits(flags: FlagValues): LoadLimits {
  return {
    maxInflight: flags["max-inflight"] as number,
    maxBufferedBytes: flags["max-buffered-bytes"] as number,
    maxClientInflight: flags["max-client-inflight"] as number,
    maxClientBufferedBytes: flags["max-client-buffered-bytes"] as number,
  };
}

function logHealth(thread: number, destination: string, down: boolean, reason?: string): void {
  const where = thread === 0 ? "" : `thread ${thread}: `;
  const change = down ? `marked down (TKO)${reason === undefined ? "" : `: ${reason}`}` : "is back up";
  console.log(`gravity router: ${where}${destination} ${change}`);
}

// Opens the config's delete spool; says what opening dropped and why, and what waits for replay.
async function openSpool(config: RouterConfig): Promise<DeleteSpool | undefined> {
  if (config.spool === undefined) return undefined;
  const spool = await DeleteSpool.open({
    ...config.spool,
    log: (line) => console.error(`gravity router: ${line}`),
  });
  for (const recovery of spool.recovered) console.error(`gravity router: ${describeRecovery(recovery)}`);
  if (spool.destinations().length > 0)
    console.log(`gravity router: delete spool holds deletes for ${spool.destinations().join(", ")}`);
  return spool;
}

// The delete spool's log files belong to one process and one route tree: deletes spooled by one
// thread would not hold back another thread's reads of the same leaf (spooling-sender.ts).
function spoolWithThreads(file: string, threads: number): string {
  return `--threads: a delete spool (spool: in ${file}) needs --threads 1, got ${threads}`;
}

// Binds `port` without reusePort and releases it: throws if another process holds it; port 0
// becomes the free port the kernel picked, which every thread then shares.
function probePort(host: string, port: number): number {
  const probe = Bun.listen({ hostname: host, port, socket: { data() {} } });
  const bound = probe.port;
  probe.stop(true);
  return bound;
}

// Sends `config` to every worker (none: nothing to do); resolves once each has swapped.
async function reloadThreads(threads: RouterThreads | undefined, config: RouterConfig | undefined) {
  if (threads !== undefined && config !== undefined) await threads.reload(config);
}

// The main thread's pools, with every destination that some worker has marked down shown down.
function withThreadHealth(state: RouterState, threads: RouterThreads): RouterStateView {
  const pools = new Map<string, { destinations: DestinationView[] }>();
  for (const [name, pool] of state.pools) {
    pools.set(name, {
      destinations: pool.destinations.map((destination) => ({
        name: destination.name,
        down: destination.down || threads.downAnywhere(destination.name),
        inFlightCount: destination.inFlightCount,
      })),
    });
  }
  return { pools };
}

// The config's `listen: host:port`, if any.
function splitListen(config: RouterConfig): [string | undefined, number | undefined] {
  return [config.listen?.host, config.listen?.port];
}

// NATS, when the config has a nats section: one link for the transport, the ingress and the bus.
// A server that refuses the configured credentials ends the start with its reason.
async function openNats(config: RouterConfig): Promise<{ context: NatsContext } | undefined> {
  if (config.nats === undefined) return undefined;
  const link = await NatsLink.openAccepted({
    servers: config.nats.servers,
    name: "gravity-router",
    credentials: config.nats.credentials,
    onStatus: (status, server, reason) =>
      console.log(`gravity router: ${describeNatsStatus(status, server, reason)}`),
  });
  return { context: { link, prefix: config.nats.prefix } };
}

interface Aggregate {
  bus: InvalidationBus | undefined;
  close(): Promise<void>;
}

// The original interface on NATS (ingress) and multi-cluster deletes (invalidation bus).
function serveAggregate(
  nats: { context: NatsContext },
  config: RouterConfig,
  state: () => RouterState,
): Aggregate {
  const { link, prefix } = nats.context;
  const ingress = config.nats?.ingress
    ? serveIngress({
        link,
        prefix,
        route: (request, pool) =>
          state().pools.has(pool)
            ? state().root.route(request)
            : Promise.reject(new Error(`unknown pool ${JSON.stringify(pool)}`)),
      })
    : undefined;
  const invalidation = config.nats?.invalidation;
  const bus =
    invalidation === undefined
      ? undefined
      : new InvalidationBus({
          link,
          subject: invalidation.subject,
          clusterId: invalidation.clusterId,
          apply: async (key) => {
            await state().root.route(ingressDelete(key));
          },
          onError: (_key, error) => console.error(`gravity router: invalidation: ${error.message}`),
        });
  return {
    bus,
    async close() {
      await Promise.all([ingress?.close(), bus?.close()]);
    },
  };
}

// Publishing must not fail the client's delete: NATS down is logged, and the local delete goes on.
function publishDeleteOf(bus: InvalidationBus): (key: Uint8Array) => void {
  return (key) => {
    try {
      bus.publishDelete(key);
    } catch (error) {
      console.error(`gravity router: invalidation not published: ${(error as Error).message}`);
    }
  };
}

// --check-config: load and validate as a start would (a ConfigError or UsageError exits 2 with the
// file, the field and what was expected), print what the file configures, start nothing.
function checkConfig(file: string, threads: number): number {
  const config = loadConfig(file);
  if (threads > 1 && config.spool !== undefined) throw new UsageError(spoolWithThreads(file, threads));
  const pools = [...config.pools].map(([name, pool]) => {
    const count = pool.servers.length;
    const members = pool.discovery === "etcd" ? "etcd" : `${count} server${count === 1 ? "" : "s"}`;
    return `${name} (${members}, ${pool.transport})`;
  });
  console.log(`gravity router: ${file}: valid; pools ${pools.join(", ")}; route ${config.route.type}`);
  return 0;
}
