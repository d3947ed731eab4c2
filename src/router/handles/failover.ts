// Failover (mcrouter's FailoverRoute): try the children in order, moving to the next when one
// fails — a transport error, a timeout, a destination marked down, or a SERVER_ERROR reply.
// Miss-failover (MissFailoverRoute) also moves on from a miss, and answers with the first hit or
// the last child's reply.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import { isFailure, isMiss } from "../forward.ts";
import { type RouteHandle, type RouteVisitor, withRole } from "./handle.ts";

export class FailoverRoute implements RouteHandle {
  readonly routeName: string;

  constructor(
    readonly children: readonly RouteHandle[],
    private readonly onMiss = false,
  ) {
    if (children.length === 0) throw new RangeError("failover needs at least one child");
    this.routeName = onMiss ? "miss-failover" : "failover";
  }

  traverse(request: Request, visit: RouteVisitor): void {
    this.children.forEach((child, index) => {
      child.traverse(request, index === 0 ? visit : withRole(visit, "failover"));
    });
  }

  async route(request: Request): Promise<Reply> {
    let miss: Reply | undefined; // a miss is an answer: returned if nothing better comes
    let failed: Reply | undefined; // the last SERVER_ERROR reply
    let error: unknown; // the last transport error
    for (const child of this.children) {
      try {
        const reply = await child.route(request);
        if (isFailure(reply)) failed = reply;
        else if (this.onMiss && isMiss(reply)) miss = reply;
        else return reply;
      } catch (caught) {
        error = caught;
      }
    }
    if (miss !== undefined) return miss;
    if (failed !== undefined) return failed;
    throw error;
  }
}
