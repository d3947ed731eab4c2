// The standard gRPC services beside the cache API, driven by stock clients built from the .proto
// files the grpc-node packages ship (proto-loader, nothing of the server's generated code):
// server reflection as grpcurl uses it (list, describe, then a call built from the descriptors
// alone), and grpc.health.v1.Health as Kubernetes probes and load balancers call it, flipping with
// readiness, in-process and on a compiled router whose only leaf goes down.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import {
  Client,
  type ClientDuplexStream,
  type ClientReadableStream,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  type ServiceClientConstructor,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { nativeBackend } from "../src/cache/backend.ts";
import { createClient } from "../src/client/index.ts";
import { type GrpcServer, startGrpcServer } from "../src/grpc/server.ts";
import { native } from "../src/native/index.ts";
import { HOST, SERVER_TEST_MS, startLeaf, startRouter, stopAll } from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

const MIB = 1024 * 1024;
const require = createRequire(import.meta.url);
const reflectionProtoDir = join(dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
const healthProtoDir = join(dirname(require.resolve("grpc-health-check/package.json")), "proto");

/** A grpc-js client class for `service` (a full name) from a stock .proto file. */
function stockClient(protoFile: string, includeDir: string, service: string): ServiceClientConstructor {
  const definition = loadSync(protoFile, {
    includeDirs: [includeDir],
    defaults: true,
    oneofs: true,
    enums: String,
  });
  let node: unknown = loadPackageDefinition(definition);
  for (const part of service.split(".")) node = (node as GrpcObject)[part];
  return node as ServiceClientConstructor;
}

const ReflectionV1 = stockClient(
  "grpc/reflection/v1/reflection.proto",
  reflectionProtoDir,
  "grpc.reflection.v1.ServerReflection",
);
const ReflectionV1alpha = stockClient(
  "grpc/reflection/v1alpha/reflection.proto",
  reflectionProtoDir,
  "grpc.reflection.v1alpha.ServerReflection",
);
const HealthClient = stockClient("health/v1/health.proto", healthProtoDir, "grpc.health.v1.Health");

type ReflectionReply = {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
};

/** Sends each request on one reflection stream and collects the replies, in order. */
async function reflect(Reflection: ServiceClientConstructor, port: number, requests: object[]) {
  const client = new Reflection(`${HOST}:${port}`, credentials.createInsecure());
  try {
    const stream = (
      client as unknown as { serverReflectionInfo(): ClientDuplexStream<object, ReflectionReply> }
    ).serverReflectionInfo();
    const replies: ReflectionReply[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (reply: ReflectionReply) => replies.push(reply));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    for (const request of requests) stream.write(request);
    stream.end();
    await done;
    return replies;
  } finally {
    client.close();
  }
}

function unary<Res>(client: Client, method: string, request: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: object, cb: (e: ServiceError | null, r: Res) => void) => void>)[
      method
    ]?.call(client, request, (error, response) => (error === null ? resolve(response) : reject(error)));
  });
}

const SERVING = "SERVING";
const NOT_SERVING = "NOT_SERVING";

let ready: true | string = true;
let withReflection: GrpcServer;
let withoutReflection: GrpcServer;

beforeAll(async () => {
  native.configure({ memoryBytes: 64 * MIB, maxItemBytes: MIB, threads: 1, version: "test" });
  withReflection = await startGrpcServer({
    host: HOST,
    port: 0,
    backend: nativeBackend(),
    ready: () => ready,
  });
  withoutReflection = await startGrpcServer({
    host: HOST,
    port: 0,
    backend: nativeBackend(),
    reflection: false,
  });
});

afterAll(async () => {
  await Promise.all([withReflection?.close(), withoutReflection?.close()]);
  await stopAll();
});

