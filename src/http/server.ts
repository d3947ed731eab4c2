// The HTTP API of a leaf or a router (Bun.serve):
//
//   GET    /v1/cache/{group}/{key}   200 value (application/octet-stream) | 404 miss
//   PUT    /v1/cache/{group}/{key}   body = value, TTL from X-Gravity-TTL or ?ttl= (seconds): 204 stored
//   DELETE /v1/cache/{group}/{key}   204 deleted | 404 absent
//          bad group or key 400, unknown group 404, value too large 413, store out of memory 503,
//          backend failed 502 (a leaf's error, a timeout, a lost connection) or 503 (no destination up)
//   GET    /healthz                  200 "ok" while the process runs
//   GET    /readyz                   200 "ready" | 503 with the reason from ready()
//   GET    /metrics                  the registry in Prometheus's text format
//
// Errors are JSON: {"error": "<reason>"}. Every response is counted in gravity_http_requests_total.
// With tokens, /v1/cache and /metrics need `Authorization: Bearer <token>` (else 401); the probes
// stay open for the kubelet. With TLS material the server speaks HTTPS only (and with a CA,
// requires a client certificate that chains to it).
import type { Server } from "bun";
import { type CacheBackend, NO_MEMORY_TEXT, TOO_LARGE_TEXT } from "../cache/backend.ts";
import {
  DestinationDownError,
  GravityError,
  NoHealthyDestinationError,
  OverloadedError,
  ServerError,
} from "../errors.ts";
import type { HttpRoute } from "../metrics/names.ts";
import { httpMetrics, type Registry } from "../metrics/registry.ts";
import { bunTlsOptions, type TlsMaterial } from "../security/tls.ts";
import type { BearerTokens } from "../security/tokens.ts";
import { CACHE_PREFIX, isRefusal, parseCachePath, parseTtl } from "./cache-path.ts";
import type { Readiness } from "./readiness.ts";

export interface HttpServerOptions {
  host: string;
  /** 0 = any free port (read it back from HttpServer.port). */
  port: number;
  backend: CacheBackend;
  /** Asked on every /readyz: true when ready, else false or the reason. */
  ready: () => Readiness;
  registry: Registry;
  /** The groups the API serves; absent: any group. */
  groups?: readonly string[];
  /**
   * The largest value a PUT may carry (default 1 MiB, memcached's item size limit): a longer body
   * is refused with 413 before it is read. The store may still refuse a value a little shorter
   * (the limit counts key and overhead too), which is a 413 as well.
   */
  maxValueBytes?: number;
  /** HTTPS with this certificate and key (and, with a CA, client certificates required). */
  tls?: TlsMaterial | null;
  /** Bearer tokens required on /v1/cache and /metrics. */
  tokens?: BearerTokens | null;
}

export interface HttpServer {
  readonly host: string;
  readonly port: number;
  /** Stops accepting; with `force`, closes open connections too. */
  stop(force?: boolean): Promise<void>;
}

const MIB = 1024 * 1024;
const JSON_TYPE = { "content-type": "application/json" };
const TEXT_TYPE = { "content-type": "text/plain; charset=utf-8" };
const VALUE_TYPE = { "content-type": "application/octet-stream" };
const TTL_HEADER = "x-gravity-ttl";

function errorResponse(status: number, error: string, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify({ error }), { status, headers: { ...JSON_TYPE, ...headers } });
}

