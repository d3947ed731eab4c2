// Consistent hashing over a pool (mcrouter's HashRoute over a PoolRoute): each key goes to the one
// leaf its pool's ring picks. A leaf that is down fails fast (DestinationDownError); a failover or
// gutter route above decides what happens next.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import type { Sender } from "../../transport/transport.ts";
import { routingKey } from "../forward.ts";
import type { Pool } from "../pool.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";

export class ShardedRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[] = [];

  constructor(private readonly pool: Pool) {
    this.routeName = `sharded(pool=${pool.name})`;
  }

  route(request: Request): Promise<Reply> {
    const destination = this.destinationOf(request);
    if (destination === undefined) return Promise.reject(new Error(`pool ${this.pool.name} has no servers`));
    return destination.send(request);
  }

  traverse(request: Request, visit: RouteVisitor): void {
    const destination = this.destinationOf(request);
    if (destination !== undefined) visit(destination, "shard");
  }

  private destinationOf(request: Request): Sender | undefined {
    return this.pool.destinations[this.pool.pick(routingKey(request))];
  }
}
