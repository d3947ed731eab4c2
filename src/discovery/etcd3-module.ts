// Loads the etcd3 package, which reads its gRPC definitions when first imported:
// `loadSync(`${__dirname}/../proto/rpc.proto`)`. In a `bun build --compile` binary `__dirname` is
// frozen to the build machine's node_modules path, so there the import fails with ENOENT on any
// other machine (and if imported statically, so would every gravity command). Here the three
// .proto files are embedded as text, and while etcd3 loads, a read of one of them that is not on
// disk is answered from the embedded copy. The package is imported on first use only: gravity
// without --etcd never pays for parsing the definitions.
import fs from "node:fs";
import authProto from "etcd3/proto/auth.proto" with { type: "text" };
import kvProto from "etcd3/proto/kv.proto" with { type: "text" };
import rpcProto from "etcd3/proto/rpc.proto" with { type: "text" };

export type Etcd3Module = typeof import("etcd3");

const EMBEDDED: Record<string, string> = {
  "auth.proto": authProto,
  "kv.proto": kvProto,
  "rpc.proto": rpcProto,
};
const PROTO_PATH = /[/\\]etcd3[/\\]proto[/\\]([a-z]+\.proto)$/;

let loading: Promise<Etcd3Module> | undefined;

/** The etcd3 module, imported once. Rejects only if the package itself is missing or broken. */
export function loadEtcd3(): Promise<Etcd3Module> {
  loading ??= importWithEmbeddedProtos();
  return loading;
}

/** The embedded copy of an etcd3 .proto file that `path` names, if it names one. */
export function embeddedProto(path: string): string | undefined {
  const name = PROTO_PATH.exec(path)?.[1];
  return name === undefined ? undefined : EMBEDDED[name];
}

async function importWithEmbeddedProtos(): Promise<Etcd3Module> {
  const readFileSync = fs.readFileSync;
  const read = readFileSync as (path: fs.PathOrFileDescriptor, options?: unknown) => string | Buffer;
  fs.readFileSync = ((path: fs.PathOrFileDescriptor, options?: unknown) => {
    if (typeof path !== "string") return read(path, options);
    const text = embeddedProto(path);
    if (text === undefined || fs.existsSync(path)) return read(path, options);
    const encoding =
      typeof options === "string" ? options : (options as { encoding?: unknown } | undefined)?.encoding;
    return encoding === undefined || encoding === null ? Buffer.from(text, "utf8") : text;
  }) as typeof fs.readFileSync;
  try {
    return await import("etcd3");
  } finally {
    fs.readFileSync = readFileSync;
  }
}
