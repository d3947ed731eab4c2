// The gRPC listener of both roles: gravity.v1.Cache and groupcache's GroupCache.Get over one
// CacheBackend (the leaf's store or the router's route tree).
//
//   HTTP/2 connection ── at most maxConcurrentStreams open streams (the client queues the rest)
//        └─ call ── waits while its connection holds too many unread reply bytes (reply-hold.ts)
//             └─ unread replies of all connections under maxTotalBytes, and
//                inFlight < maxConcurrentCalls? ── no: RESOURCE_EXHAUSTED at once
//                  └─ yes: decode ─ check group and key ─ backend ─ reply or status (status.ts)
//
// Both bounds matter on Bun: its http2 overflowed the stack ("Maximum call stack size exceeded",
// the process died) with ~20k concurrent streams on one connection. The stream limit keeps any one
// connection below that; the call counter bounds the work across connections.

import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type sendUnaryData,
  status,
} from "@grpc/grpc-js";
import type { CacheBackend } from "../cache/backend.ts";
import { InvalidRequestError } from "../errors.ts";
import type { Readiness } from "../http/readiness.ts";
import type { GrpcRefusalReason } from "../metrics/names.ts";
import type { TlsMaterial } from "../security/tls.ts";
import type { BearerTokens } from "../security/tokens.ts";
import type {
  DeleteRequest,
  DeleteResponseSchema,
  GetMultiRequest,
  GetMultiResponseSchema,
  GetRequest,
  GetResponseSchema,
  SetRequest,
  SetResponseSchema,
  StatsRequest,
  StatsResponseSchema,
  TouchRequest,
  TouchResponseSchema,
} from "./generated/gravity_pb.ts";
import { Cache } from "./generated/gravity_pb.ts";
import type {
  GetRequest as GroupCacheGetRequest,
  GetResponseSchema as GroupCacheGetResponseSchema,
} from "./generated/groupcache_pb.ts";
import { GroupCache } from "./generated/groupcache_pb.ts";
import { Health } from "./generated/health/v1/health_pb.ts";
import { healthService } from "./health.ts";
import { GroupFilter } from "./item-key.ts";
import { REFLECTION_SERVICES, ReflectionIndex, reflectionServices } from "./reflection.ts";
import { ReplyHold, type ReplyHoldLimits } from "./reply-hold.ts";
import {
  CacheService,
  GroupCacheService,
  grpcService,
  MalformedRequest,
  serverDefinition,
  UnpackagedGroupCacheService,
} from "./services.ts";
import { StatusError, statusOf } from "./status.ts";

export const GRPC_DEFAULTS = {
  maxConcurrentCalls: 4096,
  maxConcurrentStreams: 1000,
  maxKeysPerCall: 1024,
  /** How long close() lets calls in progress finish before cancelling them. */
  closeGraceMs: 5000,
} as const;

/** Groups whose call counters Stats keeps; more distinct groups are served but not counted. */
const MAX_COUNTED_GROUPS = 1024;

export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port (see GrpcServer.port). */
  port: number;
  backend: CacheBackend;
  /** Calls answered at once across every connection; more are refused with RESOURCE_EXHAUSTED. */
  maxConcurrentCalls?: number;
  /** HTTP/2 streams open at once per connection (grpc.max_concurrent_streams); a client queues the rest. */
  maxConcurrentStreams?: number;
  /** The groups this server answers for; any other is NOT_FOUND "unknown group". Default: any valid group. */
  groups?: readonly string[];
  /** GetMulti: keys per call; more is INVALID_ARGUMENT. */
  maxKeysPerCall?: number;
  /** What grpc.health.v1.Health reports (the function /readyz asks). Default: always ready. */
  ready?: () => Readiness;
  /** Serve gRPC server reflection (v1 and v1alpha), for grpcurl and the like. Default: true. */
  reflection?: boolean;
  /** TLS with this certificate and key (and, with a CA, client certificates required). */
  tls?: TlsMaterial | null;
  /** Bearer tokens (metadata `authorization: Bearer <token>`) required on every call but Health's. */
  tokens?: BearerTokens | null;
  /** Reply bytes clients may leave unread, per connection and in all (default REPLY_HOLD_DEFAULTS). */
  replyHold?: ReplyHoldLimits;
}

