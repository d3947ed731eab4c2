// grpc-js service definitions built from the generated descriptors of proto/*.proto
// (src/grpc/generated/, by protoc-gen-es): every method's path, streaming kind and codec come from
// the .proto file, so the wire format cannot drift from it. Clients use CacheService with
// makeGenericClientConstructor; the server uses serverDefinition(), whose request decoders return a
// MalformedRequest instead of throwing, so a bad message is answered INVALID_ARGUMENT (grpc-js would
// answer INTERNAL).
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { MethodDefinition, ServerMethodDefinition } from "@grpc/grpc-js";
import { Cache } from "./generated/gravity_pb.ts";
import { GroupCache } from "./generated/groupcache_pb.ts";

/**
 * A method's grpc-js definition: requests and responses are sent from their init shape (a plain
 * object; fields left out take their defaults) and arrive as generated messages.
 */
export interface GrpcMethod<I extends DescMessage, O extends DescMessage>
  extends ServerMethodDefinition<MessageShape<I>, MessageInitShape<O>> {
  requestSerialize: (message: MessageInitShape<I>) => Buffer;
  responseDeserialize: (bytes: Buffer) => MessageShape<O>;
}

/** A service's grpc-js definition, one entry per method under its generated local name (get, getMulti...). */
export type GrpcService<T extends GenServiceMethods> = {
  [Name in keyof T]: GrpcMethod<T[Name]["input"], T[Name]["output"]>;
};

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function serializer<M extends DescMessage>(schema: M): (message: MessageInitShape<M>) => Buffer {
  return (message) => toBuffer(toBinary(schema, create(schema, message)));
}

/** Decodes `schema`; a message that does not decode throws an Error naming the message type. */
function deserializer<M extends DescMessage>(schema: M): (bytes: Buffer) => MessageShape<M> {
  return (bytes) => {
    try {
      return fromBinary(schema, bytes);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`malformed ${schema.typeName}: ${reason}`, { cause: error });
    }
  };
}

function methodDefinition(method: DescMethod, path: string): GrpcMethod<DescMessage, DescMessage> {
  return {
    path,
    requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
    responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.name,
  };
}

/**
 * The grpc-js definition of a generated service. `serviceName` replaces the service's full name in
 * the method paths (groupcache's proto3 file declares no package: "/GroupCache/Get").
 */
export function grpcService<T extends GenServiceMethods>(
  service: GenService<T>,
  serviceName: string = service.typeName,
): GrpcService<T> {
  const out: Record<string, GrpcMethod<DescMessage, DescMessage>> = {};
  for (const method of (service as DescService).methods) {
    out[method.localName] = methodDefinition(method, `/${serviceName}/${method.name}`);
  }
  return out as GrpcService<T>;
}

/** gravity.v1.Cache; method names as grpc-js clients call them (get, set, delete, getMulti, touch, stats). */
export const CacheService = grpcService(Cache);

/** groupcachepb.GroupCache (groupcache's original proto2 file declared `package groupcachepb`). */
export const GroupCacheService = grpcService(GroupCache);

/** GroupCache as groupcache's current proto3 file declares it: no package. */
export const UnpackagedGroupCacheService = grpcService(GroupCache, "GroupCache");

/** A request whose bytes did not decode; `message` says why. */
export class MalformedRequest {
  constructor(readonly message: string) {}
}

type ServerDefinition<S extends GrpcService<GenServiceMethods>> = {
  [Name in keyof S]: S[Name] extends GrpcMethod<infer I, infer O>
    ? Omit<GrpcMethod<I, O>, "requestDeserialize"> & {
        requestDeserialize: (bytes: Buffer) => MessageShape<I> | MalformedRequest;
      }
    : never;
};

/** `service` with request decoders that return a MalformedRequest rather than throw. */
export function serverDefinition<S extends GrpcService<GenServiceMethods>>(service: S): ServerDefinition<S> {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(service) as [string, MethodDefinition<unknown, unknown>][]) {
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
