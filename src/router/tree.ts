// Configuration -> route tree: one Pool per configured pool, one handle per route node.
//
//   route: prefix ─┬─ "user:" -> replicated(pool replicas)
//                  └─ "*"     -> sharded(pool main)

import type { Sender } from "../transport/transport.ts";
import type { PoolConfig, RouteConfig, RouterConfig } from "./config.ts";
import type { DestinationHooks } from "./destination.ts";
import { FailoverRoute } from "./handles/failover.ts";
import { GutterRoute } from "./handles/gutter.ts";
import type { RouteHandle } from "./handles/handle.ts";
import { OperationRoute } from "./handles/operation.ts";
import { PrefixRoute } from "./handles/prefix.ts";
import { ReplicatedRoute } from "./handles/replicated.ts";
import { ShardedRoute } from "./handles/sharded.ts";
import { WarmUpRoute } from "./handles/warmup.ts";
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
  hooks: DestinationHooks = {},
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
  return { root: buildRoute(config.route, pools, counters), pools };
}

function buildRoute(
  route: RouteConfig,
  pools: ReadonlyMap<string, Pool>,
  counters: RouterCounters,
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
        reads: route.reads,
        hedge: route.hedge,
        onDown: route.onDown,
        counters: counters.hedges,
      });
    case "failover":
      return new FailoverRoute(route.children.map((child) => buildRoute(child, pools, counters)));
    case "miss-failover":
      return new FailoverRoute(
        route.children.map((child) => buildRoute(child, pools, counters)),
        true,
      );
    case "prefix": {
      const routes = new Map<string, RouteHandle>();
      for (const [prefix, child] of route.routes) routes.set(prefix, buildRoute(child, pools, counters));
      return new PrefixRoute(routes, buildRoute(route.fallback, pools, counters));
    }
    case "gutter":
      return new GutterRoute(pool(route.pool), new ShardedRoute(pool(route.gutter)), {
        ttlSeconds: route.ttlSeconds,
      });
    case "warmup":
      return new WarmUpRoute(
        buildRoute(route.cold, pools, counters),
        buildRoute(route.warm, pools, counters),
        {
          ttlSeconds: route.ttlSeconds,
        },
      );
    case "operation": {
      const writes = buildRoute(route.writes, pools, counters);
      const deletes = route.deletes === route.writes ? writes : buildRoute(route.deletes, pools, counters);
      return new OperationRoute(buildRoute(route.reads, pools, counters), writes, deletes);
    }
  }
}
