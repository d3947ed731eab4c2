// What /readyz asks: true when the process can serve cache requests, else the reason it cannot.
import { native } from "../native/index.ts";

/** Ready, or not with a reason: what startHttpServer's `ready` returns (false means "not ready"). */
export type Readiness = boolean | string;

/** A leaf is ready once its store is configured (the CLI configures it before listening). */
export function leafReady(): Readiness {
  return native.isConfigured() ? true : "store not configured";
}

/** What routerReady reads (src/router/server.ts RouterState fits). */
export interface PoolsView {
  readonly pools: ReadonlyMap<string, { readonly destinations: readonly { readonly down: boolean }[] }>;
}

/**
 * A router is ready while every pool has at least one destination not marked down (TKO); else the
 * reason names the pools with none.
 */
export function routerReady(state: () => PoolsView): Readiness {
  const empty: string[] = [];
  for (const [name, pool] of state().pools) {
    if (!pool.destinations.some((destination) => !destination.down)) empty.push(name);
  }
  if (empty.length === 0) return true;
  return `no destination up in pool${empty.length > 1 ? "s" : ""} ${empty.join(", ")}`;
}
