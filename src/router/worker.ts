// A listener thread of a router started with --threads N: its own route tree, destinations and
// health (TKO), built from the config the main thread sends, on the main thread's port (SO_REUSEPORT).
//
//   main ──start(config)───> Router + listener ─────────────> listening
//        ──reload(config)──> router.reload ─────────────────> reloaded
//        ──metrics─────────> this thread's registry as JSON ─> metrics   (main aggregates /metrics)
//        <─────────────────── delete(key): a client's delete   (main publishes it on the bus)
//        <─────────────────── health(destination, down)        (main's readiness and logs)
//        ──stop(graceMs)───> answer what was read, close ────> stopped
//
// As in mcrouter's proxies, each thread has its own connections to every leaf and its own TKO:
// a leaf that fails is marked down by each thread that sends to it.
import { createRegistry, errorKind, type Registry, routerMetrics } from "../metrics/registry.ts";
import { describeNatsStatus, NatsLink } from "../transport/nats-link.ts";
import { MEMCACHED_VERSION, VERSION } from "../version.ts";
import { type RouteHandle, unavailableRoute } from "./handles/handle.ts";
import { LoadBudget } from "./load-budget.ts";
import { Router } from "./router.ts";
import { RouterCounters, type RouterServer, type RouterState, startRouterServer } from "./server.ts";
import type { FromRouterWorker, ToRouterWorker } from "./thread-messages.ts";

declare const self: Worker;

interface Running {
  router: Router;
  server: RouterServer;
  registry: Registry;
  link: NatsLink | undefined;
}

let running: Running | null = null;

function post(message: FromRouterWorker): void {
  self.postMessage(message);
}

// A route for the moment before the router exists (never used to answer a request).
const NO_ROUTE: RouteHandle = unavailableRoute(new Error("the router is starting"));

function start(message: Extract<ToRouterWorker, { type: "start" }>): Running {
  const { config, thread } = message;
  const counters = new RouterCounters();
  // The main thread's registry has the process metrics and build info; this one only the router's.
  const registry = createRegistry({ role: "router", version: VERSION, defaultMetrics: false });
  let current: () => RouterState = () => ({ root: NO_ROUTE, pools: new Map() });
  const metrics = routerMetrics(registry, { state: () => current(), counters });
  const link =
    config.nats === undefined
      ? undefined
      : NatsLink.open({
          servers: config.nats.servers,
          name: `gravity-router-${thread}`,
          credentials: config.nats.credentials,
          onStatus: (status, server, reason) =>
            console.log(`gravity router: thread ${thread}: ${describeNatsStatus(status, server, reason)}`),
        });
  const router = new Router(
    config,
    counters,
    {
      onHealthChange: (destination, down, reason) =>
        post({
          type: "health",
          destination: destination.name,
          down,
          ...(reason === undefined ? {} : { reason }),
        }),
      onReply: (destination, ms) => metrics.observeDestination(destination.name, ms / 1000),
      onError: (destination, error) => metrics.countDestinationError(destination.name, errorKind(error)),
    },
    link === undefined || config.nats === undefined ? undefined : { link, prefix: config.nats.prefix },
  );
  current = () => router.current();
  let server: RouterServer;
  try {
    server = startRouterServer({
      host: message.host,
      port: message.port,
      reusePort: true,
      maxConnections: message.maxConnections,
      maxItemBytes: message.maxItemBytes,
      budget: new LoadBudget(message.limits),
      tls: message.tls,
      authPasswords: message.authPasswords,
      verbosity: { level: message.verbosity },
      ...(message.sasl === undefined ? {} : { sasl: message.sasl }),
      version: MEMCACHED_VERSION,
      state: () => router.current(),
      counters,
      metrics,
      extraStats: [
        ["threads", String(message.threads)],
        ["thread", String(thread)],
      ],
      ...(message.forwardDeletes ? { onDelete: (key: Uint8Array) => post({ type: "delete", key }) } : {}),
    });
  } catch (error) {
    void router.close();
    void link?.close();
    throw error;
  }
  return { router, server, registry, link };
}

async function stop(graceMs: number): Promise<void> {
  if (running === null) return;
  const { router, server, link } = running;
  running = null;
  await server.stop(graceMs);
  await router.close();
  await link?.close();
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

self.onmessage = async (event: MessageEvent<ToRouterWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "start":
      try {
        running = start(message);
        post({ type: "listening", port: running.server.port });
      } catch (error) {
        post({ type: "error", message: reasonOf(error) });
      }
      return;
    case "reload":
      try {
        running?.router.reload(message.config);
        post({ type: "reloaded", id: message.id });
      } catch (error) {
        post({ type: "error", id: message.id, message: reasonOf(error) });
      }
      return;
    case "metrics":
      try {
        const metrics = running === null ? [] : await running.registry.getMetricsAsJSON();
        post({ type: "metrics", id: message.id, metrics });
      } catch (error) {
        post({ type: "error", id: message.id, message: reasonOf(error) });
      }
      return;
    case "stop":
      try {
        await stop(message.graceMs);
        post({ type: "stopped", id: message.id });
      } catch (error) {
        post({ type: "error", id: message.id, message: reasonOf(error) });
      }
      return;
  }
};