export interface GrpcServer {
  readonly host: string;
  /** The bound port (the one picked when options.port was 0). */
  readonly port: number;
  /** Calls being answered now. */
  readonly inFlight: number;
  /** Calls refused with RESOURCE_EXHAUSTED: maxConcurrentCalls were in flight, or replies unread past replyHold. */
  readonly rejectedCalls: number;
  /** rejectedCalls by reason (the `reason` label of gravity_grpc_refused_calls_total). */
  readonly refusedCalls: Readonly<Record<GrpcRefusalReason, number>>;
  /** Value bytes of replies sent by handlers and not yet read by their clients (reservations not included). */
  readonly heldReplyBytes: number;
  /** Stops accepting calls, lets those in progress finish for up to `graceMs`, then cancels the rest. */
  close(graceMs?: number): Promise<void>;
}

/** Call counters of one group, as Stats returns them (memcached's names). */
class GroupCounters {
  cmd_get = 0;
  get_hits = 0;
  get_misses = 0;
  cmd_set = 0;
  cmd_delete = 0;
  delete_hits = 0;
  cmd_touch = 0;
  touch_hits = 0;
}

/** Plaintext, or TLS with the material (client certificates required when it has a CA). */
function credentialsOf(tls: TlsMaterial | null): ServerCredentials {
  if (tls === null) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    tls.ca === undefined ? null : Buffer.from(tls.ca),
    [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }],
    tls.ca !== undefined,
  );
}

