// The operation selector (mcrouter's OperationSelectorRoute): reads, writes and deletes may take
// different routes (for example, reads hedged across replicas, deletes to every cluster).
import type { Reply } from "../../protocol/reply.ts";
import { OpKind, type Request } from "../../protocol/request.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";

export class OperationRoute implements RouteHandle {
  readonly routeName = "operation(reads, writes, deletes)";
  readonly children: readonly RouteHandle[];

  constructor(
    private readonly reads: RouteHandle,
    private readonly writes: RouteHandle,
    private readonly deletes: RouteHandle = writes,
  ) {
    this.children = [reads, writes, deletes];
  }

  route(request: Request): Promise<Reply> {
    return this.select(request).route(request);
  }

  traverse(request: Request, visit: RouteVisitor): void {
    this.select(request).traverse(request, visit);
  }

  private select(request: Request): RouteHandle {
    switch (request.kind) {
      case OpKind.Read:
        return this.reads;
      case OpKind.Delete:
        return this.deletes;
      default:
        return this.writes;
    }
  }
}
