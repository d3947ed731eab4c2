// grpc-js service definitions for proto/gravity.proto and proto/groupcache.proto, built by hand
// around the codecs in cache-messages.ts and groupcache-messages.ts (no protobuf library, no
// generated code). Clients use CacheService / GroupCacheService with makeGenericClientConstructor;
// the server uses serverDefinition(), whose request decoders return a MalformedRequest instead of
// throwing, so a bad message is answered INVALID_ARGUMENT (grpc-js would answer INTERNAL).
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import * as messages from "./cache-messages.ts";
import {
  decodeGroupCacheGetRequest,
  decodeGroupCacheGetResponse,
  encodeGroupCacheGetRequest,
  encodeGroupCacheGetResponse,
  type GroupCacheGetRequest,
  type GroupCacheGetResponse,
} from "./groupcache-messages.ts";

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function unary<Req, Res>(
  path: string,
  encodeRequest: (message: Req) => Uint8Array,
  decodeRequest: (bytes: Uint8Array) => Req,
  encodeResponse: (message: Res) => Uint8Array,
  decodeResponse: (bytes: Uint8Array) => Res,
): MethodDefinition<Req, Res> {
  return {
    path,
    requestStream: false,
    responseStream: false,
    requestSerialize: (message) => toBuffer(encodeRequest(message)),
    requestDeserialize: decodeRequest,
    responseSerialize: (message) => toBuffer(encodeResponse(message)),
    responseDeserialize: decodeResponse,
    originalName: path.slice(path.lastIndexOf("/") + 1),
  };
}

/** gravity.v1.Cache; method names as grpc-js clients call them (get, set, delete, getMulti, touch, stats). */
export const CacheService = {
  get: unary(
    "/gravity.v1.Cache/Get",
    messages.encodeGetRequest,
    messages.decodeGetRequest,
    messages.encodeGetResponse,
    messages.decodeGetResponse,
  ),
  set: unary(
    "/gravity.v1.Cache/Set",
    messages.encodeSetRequest,
    messages.decodeSetRequest,
    messages.encodeSetResponse,
    messages.decodeSetResponse,
  ),
  delete: unary(
    "/gravity.v1.Cache/Delete",
    messages.encodeDeleteRequest,
    messages.decodeDeleteRequest,
    messages.encodeDeleteResponse,
    messages.decodeDeleteResponse,
  ),
  getMulti: unary(
    "/gravity.v1.Cache/GetMulti",
    messages.encodeGetMultiRequest,
    messages.decodeGetMultiRequest,
    messages.encodeGetMultiResponse,
    messages.decodeGetMultiResponse,
  ),
  touch: unary(
    "/gravity.v1.Cache/Touch",
    messages.encodeTouchRequest,
    messages.decodeTouchRequest,
    messages.encodeTouchResponse,
    messages.decodeTouchResponse,
  ),
  stats: unary(
    "/gravity.v1.Cache/Stats",
    messages.encodeStatsRequest,
    messages.decodeStatsRequest,
    messages.encodeStatsResponse,
    messages.decodeStatsResponse,
  ),
} satisfies ServiceDefinition;

function groupCacheGet(path: string): MethodDefinition<GroupCacheGetRequest, GroupCacheGetResponse> {
  return unary<GroupCacheGetRequest, GroupCacheGetResponse>(
    path,
    encodeGroupCacheGetRequest,
    decodeGroupCacheGetRequest,
    encodeGroupCacheGetResponse,
    decodeGroupCacheGetResponse,
  );
}

/** groupcachepb.GroupCache (groupcache's original proto2 file declared `package groupcachepb`). */
export const GroupCacheService = {
  get: groupCacheGet("/groupcachepb.GroupCache/Get"),
} satisfies ServiceDefinition;

/** GroupCache as groupcache's current proto3 file declares it: no package. */
export const UnpackagedGroupCacheService = {
  get: groupCacheGet("/GroupCache/Get"),
} satisfies ServiceDefinition;

/** A request whose bytes did not decode; `message` says why. */
export class MalformedRequest {
  constructor(readonly message: string) {}
}

type ServerDefinition<S extends ServiceDefinition> = {
  [Name in keyof S]: S[Name] extends MethodDefinition<infer Req, infer Res>
    ? MethodDefinition<Req | MalformedRequest, Res>
    : never;
};

/** `service` with request decoders that return a MalformedRequest rather than throw. */
export function serverDefinition<S extends ServiceDefinition>(service: S): ServerDefinition<S> {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service)) {
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (error) {
          return new MalformedRequest(error instanceof Error ? error.message : String(error));
        }
      },
    };
  }
  return out as ServerDefinition<S>;
}