describe("server reflection", () => {
  for (const [version, Reflection] of [
    ["v1", ReflectionV1],
    ["v1alpha", ReflectionV1alpha],
  ] as const) {
    test(`${version}: list, describe, and a Cache call built from the descriptors alone`, async () => {
      const [list, bySymbol, byMethod, byFile, missing] = await reflect(Reflection, withReflection.port, [
        { listServices: "*" },
        { fileContainingSymbol: "gravity.v1.Cache" },
        { fileContainingSymbol: "gravity.v1.Cache.GetMulti" },
        { fileByFilename: "groupcache.proto" },
        { fileContainingSymbol: "gravity.v1.Nope" },
      ]);
      expect(list?.listServicesResponse?.service.map((s) => s.name).sort()).toEqual([
        "gravity.v1.Cache",
        "groupcachepb.GroupCache",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      expect(missing?.errorResponse?.errorCode).toBe(status.NOT_FOUND);
      const groupcache = fromBinary(
        FileDescriptorProtoSchema,
        byFile?.fileDescriptorResponse?.fileDescriptorProto[0] as Buffer,
      );
      expect(groupcache.service.map((s) => s.name)).toEqual(["GroupCache"]);
      expect(byMethod?.fileDescriptorResponse?.fileDescriptorProto).toEqual(
        bySymbol?.fileDescriptorResponse?.fileDescriptorProto as Buffer[],
      );

      // What grpcurl does: build the messages from the returned descriptors and call the method.
      const files = (bySymbol?.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
        fromBinary(FileDescriptorProtoSchema, bytes),
      );
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
      const cache = registry.getService("gravity.v1.Cache");
      expect(cache?.methods.map((m) => m.name)).toEqual([
        "Get",
        "Set",
        "Delete",
        "GetMulti",
        "Touch",
        "Stats",
      ]);
      const setRequest = registry.getMessage("gravity.v1.SetRequest");
      const getRequest = registry.getMessage("gravity.v1.GetRequest");
      const getResponse = registry.getMessage("gravity.v1.GetResponse");
      if (setRequest === undefined || getRequest === undefined || getResponse === undefined) {
        throw new Error("the descriptors lack the Cache messages");
      }
      const key = new TextEncoder().encode(`reflected-${version}`);
      const raw = new Client(`${HOST}:${withReflection.port}`, credentials.createInsecure());
      const call = (path: string, bytes: Uint8Array) =>
        new Promise<Buffer>((resolve, reject) =>
          raw.makeUnaryRequest(
            path,
            (b: Uint8Array) => Buffer.from(b),
            (b: Buffer) => b,
            bytes,
            (error, reply) => (error === null ? resolve(reply as Buffer) : reject(error)),
          ),
        );
      try {
        await call(
          "/gravity.v1.Cache/Set",
          toBinary(setRequest, create(setRequest, { group: "r", key, value: new Uint8Array([1, 2, 3]) })),
        );
        const reply = fromBinary(
          getResponse,
          await call("/gravity.v1.Cache/Get", toBinary(getRequest, create(getRequest, { group: "r", key }))),
        ) as unknown as { found: boolean; value: Uint8Array };
        expect([reply.found, [...(reply.value as Uint8Array)]]).toEqual([true, [1, 2, 3]]);
      } finally {
        raw.close();
      }
    });
  }

  test("off with reflection: false: the reflection service is UNIMPLEMENTED", async () => {
    const error = await reflect(ReflectionV1, withoutReflection.port, [{ listServices: "*" }]).then(
      () => null,
      (e: ServiceError) => e,
    );
    expect(error?.code).toBe(status.UNIMPLEMENTED);
  });
});

describe("grpc.health.v1.Health", () => {
  test("Check and List follow readiness; an unknown service is NOT_FOUND", async () => {
    const client = new HealthClient(`${HOST}:${withReflection.port}`, credentials.createInsecure());
    try {
      ready = true;
      expect(await unary(client, "check", { service: "" })).toEqual({ status: SERVING });
      expect(await unary(client, "check", { service: "gravity.v1.Cache" })).toEqual({ status: SERVING });
      ready = "store not configured";
      expect(await unary(client, "check", { service: "" })).toEqual({ status: NOT_SERVING });
      const list = await unary<{ statuses: Record<string, { status: string }> }>(client, "list", {});
      expect(list.statuses["groupcachepb.GroupCache"]).toEqual({ status: NOT_SERVING });
      const unknown = await unary(client, "check", { service: "no.Such" }).then(
        () => null,
        (e: ServiceError) => e,
      );
      expect(unknown?.code).toBe(status.NOT_FOUND);
    } finally {
      ready = true;
      client.close();
    }
  });

  test("Watch sends the status now, then each change", async () => {
    const client = new HealthClient(`${HOST}:${withReflection.port}`, credentials.createInsecure());
    const seen: string[] = [];
    ready = true;
    const stream = (
      client as unknown as { watch(r: object): ClientReadableStream<{ status: string }> }
    ).watch({
      service: "",
    });
    stream.on("data", (reply: { status: string }) => seen.push(reply.status));
    stream.on("error", () => {});
    try {
      const replies = (n: number, what: string) =>
        pollUntil(() => (seen.length >= n ? true : undefined), { deadlineMs: 5000, what });
      await replies(1, "the first Watch reply");
      ready = "draining";
      await replies(2, "a Watch reply after readiness changed");
      ready = true;
      await replies(3, "a Watch reply after readiness came back");
      expect(seen).toEqual([SERVING, NOT_SERVING, SERVING]);
    } finally {
      ready = true;
      stream.cancel();
      client.close();
    }
  });
});

test(
  "the compiled router: reflection on by default; NOT_SERVING while its only pool has no leaf up, SERVING again once the leaf is back",
  async () => {
    const leaf = await startLeaf(["--port", "0"]);
    const dir = mkdtempSync(join(tmpdir(), "gravity-grpc-health-"));
    const config = join(dir, "router.json");
    writeFileSync(
      config,
      JSON.stringify({
        pools: { main: { servers: [`${HOST}:${leaf.port}`], tko: { failures: 1, probeIntervalMs: 100 } } },
        route: "main",
      }),
    );
    const router = await startRouter(["--port", "0", "--config", config, "--grpc-port", "0"]);
    const [, port] = (await router.waitForStdout(/grpc on \S+:(\d+) /)) as RegExpExecArray;
    const client = new HealthClient(`${HOST}:${port}`, credentials.createInsecure());
    const check = () => unary<{ status: string }>(client, "check", { service: "" }).then((r) => r.status);
    const memcached = createClient({ servers: [`${HOST}:${router.port}`] });
    try {
      expect(await check()).toBe(SERVING);
      // The compiled executable serves reflection on a loopback address by default.
      const [list] = await reflect(ReflectionV1, Number(port), [{ listServices: "*" }]);
      expect(list?.listServicesResponse?.service.map((s) => s.name)).toContain("gravity.v1.Cache");
      const leafPort = leaf.port;
      expect(await leaf.stop("SIGKILL")).toBeNull();
      // Requests that fail mark the leaf down (TKO); readiness follows.
      await pollUntil(
        async () => {
          await memcached.getString("k").catch(() => null);
          return (await check()) === NOT_SERVING ? true : undefined;
        },
        { deadlineMs: 15_000, intervalMs: 50, what: "the router to report NOT_SERVING" },
      );
      const back = await startLeaf(["--port", String(leafPort)]);
      await pollUntil(async () => ((await check()) === SERVING ? true : undefined), {
        deadlineMs: 15_000,
        what: "the router to report SERVING again",
      });
      await back.stop("SIGTERM");
    } finally {
      client.close();
      await memcached.close();
      await router.stop("SIGTERM");
    }
  },
  SERVER_TEST_MS,
);
