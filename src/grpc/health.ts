// grpc.health.v1.Health (grpc/grpc doc/health-checking.md), the service Kubernetes' `grpc:` probes,
// Envoy and gRPC load balancers call, answering with the process's readiness, as /readyz does.
//
//   Check(service)  "" or a served service -> SERVING | NOT_SERVING; another name -> NOT_FOUND
//   Watch(service)  the status now, then every change (readiness is polled every pollMs while
//                   someone watches); another name -> SERVICE_UNKNOWN, and the stream stays open
//   List            every served service and its status
//
// (grpc-health-check serves the same service, but it reads its .proto file from its package
// directory when loaded, which a `bun build --compile` executable does not have.)
import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import type { Readiness } from "../http/readiness.ts";
import {
  type HealthCheckRequest,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "./generated/health/v1/health_pb.ts";

export const HEALTH_DEFAULTS = {
  /** How often a watched status is re-read. */
  pollMs: 1000,
  /** Watch streams open at once; more are refused with RESOURCE_EXHAUSTED. */
  maxWatchers: 1024,
} as const;

export interface HealthOptions {
  /** The process's readiness (the function /readyz asks). */
  ready: () => Readiness;
  /** The served services' full names; "" (the whole server) is always known. */
  services: readonly string[];
  pollMs?: number;
  maxWatchers?: number;
}

type StatusReply = { status: ServingStatus };

/** The Health service's handlers (check, watch, list) and close(), which ends every watch. */
export function healthService(options: HealthOptions) {
  const known = new Set(["", ...options.services]);
  const pollMs = options.pollMs ?? HEALTH_DEFAULTS.pollMs;
  const maxWatchers = options.maxWatchers ?? HEALTH_DEFAULTS.maxWatchers;
  const watchers = new Set<ServerWritableStream<HealthCheckRequest, StatusReply>>();
  let last = ServingStatus.UNKNOWN;
  let timer: ReturnType<typeof setInterval> | undefined;

  const current = (): ServingStatus =>
    options.ready() === true ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;

  function poll(): void {
    const now = current();
    if (now === last) return;
    last = now;
    for (const stream of watchers) {
      if (known.has(stream.request.service)) stream.write({ status: now });
    }
  }

  function unwatch(stream: ServerWritableStream<HealthCheckRequest, StatusReply>): void {
    if (!watchers.delete(stream)) return;
    if (watchers.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  }

  return {
    handlers: {
      check(call: ServerUnaryCall<HealthCheckRequest, StatusReply>, callback: sendUnaryData<StatusReply>) {
        const service = call.request.service;
        if (!known.has(service)) {
          callback({ code: status.NOT_FOUND, details: `unknown service ${JSON.stringify(service)}` });
          return;
        }
        callback(null, { status: current() });
      },
      watch(stream: ServerWritableStream<HealthCheckRequest, StatusReply>) {
        if (watchers.size >= maxWatchers) {
          const details = `too many health watches (limit ${maxWatchers})`;
          stream.emit(
            "error",
            Object.assign(new Error(details), { code: status.RESOURCE_EXHAUSTED, details }),
          );
          return;
        }
        watchers.add(stream);
        if (timer === undefined) {
          last = current();
          timer = setInterval(poll, pollMs);
          timer.unref?.();
        }
        stream.write({ status: known.has(stream.request.service) ? last : ServingStatus.SERVICE_UNKNOWN });
        stream.on("cancelled", () => unwatch(stream));
        stream.on("close", () => unwatch(stream));
        stream.on("error", () => unwatch(stream));
      },
      list(
        _call: ServerUnaryCall<unknown, { statuses: Record<string, StatusReply> }>,
        callback: sendUnaryData<{ statuses: Record<string, StatusReply> }>,
      ) {
        const now = current();
        const statuses: Record<string, StatusReply> = {};
        for (const service of known) statuses[service] = { status: now };
        callback(null, { statuses });
      },
    },
    /** Ends every Watch stream (the server is closing). */
    close(): void {
      for (const stream of [...watchers]) {
        unwatch(stream);
        stream.end();
      }
    },
  };
}