/** Starts the HTTP API; the port is bound when this returns. */
export function startHttpServer(options: HttpServerOptions): HttpServer {
  const metrics = httpMetrics(options.registry);
  const groups = options.groups === undefined ? undefined : new Set(options.groups);
  const maxValueBytes = options.maxValueBytes ?? MIB;
  const backend = options.backend;

  const cache = async (request: Request, url: URL): Promise<Response> => {
    const item = parseCachePath(url.pathname.slice(CACHE_PREFIX.length), groups);
    if (isRefusal(item)) return errorResponse(item.status, item.error);
    try {
      switch (request.method) {
        case "GET": {
          const value = await backend.get(item.itemKey);
          if (value === null) return errorResponse(404, "not found");
          return new Response(value, { headers: VALUE_TYPE });
        }
        case "PUT": {
          const ttl = parseTtl(request.headers.get(TTL_HEADER), url.searchParams.get("ttl"));
          if (typeof ttl !== "number") return errorResponse(ttl.status, ttl.error);
          const declared = Number(request.headers.get("content-length") ?? "0");
          if (declared > maxValueBytes) return tooLarge(maxValueBytes);
          const value = new Uint8Array(await request.arrayBuffer());
          if (value.length > maxValueBytes) return tooLarge(maxValueBytes);
          try {
            await backend.set(item.itemKey, value, ttl);
          } catch (error) {
            // The store's refusals (memcached's texts, from a leaf or the addon): 413 and 503.
            if (error instanceof ServerError && error.text === TOO_LARGE_TEXT)
              return errorResponse(413, TOO_LARGE_TEXT);
            if (error instanceof ServerError && error.text === NO_MEMORY_TEXT)
              return errorResponse(503, NO_MEMORY_TEXT);
            throw error;
          }
          return new Response(null, { status: 204 });
        }
        case "DELETE":
          return (await backend.delete(item.itemKey))
            ? new Response(null, { status: 204 })
            : errorResponse(404, "not found");
        default:
          return errorResponse(405, "method not allowed", { allow: "GET, PUT, DELETE" });
      }
    } catch (error) {
      return backendFailure(error);
    }
  };

  const tokens = options.tokens ?? null;
  const route = async (request: Request, url: URL, path: HttpRoute): Promise<Response> => {
    if (tokens !== null && (path === "cache" || path === "metrics")) {
      if (!tokens.accepts(request.headers.get("authorization"))) {
        return errorResponse(401, "a valid bearer token is required", { "www-authenticate": "Bearer" });
      }
    }
    if (path === "cache") return cache(request, url);
    if (path === "other") return errorResponse(404, "no such resource");
    if (request.method !== "GET" && request.method !== "HEAD") {
      return errorResponse(405, "method not allowed", { allow: "GET, HEAD" });
    }
    switch (path) {
      case "healthz":
        return new Response("ok\n", { headers: TEXT_TYPE });
      case "readyz": {
        const ready = options.ready();
        if (ready === true) return new Response("ready\n", { headers: TEXT_TYPE });
        const reason = ready === false ? "not ready" : ready;
        return new Response(`${reason}\n`, { status: 503, headers: TEXT_TYPE });
      }
      default:
        return new Response(await options.registry.metrics(), {
          headers: { "content-type": options.registry.contentType },
        });
    }
  };

  const tls = options.tls ?? null;
  const server: Server<undefined> = Bun.serve({
    hostname: options.host,
    port: options.port,
    development: false,
    ...(tls === null ? {} : { tls: bunTlsOptions(tls) }),
    // Room for the value plus slack; Bun refuses a longer body itself (413).
    maxRequestBodySize: maxValueBytes + 64 * 1024,
    async fetch(request) {
      const start = performance.now();
      const url = new URL(request.url);
      const path = routeOf(url.pathname);
      let response: Response;
      try {
        response = await route(request, url, path);
      } catch (error) {
        response = errorResponse(500, `internal error: ${(error as Error).message ?? String(error)}`);
      }
      metrics.observe(request.method, path, response.status, (performance.now() - start) / 1000);
      return response;
    },
  });

  return {
    host: options.host,
    port: server.port ?? options.port,
    stop: (force = false) => server.stop(force),
  };
}

function routeOf(pathname: string): HttpRoute {
  if (pathname.startsWith(CACHE_PREFIX)) return "cache";
  switch (pathname) {
    case "/healthz":
      return "healthz";
    case "/readyz":
      return "readyz";
    case "/metrics":
      return "metrics";
    default:
      return "other";
  }
}

function tooLarge(maxValueBytes: number): Response {
  return errorResponse(413, `value is larger than ${maxValueBytes} bytes`);
}

// A backend that could not answer: 503 when no destination is up or the router is overloaded
// (retry later), 502 when a leaf failed or answered with an error.
function backendFailure(error: unknown): Response {
  if (
    error instanceof DestinationDownError ||
    error instanceof NoHealthyDestinationError ||
    error instanceof OverloadedError
  ) {
    return errorResponse(503, error.message);
  }
  if (error instanceof GravityError) return errorResponse(502, error.message);
  return errorResponse(500, `internal error: ${error instanceof Error ? error.message : String(error)}`);
}
