// What a failed call answers: each error a backend or the key checks throw, as a gRPC status.
//
//   InvalidRequestError (bad group, key, count)    INVALID_ARGUMENT
//   UnknownGroupError                              NOT_FOUND "unknown group"
//   SERVER_ERROR object too large for cache        INVALID_ARGUMENT (retrying cannot help)
//   SERVER_ERROR out of memory ...                 RESOURCE_EXHAUSTED
//   CLIENT_ERROR ...                               INVALID_ARGUMENT
//   OverloadedError (queues full)                  RESOURCE_EXHAUSTED
//   TimeoutError                                   DEADLINE_EXCEEDED
//   ConnectionError, DestinationDownError,
//     NoHealthyDestinationError                    UNAVAILABLE (a retry may reach another leaf)
//   StatusError                                    its own code (e.g. GroupCache.Get's miss: NOT_FOUND)
//   anything else (ERROR, ProtocolError, bugs)     INTERNAL
import { status as Status, type StatusObject } from "@grpc/grpc-js";
import { TOO_LARGE_TEXT } from "../cache/backend.ts";
import {
  ConnectionError,
  DestinationDownError,
  GravityError,
  InvalidRequestError,
  NoHealthyDestinationError,
  OverloadedError,
  ServerError,
  ServerErrorKind,
  TimeoutError,
} from "../errors.ts";
import { UnknownGroupError } from "./item-key.ts";

export type CallStatus = Pick<StatusObject, "code" | "details">;

/** A call's outcome that is a gRPC status of its own, not one of the errors above. */
export class StatusError extends GravityError {
  readonly status: Status;

  constructor(code: Status, message: string) {
    super("EGRPCSTATUS", message);
    this.name = "StatusError";
    this.status = code;
  }
}

export function statusOf(error: unknown): CallStatus {
  const details = error instanceof Error ? error.message : String(error);
  if (error instanceof StatusError) return { code: error.status, details };
  if (error instanceof InvalidRequestError) return { code: Status.INVALID_ARGUMENT, details };
  if (error instanceof UnknownGroupError) return { code: Status.NOT_FOUND, details };
  if (error instanceof ServerError) {
    if (error.kind === ServerErrorKind.ClientError) return { code: Status.INVALID_ARGUMENT, details };
    if (error.kind === ServerErrorKind.ServerError) {
      if (error.text === TOO_LARGE_TEXT) return { code: Status.INVALID_ARGUMENT, details };
      if (error.text.toLowerCase().startsWith("out of memory")) {
        return { code: Status.RESOURCE_EXHAUSTED, details };
      }
    }
    return { code: Status.INTERNAL, details };
  }
  if (error instanceof OverloadedError) return { code: Status.RESOURCE_EXHAUSTED, details };
  if (error instanceof TimeoutError) return { code: Status.DEADLINE_EXCEEDED, details };
  if (
    error instanceof ConnectionError ||
    error instanceof DestinationDownError ||
    error instanceof NoHealthyDestinationError
  ) {
    return { code: Status.UNAVAILABLE, details };
  }
  return { code: Status.INTERNAL, details };
}
