// Consistent hashing over a pool (mcrouter's HashRoute over a PoolRoute): each key goes to the one
// leaf its pool's ring picks. A leaf that is down fails fast (DestinationDownError); a failover or
// gutter route above decides what happens next.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import { routingKey, wireBytes } from "../forward.ts";
import type { Pool } from "../pool.ts";
import type { RouteHandle } from "./handle.ts";

export class ShardedRoute implements RouteHandle {
  constructor(private readonly pool: Pool) {}

  route(request: Request): Promise<Reply> {
    const destination = this.pool.destinations[this.pool.pick(routingKey(request))];
    if (destination === undefined) return Promise.reject(new Error(`pool ${this.pool.name} has no servers`));
    return destination.send(wireBytes(request), request.expect, request.affinity);
  }
}
