// The HTTP API and /metrics flags shared by `gravity leaf` and `gravity router`.

import type { CacheBackend } from "../cache/backend.ts";
import { GravityError } from "../errors.ts";
import type { Readiness } from "../http/readiness.ts";
import { type HttpServer, startHttpServer } from "../http/server.ts";
import type { Registry } from "../metrics/registry.ts";
import { exposureWarning } from "../security/exposure.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";
import type { Security } from "./security-flags.ts";

export const HTTP_FLAGS: readonly FlagSpec[] = [
  {
    name: "http-port",
    kind: FlagKind.Integer,
    default: -1,
    min: -1,
    max: 65535,
    help: "HTTP API, /healthz, /readyz and /metrics port, 0 = any free port (default: -1, off)",
  },
  { name: "http-listen", kind: FlagKind.String, default: "", help: "HTTP address (default: --listen)" },
];

export interface HttpParts extends Security {
  backend: CacheBackend;
  ready: () => Readiness;
  registry: Registry;
  maxValueBytes: number;
}

/** Starts the HTTP server when --http-port is not -1; prints where it listens. */
export function startHttpFromFlags(
  role: string,
  flags: FlagValues,
  listen: string,
  parts: () => HttpParts,
): HttpServer | null {
  const port = flags["http-port"] as number;
  if (port < 0) return null;
  const host = (flags["http-listen"] as string) || listen;
  let server: HttpServer;
  const resolved = parts();
  try {
    server = startHttpServer({ host, port, ...resolved });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new GravityError(
      "ELISTEN",
      `cannot listen on ${host}:${port} (--http-listen, --http-port): ${reason}`,
      {
        cause: error,
      },
    );
  }
  const exposed = exposureWarning(role, "HTTP", host, resolved.tls !== null || resolved.tokens !== null);
  if (exposed !== null) console.warn(exposed);
  const scheme = resolved.tls === null ? "http" : "https";
  console.log(`gravity ${role} ${scheme} on ${host}:${server.port} (/v1/cache, /healthz, /readyz, /metrics)`);
  return server;
}
