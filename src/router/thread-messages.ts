// Messages between a router's main thread and its listener workers (`gravity router --threads N`).
import type { Registry } from "prom-client";
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import type { TlsMaterial } from "../security/tls.ts";
import type { RouterConfig } from "./config.ts";
import type { LoadLimits } from "./load-budget.ts";

/** One worker's registry as prom-client's getMetricsAsJSON() returns it (structured-cloneable). */
export type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

export type ToRouterWorker =
  | {
      type: "start";
      /** 1..N-1: the main thread is thread 0. */
      thread: number;
      threads: number;
      config: RouterConfig;
      host: string;
      port: number;
      maxConnections: number;
      maxItemBytes: number;
      /** This thread's share of the process's load limits. */
      limits: LoadLimits;
      /** TLS on the client port, and memcached's text authentication (user -> password). */
      tls: TlsMaterial | null;
      authPasswords: SaslPasswords | null;
      verbosity: number;
      /** --sasl-file's users: clients must authenticate (SASL PLAIN, binary only). */
      sasl?: SaslPasswords;
      /** Forward every client delete's key to the main thread (it owns the invalidation bus). */
      forwardDeletes: boolean;
    }
  | { type: "reload"; id: number; config: RouterConfig }
  | { type: "metrics"; id: number }
  | { type: "stop"; id: number; graceMs: number };

export type FromRouterWorker =
  | { type: "listening"; port: number }
  | { type: "reloaded"; id: number }
  | { type: "metrics"; id: number; metrics: MetricsJson }
  | { type: "stopped"; id: number }
  | { type: "delete"; key: Uint8Array }
  | { type: "health"; destination: string; down: boolean; reason?: string }
  /** A request (`id`) or the start (no id) failed. */
  | { type: "error"; id?: number; message: string };
