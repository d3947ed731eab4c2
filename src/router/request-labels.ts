// The `op` and `result` labels of gravity_router_requests_total for a protocol request and its
// reply. The one file of src/metrics that knows the protocol's types: the router's server calls
// it (it may move to src/router/ if metrics should stay below protocol).

import type { RequestOp, RequestResult } from "../metrics/names.ts";
import { type Reply, ReplyType } from "../protocol/reply.ts";
import { OP_COMMANDS, Op } from "../protocol/request.ts";

/** The memcached command name of `op`. */
export function opLabel(op: Op): RequestOp {
  return OP_COMMANDS[op] as RequestOp;
}

/**
 * What `reply` to a request of `op` means: hit or miss for reads (a get of several keys is a hit
 * if any key hit), ok for a success without a value, or the refusal or error it carries. A
 * request that got no reply at all (the route rejected) is "failed".
 */
export function resultLabel(op: Op, reply: Reply): RequestResult {
  switch (reply.type) {
    case ReplyType.Values:
      return (reply.items?.length ?? 0) > 0 ? "hit" : "miss";
    case ReplyType.MetaValue:
      return "hit";
    case ReplyType.End:
    case ReplyType.MetaMiss:
      return "miss";
    case ReplyType.MetaHeader:
      // mg without v answers HD on a hit; ms/md/ma answer HD on success.
      return op === Op.MetaGet ? "hit" : "ok";
    case ReplyType.NotStored:
    case ReplyType.MetaNotStored:
      return "not_stored";
    case ReplyType.Exists:
    case ReplyType.MetaExists:
      return "exists";
    case ReplyType.NotFound:
    case ReplyType.MetaNotFound:
      return "not_found";
    case ReplyType.Error:
    case ReplyType.ClientError:
      return "client_error";
    case ReplyType.ServerError:
      return "server_error";
    default:
      return "ok";
  }
}
