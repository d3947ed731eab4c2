// Configuration -> route tree: one Pool per configured pool, one handle per route node.
//
//   route: prefix ─┬─ "user:" -> replicated(pool replicas)
//                  └─ "*"     -> sharded(pool main)

import type { Sender, SenderHooks } from "../transport/transport.ts";
import type { LoaderConfig, PoolConfig, RouteConfig, RouterConfig } from "./config.ts";
import { isFailure } from "./forward.ts";
import { FailoverRoute } from "./handles/failover.ts";
import { GutterRoute } from "./handles/gutter.ts";
import type { RouteHandle } from "./handles/handle.ts";
import { LoaderRoute } from "./handles/loader.ts";
import { OperationRoute } from "./handles/operation.ts";
import { PrefixRoute } from "./handles/prefix.ts";
import { ReplicatedRoute } from "./handles/replicated.ts";
import { ShardedRoute } from "./handles/sharded.ts";
import { WarmUpRoute } from "./handles/warmup.ts";
import { HttpOrigin } from "./loader/http-origin.ts";
import type { Origin } from "./loader/origin.ts";
import { SqlOrigin } from "./loader/sql-origin.ts";
import { SqliteOrigin } from "./loader/sqlite-origin.ts";
import { type NatsContext, Pool } from "./pool.ts";
import type { RouterCounters, RouterState } from "./server.ts";
import type { DeleteSpool } from "./spool.ts";

/**
 * Builds the pools and the route tree of `config`. `reusable` maps destination keys (pool.ts) to
 * open destinations of the previous configuration; each one used is taken out of the map.
 */
export function buildTree(
  config: RouterConfig,
  reusable: Map<string, Sender>,
  counters: RouterCounters,
  hooks: SenderHooks = {},
  nats?: NatsContext,
  spool?: DeleteSpool,
): RouterState {
  const pools = new Map<string, Pool>();
  for (const [name, spec] of config.pools) {
    pools.set(
      name,
      new Pool(
        name,
        spec as PoolConfig,
        (key) => {
          const destination = reusable.get(key);
          reusable.delete(key);
          return destination;
        },
        hooks,
        nats,
        spool,
      ),
    );
  }
  const origins = new Map<string, Origin>();
  for (const [name, loader] of config.loaders ?? []) origins.set(name, makeOrigin(name, loader));
  return { root: buildRoute(config.route, pools, counters, origins), pools, origins };
}

// An origin for a `loaders` entry (src/router/loader/).
function makeOrigin(name: string, config: LoaderConfig): Origin {
  switch (config.type) {
    case "http":
      return new HttpOrigin({
        urlTemplate: config.url,
        headers: config.headers,
        maxValueBytes: config.maxValueBytes,
      });
    case "sqlite":
      return new SqliteOrigin({ path: config.path, query: config.query });
    case "sql":
      return new SqlOrigin({ url: config.url, query: config.query, maxConnections: config.maxConnections });
    default:
      throw new Error(`loader ${name}: unknown type`);
  }
}

function buildRoute(
  route: RouteConfig,
  pools: ReadonlyMap<string, Pool>,
  counters: RouterCounters,
  origins: ReadonlyMap<string, Origin>,
): RouteHandle {
  const pool = (name: string): Pool => {
    const found = pools.get(name);
    if (found === undefined)
      throw new Error(`route names pool ${JSON.stringify(name)}, which is not configured`);
    return found;
  };
  switch (route.type) {
    case "sharded":
      return new ShardedRoute(pool(route.pool));
    case "replicated":
      return new ReplicatedRoute(pool(route.pool), {
        writes: route.writes,
        writeQuorum: route.writeQuorum,
        reads: route.reads,
        hedge: route.hedge,
        onDown: route.onDown,
        repair: route.repair,
        counters: counters.hedges,
        repairCounters: counters.readRepair,
        onBackgroundResult: (result) => {
          if (result instanceof Error || isFailure(result)) counters.backgroundWrites.failed++;
          else counters.backgroundWrites.ok++;
        },
      });
    case "failover":
      return new FailoverRoute(route.children.map((child) => buildRoute(child, pools, counters, origins)));
    case "miss-failover":
      return new FailoverRoute(
        route.children.map((child) => buildRoute(child, pools, counters, origins)),
        true,
      );
    case "prefix": {
      const routes = new Map<string, RouteHandle>();
      for (const [prefix, child] of route.routes)
        routes.set(prefix, buildRoute(child, pools, counters, origins));
      return new PrefixRoute(routes, buildRoute(route.fallback, pools, counters, origins));
    }
    case "loader": {
      const origin = origins.get(route.loader);
      if (origin === undefined)
        throw new Error(`route names loader ${JSON.stringify(route.loader)}, which is not configured`);
      return new LoaderRoute(buildRoute(route.route, pools, counters, origins), origin, {
        ttlSeconds: route.ttlSeconds,
        negativeTtlSeconds: route.negativeTtlSeconds,
        timeoutMs: route.timeoutMs,
        waitMs: route.waitMs,
        leases: route.leases,
        counters: counters.loader,
      });
    }
    case "gutter":
      return new GutterRoute(pool(route.pool), new ShardedRoute(pool(route.gutter)), {
        ttlSeconds: route.ttlSeconds,
        counters: counters.gutter,
      });
    case "warmup":
      return new WarmUpRoute(
        buildRoute(route.cold, pools, counters, origins),
        buildRoute(route.warm, pools, counters, origins),
        { ttlSeconds: route.ttlSeconds, counters: counters.warmup },
      );
    case "operation": {
      const writes = buildRoute(route.writes, pools, counters, origins);
      const deletes =
        route.deletes === route.writes ? writes : buildRoute(route.deletes, pools, counters, origins);
      return new OperationRoute(buildRoute(route.reads, pools, counters, origins), writes, deletes);
    }
  }
}