/** Get's answer for a value or a miss, counted in the group's get_hits or get_misses. */
function getResponse(
  counters: GroupCounters,
  value: Uint8Array | null,
): MessageInitShape<typeof GetResponseSchema> {
  if (value === null) {
    counters.get_misses++;
    return { found: false, value: new Uint8Array(0) };
  }
  counters.get_hits++;
  return { found: true, value };
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidRequestError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Starts the gRPC server and resolves once it listens. Throws InvalidRequestError for a bad option. */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const maxCalls = checkCount(
    "maxConcurrentCalls",
    options.maxConcurrentCalls ?? GRPC_DEFAULTS.maxConcurrentCalls,
  );
  const maxStreams = checkCount(
    "maxConcurrentStreams",
    options.maxConcurrentStreams ?? GRPC_DEFAULTS.maxConcurrentStreams,
  );
  const maxKeys = checkCount("maxKeysPerCall", options.maxKeysPerCall ?? GRPC_DEFAULTS.maxKeysPerCall);
  const groups = new GroupFilter(options.groups);
  const backend = options.backend;
  const counted = new Map<string, GroupCounters>();
  let inFlight = 0;
  const refusedCalls: Record<GrpcRefusalReason, number> = { calls_in_flight: 0, unread_replies: 0 };
  const held = new ReplyHold(options.replyHold);

  function countersOf(group: string): GroupCounters {
    let counters = counted.get(group);
    if (counters === undefined) {
      counters = new GroupCounters();
      if (counted.size < MAX_COUNTED_GROUPS) counted.set(group, counters);
    }
    return counters;
  }

  // Each handler: refuse past the bound, decode, run, map a rejection to a status.
  const tokens = options.tokens ?? null;
  const unauthenticated = (metadata: Metadata): boolean =>
    tokens !== null && !tokens.accepts(metadata.get("authorization")[0]?.toString());
  const UNAUTHENTICATED = { code: status.UNAUTHENTICATED, details: "a valid bearer token is required" };

  function unary<Req, Res>(answer: (request: Req) => Promise<Res>) {
    return (call: ServerUnaryCall<Req | MalformedRequest, Res>, callback: sendUnaryData<Res>) => {
      if (unauthenticated(call.metadata)) {
        callback(UNAUTHENTICATED);
        return;
      }
      const unread = held.refusal();
      if (unread !== undefined) {
        refusedCalls.unread_replies++;
        callback({ code: status.RESOURCE_EXHAUSTED, details: unread });
        return;
      }
      if (inFlight >= maxCalls) {
        refusedCalls.calls_in_flight++;
        callback({
          code: status.RESOURCE_EXHAUSTED,
          details: `too many calls in flight (limit ${maxCalls}); retry later`,
        });
        return;
      }
      const request = call.request;
      if (request instanceof MalformedRequest) {
        callback({ code: status.INVALID_ARGUMENT, details: request.message });
        return;
      }
      inFlight++;
      answer(request).then(
        (response) => {
          inFlight--;
          callback(null, response);
        },
        (error: unknown) => {
          inFlight--;
          callback(statusOf(error));
        },
      );
    };
  }

  const cache = {
    get: unary<GetRequest, MessageInitShape<typeof GetResponseSchema>>(async ({ group, key }) => {
      const item = groups.itemKey(group, key);
      const counters = countersOf(group);
      counters.cmd_get++;
      return getResponse(counters, await backend.get(item));
    }),
    set: unary<SetRequest, MessageInitShape<typeof SetResponseSchema>>(
      async ({ group, key, value, ttlSeconds }) => {
        const item = groups.itemKey(group, key);
        countersOf(group).cmd_set++;
        await backend.set(item, value, ttlSeconds);
        return {};
      },
    ),
    delete: unary<DeleteRequest, MessageInitShape<typeof DeleteResponseSchema>>(async ({ group, key }) => {
      const item = groups.itemKey(group, key);
      const counters = countersOf(group);
      counters.cmd_delete++;
      const deleted = await backend.delete(item);
      if (deleted) counters.delete_hits++;
      return { deleted };
    }),
    getMulti: unary<GetMultiRequest, MessageInitShape<typeof GetMultiResponseSchema>>(
      async ({ group, keys }) => {
        groups.check(group);
        if (keys.length > maxKeys) {
          throw new InvalidRequestError(`${keys.length} keys in one GetMulti; the limit is ${maxKeys}`);
        }
        const items = keys.map((key, index) => {
          try {
            return groups.itemKey(group, key);
          } catch (error) {
            if (error instanceof InvalidRequestError)
              throw new InvalidRequestError(`keys[${index}]: ${error.message}`);
            throw error;
          }
        });
        const counters = countersOf(group);
        counters.cmd_get += items.length;
        const values = await Promise.all(items.map((item) => backend.get(item)));
        return { items: values.map((value) => getResponse(counters, value)) };
      },
    ),
    touch: unary<TouchRequest, MessageInitShape<typeof TouchResponseSchema>>(
      async ({ group, key, ttlSeconds }) => {
        const item = groups.itemKey(group, key);
        const counters = countersOf(group);
        counters.cmd_touch++;
        const touched = await backend.touch(item, ttlSeconds);
        if (touched) counters.touch_hits++;
        return { touched };
      },
    ),
    stats: unary<StatsRequest, MessageInitShape<typeof StatsResponseSchema>>(async ({ group }) => {
      const stats: Record<string, string> = {};
      if (group === "") {
        for (const [name, value] of Object.entries(await backend.stats())) stats[name] = String(value);
      } else {
        groups.check(group);
        for (const [name, value] of Object.entries(counted.get(group) ?? new GroupCounters())) {
          stats[name] = String(value);
        }
      }
      return { stats };
    }),
  };

  // groupcache's peer Get: a miss is NOT_FOUND, where groupcache would run the group's getter.
  const groupCache = {
    get: unary<GroupCacheGetRequest, MessageInitShape<typeof GroupCacheGetResponseSchema>>(
      async ({ group, key }) => {
        const item = groups.itemKey(group, key);
        const counters = countersOf(group);
        counters.cmd_get++;
        const value = await backend.get(item);
        if (value === null) {
          counters.get_misses++;
          throw new StatusError(
            status.NOT_FOUND,
            `no value for this key in group ${JSON.stringify(group)} (no loader is configured)`,
          );
        }
        counters.get_hits++;
        return { value };
      },
    ),
  };

  const server = new Server({
    "grpc.max_concurrent_streams": maxStreams,
    interceptors: [held.interceptor()],
  });
  server.addService(serverDefinition(CacheService), cache);
  server.addService(serverDefinition(GroupCacheService), groupCache);
  server.addService(serverDefinition(UnpackagedGroupCacheService), groupCache);
  const reflection = options.reflection ?? true;
  const served = [Cache, GroupCache, Health, ...(reflection ? REFLECTION_SERVICES : [])];
  const health = healthService({
    ready: options.ready ?? (() => true),
    services: served.map((service) => service.typeName),
  });
  server.addService(grpcService(Health), health.handlers);
  if (reflection) {
    const authorize = (metadata: Metadata) => (unauthenticated(metadata) ? UNAUTHENTICATED : null);
    for (const { definition, handler } of reflectionServices(new ReflectionIndex(served), authorize)) {
      server.addService(definition, handler);
    }
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, credentialsOf(options.tls ?? null), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    );
  });

  return {
    host: options.host,
    port,
    get inFlight() {
      return inFlight;
    },
    get heldReplyBytes() {
      return held.heldBytes;
    },
    get rejectedCalls() {
      return refusedCalls.calls_in_flight + refusedCalls.unread_replies;
    },
    refusedCalls,
    close(graceMs = GRPC_DEFAULTS.closeGraceMs) {
      health.close();
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
