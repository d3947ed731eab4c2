// `gravity router --config FILE`: a memcached-protocol proxy in front of pools of leaves.

import { routeBackend } from "../cache/backend.ts";
import { UsageError } from "../errors.ts";
import { routerReady } from "../http/readiness.ts";
import { createRegistry, errorKind, routerMetrics } from "../metrics/registry.ts";
import { loadConfig, type RouterConfig } from "../router/config.ts";
import { watchConfig } from "../router/config-watch.ts";
import { type RouteHandle, unavailableRoute } from "../router/handles/handle.ts";
import type { NatsContext } from "../router/pool.ts";
import { PoolDiscovery } from "../router/pool-discovery.ts";
import { Router } from "../router/router.ts";
import { RouterCounters, type RouterState, startRouterServer } from "../router/server.ts";
import { DeleteSpool } from "../router/spool.ts";
import { ingressDelete, serveIngress } from "../transport/nats-ingress.ts";
import { InvalidationBus } from "../transport/nats-invalidation.ts";
import { NatsLink } from "../transport/nats-link.ts";
import { MEMCACHED_VERSION, VERSION } from "../version.ts";
import { FlagKind, type FlagSpec, flagHelp, parseFlags } from "./args.ts";
import { GRPC_FLAGS, startGrpcFromFlags } from "./grpc-flags.ts";
import { HTTP_FLAGS, startHttpFromFlags } from "./http-flags.ts";

export const ROUTER_FLAGS: readonly FlagSpec[] = [
  {
    name: "config",
    kind: FlagKind.String,
    default: "",
    help: "route configuration file (YAML or JSON), required",
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
  ...HTTP_FLAGS,
  ...GRPC_FLAGS,
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
  const file = flags.config as string;
  if (file === "") throw new UsageError("--config: required (a YAML or JSON route configuration file)");
  const config = loadConfig(file);
  const [configHost, configPort] = splitListen(config);
  const host = (flags.listen as string) || configHost || DEFAULT_HOST;
  const flagPort = flags.port as number;
  const port = flagPort >= 0 ? flagPort : (configPort ?? DEFAULT_PORT);

  const counters = new RouterCounters();
  const registry = createRegistry({ role: "router", version: VERSION });
  // Reads the router through a forward reference: the recorder must exist before the router
  // (its destinations report to it), and the router's state before the first scrape.
  let current: () => RouterState = () => ({ root: NO_ROUTE, pools: new Map() });
  const metrics = routerMetrics(registry, { state: () => current(), counters });
  const nats = openNats(config);
  const spool = config.spool === undefined ? undefined : await DeleteSpool.open(config.spool);
  if (spool !== undefined && spool.destinations().length > 0) {
    console.log(`gravity router: delete spool holds deletes for ${spool.destinations().join(", ")}`);
  }
  const router = new Router(
    config,
    counters,
    {
      onHealthChange: (destination, down) =>
        console.log(`gravity router: ${destination.name} ${down ? "marked down (TKO)" : "is back up"}`),
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
      port,
      maxConnections: flags["max-connections"] as number,
      maxItemBytes: flags["max-item-size"] as number,
      version: MEMCACHED_VERSION,
      state: () => router.current(),
      counters,
      metrics,
      ...(aggregate?.bus === undefined ? {} : { onDelete: publishDeleteOf(aggregate.bus) }),
    });
  } catch (error) {
    await router.close();
    throw new Error(`cannot listen on ${host}:${port} (--listen, --port): ${(error as Error).message}`);
  }
  let http: ReturnType<typeof startHttpFromFlags>;
  try {
    http = startHttpFromFlags("router", flags, host, () => ({
      backend: routeBackend(() => router.current().root, { countersPrefix: "http" }),
      ready: () => routerReady(() => router.current()),
      registry,
      maxValueBytes: flags["max-item-size"] as number,
    }));
  } catch (error) {
    await server.stop(0);
    await router.close();
    throw error;
  }
  let grpc: Awaited<ReturnType<typeof startGrpcFromFlags>>;
  try {
    grpc = await startGrpcFromFlags("router", flags, host, () =>
      routeBackend(() => router.current().root, { countersPrefix: "grpc" }),
    );
  } catch (error) {
    await Promise.all([server.stop(0), http?.stop(true)]);
    await router.close();
    throw error;
  }
  const pools = [...router.current().pools].map(([name, pool]) => `${name}: ${pool.destinations.length}`);
  console.log(
    `gravity router listening on ${host}:${server.port} (config ${file}; pools ${pools.join(", ")})`,
  );

  // Pools with discovery: etcd get their servers from etcd; every member change recomposes the
  // configuration and reloads the router (pool-discovery.ts).
  const discovery = new PoolDiscovery(
    (composed) => {
      router.reload(composed);
      const sizes = [...router.current().pools].map(([name, pool]) => `${name}: ${pool.destinations.length}`);
      console.log(`gravity router: membership changed (pools ${sizes.join(", ")})`);
    },
    (line) => console.error(`gravity router: etcd: ${line}`),
  );
  if (PoolDiscovery.needed(config)) discovery.update(config);

  const reload = (why: string, next: RouterConfig) => {
    try {
      if (PoolDiscovery.needed(next)) discovery.update(next);
      else {
        router.reload(next);
        void discovery.stop();
      }
      console.log(`gravity router: ${why}: reloaded ${file}`);
    } catch (error) {
      console.error(`gravity router: ${why}: keeping the previous config: ${(error as Error).message}`);
    }
  };
  const reject = (why: string, error: Error) =>
    console.error(`gravity router: ${why}: keeping the previous config: ${error.message}`);
  const stopWatching = watchConfig(
    file,
    (next) => reload("config file changed", next),
    (error) => reject("config file changed", error),
  );
  process.on("SIGHUP", () => {
    try {
      reload("SIGHUP", loadConfig(file));
    } catch (error) {
      reject("SIGHUP", error instanceof Error ? error : new Error(String(error)));
    }
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
      Promise.all([server.stop(STOP_GRACE_MS), http?.stop(true), grpc?.close(), discovery.stop()])
        .then(() => router.close())
        .then(() => aggregate?.close())
        .then(() => spool?.close())
        .then(() => nats?.context.link.close())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}

// The config's `listen: host:port`, if any.
function splitListen(config: RouterConfig): [string | undefined, number | undefined] {
  return [config.listen?.host, config.listen?.port];
}

// NATS, when the config has a nats section: one link for the transport, the ingress and the bus.
function openNats(config: RouterConfig): { context: NatsContext } | undefined {
  if (config.nats === undefined) return undefined;
  const link = NatsLink.open({
    servers: config.nats.servers,
    name: "gravity-router",
    onStatus: (status, server) => console.log(`gravity router: nats ${status} (${server})`),
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
