// `gravity leaf --nats URL[,URL] --nats-pool NAME`: serving the leaf over NATS request/reply for
// router pools with `transport: nats`.
import { UsageError } from "../errors.ts";
import { serveLeafOverNats } from "../leaf/nats-leaf.ts";
import { NativeRequestHandler } from "../leaf/nats-native-handler.ts";
import { NatsLink } from "../transport/nats-link.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";

export const NATS_FLAGS: readonly FlagSpec[] = [
  {
    name: "nats",
    kind: FlagKind.String,
    default: "",
    help: "serve over NATS too: URL[,URL] (needs --nats-pool)",
  },
  {
    name: "nats-pool",
    kind: FlagKind.String,
    default: "",
    help: "the router pool (transport: nats) this leaf serves",
  },
  { name: "nats-leaf-id", kind: FlagKind.String, default: "", help: "id in that pool (default: host:port)" },
  {
    name: "nats-prefix",
    kind: FlagKind.String,
    default: "gravity",
    help: "subject prefix (as the router's nats.prefix)",
  },
];

export interface LeafNats {
  close(): Promise<void>;
}

/** Serves the leaf over NATS when --nats is given; the store is process-global, one handler serves it. */
export async function serveNatsFromFlags(
  flags: FlagValues,
  host: string,
  port: number,
): Promise<LeafNats | null> {
  const servers = flags.nats as string;
  const pool = flags["nats-pool"] as string;
  if (servers === "") {
    if (pool !== "") throw new UsageError("--nats-pool: only with --nats");
    return null;
  }
  if (pool === "") throw new UsageError("--nats-pool: required with --nats (the pool this leaf serves)");
  const leafId = (flags["nats-leaf-id"] as string) || `${host}:${port}`;
  const link = NatsLink.open({
    servers: servers.split(","),
    name: `gravity-leaf ${leafId}`,
    onStatus: (status, server) => console.log(`gravity leaf: nats ${status} (${server})`),
  });
  const handler = new NativeRequestHandler();
  const service = serveLeafOverNats({
    link,
    prefix: flags["nats-prefix"] as string,
    pool,
    leafId,
    handle: (request) => handler.handle(request),
    onError: (error) => console.error(`gravity leaf: nats request failed: ${(error as Error).message}`),
  });
  console.log(`gravity leaf: serving over nats as ${service.subjects.join(", ")}`);
  return {
    async close() {
      await service.close();
      handler.close();
      await link.close();
    },
  };
}
