// The prefix selector (mcrouter's PrefixSelectorRoute): the longest configured prefix of the key
// picks the route; "*" is the default for keys no prefix matches.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import { routingKey } from "../forward.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";

export class PrefixRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[];
  private readonly prefixes: { bytes: Uint8Array; route: RouteHandle }[];

  constructor(
    routes: ReadonlyMap<string, RouteHandle>,
    private readonly fallback: RouteHandle,
  ) {
    this.routeName = `prefix(${[...routes.keys(), "*"].map((prefix) => JSON.stringify(prefix)).join(", ")})`;
    this.children = [...routes.values(), fallback];
    const utf8 = new TextEncoder();
    this.prefixes = [...routes]
      .map(([prefix, route]) => ({ bytes: utf8.encode(prefix), route }))
      .sort((a, b) => b.bytes.length - a.bytes.length); // longest first: the first match wins
  }

  route(request: Request): Promise<Reply> {
    return this.select(routingKey(request)).route(request);
  }

  traverse(request: Request, visit: RouteVisitor): void {
    this.select(routingKey(request)).traverse(request, visit);
  }

  /** The route for a key: the longest matching prefix's, else the default. */
  select(key: Uint8Array): RouteHandle {
    for (const { bytes, route } of this.prefixes) {
      if (bytes.length <= key.length && startsWith(key, bytes)) return route;
    }
    return this.fallback;
  }
}

function startsWith(key: Uint8Array, prefix: Uint8Array): boolean {
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}
