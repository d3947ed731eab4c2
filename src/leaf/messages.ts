// Messages between the leaf's main thread and its listener workers.

export type ToWorker =
  | { type: "listen"; hostname: string; port: number; maxConnections: number }
  | { type: "stop"; graceMs: number };

export type FromWorker =
  | { type: "listening"; port: number }
  | { type: "stopped" }
  | { type: "error"; message: string };
