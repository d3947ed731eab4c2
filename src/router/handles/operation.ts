// The operation selector (mcrouter's OperationSelectorRoute): reads, writes and deletes may take
// different routes (for example, reads hedged across replicas, deletes to every cluster).
import type { Reply } from "../../protocol/reply.ts";
import { OpKind, type Request } from "../../protocol/request.ts";
import type { RouteHandle } from "./handle.ts";

export class OperationRoute implements RouteHandle {
  constructor(
    private readonly reads: RouteHandle,
    private readonly writes: RouteHandle,
    private readonly deletes: RouteHandle = writes,
  ) {}

  route(request: Request): Promise<Reply> {
    switch (request.kind) {
      case OpKind.Read:
        return this.reads.route(request);
      case OpKind.Delete:
        return this.deletes.route(request);
      default:
        return this.writes.route(request);
    }
  }
}
