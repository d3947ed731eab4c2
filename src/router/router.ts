// A running router: the current route tree and pools, and reloading them. A reload builds the new
// tree first (reusing every destination whose connection settings did not change, so their
// sockets stay open), swaps it in between two requests, and closes the destinations nobody uses
// any more once their in-flight requests had time to finish.

import type { Sender, SenderHooks } from "../transport/transport.ts";
import type { RouterConfig } from "./config.ts";
import type { NatsContext } from "./pool.ts";
import type { RouterCounters, RouterState } from "./server.ts";
import type { DeleteSpool } from "./spool.ts";
import { buildTree } from "./tree.ts";

/** How long a destination dropped by a reload keeps serving what it already has in flight. */
const RETIRE_GRACE_MS = 5000;

export class Router {
  private state: RouterState;
  private readonly retiring = new Set<ReturnType<typeof setTimeout>>();
  private readonly retired = new Set<Sender>(); // dropped by a reload, not closed yet

  constructor(
    config: RouterConfig,
    private readonly counters: RouterCounters,
    private readonly hooks: SenderHooks = {},
    private readonly nats?: NatsContext,
    private readonly spool?: DeleteSpool,
  ) {
    this.state = buildTree(config, new Map(), counters, hooks, nats, spool);
  }

  /** The tree requests are routed with now. */
  current(): RouterState {
    return this.state;
  }

  /** Replaces the tree with one built from `config`; throws (keeping the old tree) if it cannot be built. */
  reload(config: RouterConfig): void {
    const reusable = new Map<string, Sender>();
    for (const pool of this.state.pools.values()) {
      for (const [key, destination] of pool.destinationKeys()) reusable.set(key, destination);
    }
    const before = new Set(reusable.values());
    const next = buildTree(config, reusable, this.counters, this.hooks, this.nats, this.spool);
    const previousOrigins = this.state.origins;
    this.state = next;
    // Origins are rebuilt with the tree; the old ones close once their loads had time to finish.
    if (previousOrigins !== undefined && previousOrigins.size > 0) {
      const timer = setTimeout(() => {
        this.retiring.delete(timer);
        for (const origin of previousOrigins.values()) void origin.close();
      }, RETIRE_GRACE_MS);
      this.retiring.add(timer);
    }
    const kept = new Set<Sender>();
    for (const pool of next.pools.values())
      for (const destination of pool.destinations) kept.add(destination);
    const dropped = [...before].filter((destination) => !kept.has(destination));
    if (dropped.length === 0) return;
    for (const destination of dropped) this.retired.add(destination);
    const timer = setTimeout(() => {
      this.retiring.delete(timer);
      for (const destination of dropped) {
        this.retired.delete(destination);
        void destination.close();
      }
    }, RETIRE_GRACE_MS);
    this.retiring.add(timer);
  }

  /** Closes every destination (current and retiring). */
  async close(): Promise<void> {
    for (const origin of this.state.origins?.values() ?? []) await origin.close();
    for (const timer of this.retiring) clearTimeout(timer);
    this.retiring.clear();
    const all = new Set<Sender>(this.retired);
    this.retired.clear();
    for (const pool of this.state.pools.values())
      for (const destination of pool.destinations) all.add(destination);
    await Promise.all([...all].map((destination) => destination.close()));
  }
}
