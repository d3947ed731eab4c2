// The router is a tree of route handles, each `route(request) -> reply`, composed from the
// configuration as mcrouter composes its RouteHandles. A handle knows nothing of sockets: leaves
// are reached through Destinations, clients through the router's server.
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";

/** Routes one single-key request (multi-key gets are split before they reach a handle). */
export interface RouteHandle {
  /**
   * Resolves with the reply the client should see (which may be a miss or an error reply from a
   * leaf); rejects when no destination could answer (the server turns that into SERVER_ERROR).
   */
  route(request: Request): Promise<Reply>;
}
