// The gRPC messages' codec, two libraries on the same messages of proto/gravity.proto: protobuf-es
// (@bufbuild/protobuf, the generated code the server uses) and protobuf.js (through
// @grpc/proto-loader, which builds grpc-js service definitions from the .proto file at run time).
// Each round trip is what a server does per Get: decode a GetRequest, encode a GetResponse with a
// 100-byte value. Runs alternate; prints the median round trips per second of `--repeats` runs.
//
//   bun bench/grpc-codec.ts [--seconds 1 --repeats 5]
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { parseFlags } from "../src/cli/args.ts";
import { GetRequestSchema, GetResponseSchema } from "../src/grpc/generated/gravity_pb.ts";
import { median } from "./report.ts";

const flags = parseFlags(process.argv.slice(2), [
  { name: "seconds", kind: "integer", default: 1, min: 1, max: 600, help: "length of one run" },
  { name: "repeats", kind: "integer", default: 5, min: 1, max: 100, help: "runs per library" },
]);
const seconds = flags.seconds as number;
const utf8 = new TextEncoder();
const request = { group: "users", key: utf8.encode("user:12345") };
const value = new Uint8Array(100).fill(7);

const requestBytes = toBinary(GetRequestSchema, create(GetRequestSchema, request));

function protobufEs(): void {
  const decoded = fromBinary(GetRequestSchema, requestBytes);
  if (decoded.group.length === 0) throw new Error("bad decode");
  toBinary(GetResponseSchema, create(GetResponseSchema, { found: true, value }));
}

const definition = loadSync(new URL("../proto/gravity.proto", import.meta.url).pathname, {
  defaults: true,
});
const get = (definition["gravity.v1.Cache"] as ServiceDefinition).Get as MethodDefinition<object, object>;
const requestBuffer = Buffer.from(requestBytes);

function protobufJs(): void {
  const decoded = get.requestDeserialize(requestBuffer) as { group: string };
  if (decoded.group.length === 0) throw new Error("bad decode");
  get.responseSerialize({ found: true, value });
}

function roundTripsPerSecond(run: () => void): number {
  const deadline = performance.now() + seconds * 1000;
  let count = 0;
  while (performance.now() < deadline) {
    for (let i = 0; i < 1000; i++) run();
    count += 1000;
  }
  return count / seconds;
}

const samples: Record<string, number[]> = { "protobuf-es": [], "protobuf.js (proto-loader)": [] };
for (let i = 0; i < (flags.repeats as number); i++) {
  samples["protobuf-es"]?.push(roundTripsPerSecond(protobufEs));
  samples["protobuf.js (proto-loader)"]?.push(roundTripsPerSecond(protobufJs));
}
for (const [name, values] of Object.entries(samples)) {
  const perSecond = Math.round(median(values)).toLocaleString("en-US");
  console.log(`${name.padEnd(28)} ${perSecond} round trips/s (median of ${values.length})`);
}
