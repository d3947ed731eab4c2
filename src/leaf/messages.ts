// Messages between the leaf's main thread and its listener workers.
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import type { TlsMaterial } from "../security/tls.ts";
import type { InjectedLatency } from "./listener.ts";

export type ToWorker =
  | {
      type: "listen";
      hostname: string;
      port: number;
      maxConnections: number;
      injectLatency: InjectedLatency | null;
      verbosity: number;
      tls: TlsMaterial | null;
      authPasswords: SaslPasswords | null;
    }
  | { type: "stop"; graceMs: number };

export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "stopped" }
  | { type: "error"; message: string };
