// The router is a tree of route handles, each `route(request) -> reply`, composed from the
// configuration as mcrouter composes its RouteHandles (lib/routes: routeName, traverse, route). A
// handle knows nothing of sockets: leaves are reached through Senders, clients through the
// router's server. Every handle has a name and its children, so the tree can be printed and
// walked, and `traverse` answers where a request would go without sending it.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import type { Sender } from "../../transport/transport.ts";

/**
 * Called once per destination a request would reach, with what the request does there: "shard",
 * "read", "write", "hedge", "failover read", "gutter shard"... (a parent prefixes its children's).
 */
export type RouteVisitor = (destination: Sender, role: string) => void;

/** Routes one single-key request (multi-key gets are split before they reach a handle). */
export interface RouteHandle {
  /** The handle's kind and settings, e.g. `sharded(pool=main)`. */
  readonly routeName: string;
  /** The handles below this one, in configuration order. */
  readonly children: readonly RouteHandle[];
  /**
   * Resolves with the reply the client should see (which may be a miss or an error reply from a
   * leaf); rejects when no destination could answer (the server turns that into SERVER_ERROR).
   */
  route(request: Request): Promise<Reply>;
  /** Visits the destinations `request` would reach now, in the order they would be tried. */
  traverse(request: Request, visit: RouteVisitor): void;
}

/** A visitor that prefixes the role its children report (`failover`, `gutter`, `warm`...). */
export function withRole(visit: RouteVisitor, prefix: string): RouteVisitor {
  return (destination, role) => visit(destination, `${prefix} ${role}`);
}

/** The tree under `root`, one handle per line, children indented by two spaces. */
export function describeTree(root: RouteHandle, indent = ""): string {
  let text = `${indent}${root.routeName}\n`;
  for (const child of root.children) text += describeTree(child, `${indent}  `);
  return text;
}

/** A handle that answers every request with `error` (a router that is starting has no tree yet). */
export function unavailableRoute(error: Error): RouteHandle {
  return {
    routeName: `unavailable(${error.message})`,
    children: [],
    route: () => Promise.reject(error),
    traverse: () => {},
  };
}
