// gRPC server reflection (grpc/grpc doc/server-reflection.md), versions v1 and v1alpha: what
// `grpcurl list` and `grpcurl describe` ask. Answered from the descriptors generated from the served
// .proto files, so a client needs no copy of proto/.
//
//   ServerReflectionInfo (a bidi stream: one response per request, in order)
//     list_services             -> the served services' full names
//     file_by_filename          -> that file's FileDescriptorProto and its dependencies'
//     file_containing_symbol    -> the file declaring a message, enum, service, method or field
//     file_containing_extension, all_extension_numbers_of_type
//                               -> NOT_FOUND (no served file declares extensions)
//
// (@grpc/reflection serves the same protocol, but it reads its own .proto file from its package
// directory when added to a server, which a `bun build --compile` executable does not have.)
import { type DescFile, type DescService, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { type Metadata, type ServerDuplexStream, status } from "@grpc/grpc-js";
import * as v1 from "./generated/grpc/reflection/v1/reflection_pb.ts";
import * as v1alpha from "./generated/grpc/reflection/v1alpha/reflection_pb.ts";
import { grpcService } from "./services.ts";

/** A reflection request as both versions decode it (their messages have the same fields). */
type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
// Answers are init shapes (plain objects), not messages: the same answer serializes as either version.
type ReflectionAnswer = MessageInitShape<typeof v1.ServerReflectionResponseSchema>["messageResponse"];

/** The served services and the files that declare them, indexed for the reflection requests. */
export class ReflectionIndex {
  private readonly encoded = new Map<string, Uint8Array>(); // file name -> FileDescriptorProto bytes
  private readonly files = new Map<string, DescFile>(); // file name -> file
  private readonly fileOfSymbol = new Map<string, DescFile>(); // full name -> declaring file
  readonly serviceNames: readonly string[];

  constructor(services: readonly DescService[]) {
    this.serviceNames = services.map((service) => service.typeName);
    for (const service of services) this.addFile(service.file);
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    this.encoded.set(file.proto.name, toBinary(FileDescriptorProtoSchema, file.proto));
    for (const type of nestedTypes(file)) {
      this.fileOfSymbol.set(type.typeName, file);
      if (type.kind === "service") {
        for (const method of type.methods) this.fileOfSymbol.set(`${type.typeName}.${method.name}`, file);
      } else if (type.kind === "message") {
        for (const field of type.fields) this.fileOfSymbol.set(`${type.typeName}.${field.name}`, file);
      }
    }
    for (const dependency of file.dependencies) this.addFile(dependency);
  }

  /** The file and every file it imports, transitively, each once, the file first. */
  private withDependencies(file: DescFile): Uint8Array[] {
    const names = new Set<string>();
    const visit = (f: DescFile) => {
      if (names.has(f.proto.name)) return;
      names.add(f.proto.name);
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return [...names].map((name) => this.encoded.get(name) as Uint8Array);
  }

  /** The answer to one request (an error answer for what is not served). */
  answer(request: ReflectionRequest["messageRequest"]): ReflectionAnswer {
    const notFound = (what: string): ReflectionAnswer => ({
      case: "errorResponse",
      value: { errorCode: status.NOT_FOUND, errorMessage: `${what} not found` },
    });
    const files = (file: DescFile | undefined, what: string): ReflectionAnswer =>
      file === undefined
        ? notFound(what)
        : {
            case: "fileDescriptorResponse",
            value: { fileDescriptorProto: this.withDependencies(file) },
          };
    switch (request.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.serviceNames.map((name) => ({ name })) },
        };
      case "fileByFilename":
        return files(this.files.get(request.value), `file ${JSON.stringify(request.value)}`);
      case "fileContainingSymbol":
        return files(this.fileOfSymbol.get(request.value), `symbol ${JSON.stringify(request.value)}`);
      case "fileContainingExtension":
        return notFound(
          `extension ${request.value.extensionNumber} of ${JSON.stringify(request.value.containingType)}`,
        );
      case "allExtensionNumbersOfType":
        return notFound(`extensions of ${JSON.stringify(request.value)}`);
      default:
        return {
          case: "errorResponse",
          value: {
            errorCode: status.INVALID_ARGUMENT,
            errorMessage: "the request names no reflection query",
          },
        };
    }
  }
}

type AnyReflectionService = GenService<{
  serverReflectionInfo: {
    methodKind: "bidi_streaming";
    input: typeof v1.ServerReflectionRequestSchema | typeof v1alpha.ServerReflectionRequestSchema;
    output: typeof v1.ServerReflectionResponseSchema | typeof v1alpha.ServerReflectionResponseSchema;
  };
}>;

/** Why a call may not proceed (a status to end it with), or null when it may. */
export type Authorize = (metadata: Metadata) => { code: status; details: string } | null;

function reflectionHandler(index: ReflectionIndex, authorize: Authorize) {
  return {
    serverReflectionInfo(stream: ServerDuplexStream<ReflectionRequest, object>) {
      const refused = authorize(stream.metadata);
      if (refused !== null) {
        stream.emit("error", Object.assign(new Error(refused.details), refused));
        return;
      }
      stream.on("data", (request: ReflectionRequest) => {
        // Both versions' responses have the same fields: the init shape serializes as either.
        stream.write({
          validHost: request.host,
          originalRequest: request,
          messageResponse: index.answer(request.messageRequest),
        });
      });
      stream.on("end", () => stream.end());
      stream.on("error", () => stream.end());
    },
  };
}

/** The reflection services (v1 and v1alpha) for `index`, ready for grpc-js Server.addService. */
export function reflectionServices(index: ReflectionIndex, authorize: Authorize = () => null) {
  const handler = reflectionHandler(index, authorize);
  return [v1.ServerReflection, v1alpha.ServerReflection].map((service) => ({
    definition: grpcService(service as AnyReflectionService),
    handler,
  }));
}

/** The full names of the reflection services, for the index's list. */
export const REFLECTION_SERVICES: readonly DescService[] = [v1.ServerReflection, v1alpha.ServerReflection];
