// The gRPC flags shared by `gravity leaf` and `gravity router`.

import type { CacheBackend } from "../cache/backend.ts";
import { GravityError, InvalidRequestError, UsageError } from "../errors.ts";
import { GRPC_DEFAULTS, type GrpcServer, startGrpcServer } from "../grpc/server.ts";
import type { Readiness } from "../http/readiness.ts";
import { exposureWarning, isLoopback } from "../security/exposure.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";
import type { Security } from "./security-flags.ts";

export const GRPC_FLAGS: readonly FlagSpec[] = [
  {
    name: "grpc-port",
    kind: FlagKind.Integer,
    default: -1,
    min: -1,
    max: 65535,
    help: "gRPC Cache and GroupCache services port, 0 = any free port (default: -1, off)",
  },
  { name: "grpc-listen", kind: FlagKind.String, default: "", help: "gRPC address (default: --listen)" },
  {
    name: "grpc-max-calls",
    kind: FlagKind.Integer,
    default: GRPC_DEFAULTS.maxConcurrentCalls,
    min: 1,
    max: 1_000_000,
    help: "gRPC calls in flight at once (more get RESOURCE_EXHAUSTED)",
  },
  {
    name: "grpc-reflection",
    kind: FlagKind.String,
    default: "auto",
    choices: ["auto", "true", "false"],
    help: "serve gRPC server reflection (grpcurl list/describe); auto = on for a loopback address",
  },
  {
    name: "grpc-groups",
    kind: FlagKind.String,
    default: "",
    help: "groups served, comma-separated (default: any)",
  },
];

export interface GrpcParts extends Security {
  backend: CacheBackend;
  /** What grpc.health.v1.Health reports (the function /readyz asks). */
  ready: () => Readiness;
}

/** Starts the gRPC server when --grpc-port is not -1; prints where it listens. */
export async function startGrpcFromFlags(
  role: string,
  flags: FlagValues,
  listen: string,
  parts: () => GrpcParts,
): Promise<GrpcServer | null> {
  const port = flags["grpc-port"] as number;
  if (port < 0) return null;
  const host = (flags["grpc-listen"] as string) || listen;
  const groupsText = flags["grpc-groups"] as string;
  const reflectionFlag = flags["grpc-reflection"] as string;
  const reflection = reflectionFlag === "auto" ? isLoopback(host) : reflectionFlag === "true";
  let server: GrpcServer;
  const resolved = parts();
  try {
    server = await startGrpcServer({
      host,
      port,
      ...resolved,
      reflection,
      maxConcurrentCalls: flags["grpc-max-calls"] as number,
      ...(groupsText === "" ? {} : { groups: groupsText.split(",") }),
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof InvalidRequestError) throw new UsageError(`--grpc-groups: ${reason}`);
    throw new GravityError(
      "ELISTEN",
      `cannot listen on ${host}:${port} (--grpc-listen, --grpc-port): ${reason}`,
      {
        cause: error,
      },
    );
  }
  const exposed = exposureWarning(role, "gRPC", host, resolved.tls !== null || resolved.tokens !== null);
  if (exposed !== null) console.warn(exposed);
  const extras = reflection ? ", grpc.health.v1.Health, reflection" : ", grpc.health.v1.Health";
  console.log(
    `gravity ${role} grpc on ${host}:${server.port} (gravity.v1.Cache, groupcachepb.GroupCache${extras})`,
  );
  return server;
}
