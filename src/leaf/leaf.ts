// A leaf: the native store plus memcached listeners on one or more threads.
//
//   main thread: configure store ─> listener (port P) ─> workers 2..N listen on P (reusePort)
//                sweeper timer (expired items)          all serve the one process-global store
import { native } from "../native/index.ts";
import { type Listener, listen } from "./listener.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

export interface LeafOptions {
  hostname: string;
  port: number;
  memoryBytes: number;
  maxItemBytes: number;
  threads: number;
  version: string;
}

/** A running leaf. */
export interface Leaf {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting on every thread, flushes in-flight replies, closes connections. */
  stop(graceMs?: number): Promise<void>;
}

/** How often expired items are swept, and at most how many per sweep. */
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_MAX_ITEMS = 20000;

// Inside a `bun build --compile` executable every module lives under /$bunfs/root and a worker
// entrypoint is named by its path relative to the entrypoints' common folder (src/).
const WORKER_ENTRY: string | URL = import.meta.url.includes("/$bunfs/")
  ? "./leaf/worker.ts"
  : new URL("./worker.ts", import.meta.url);

// Resolves with the worker's next message of `type`; rejects if it reports an error or fails to load.
function waitFor(worker: Worker, type: FromWorker["type"]): Promise<FromWorker> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
    };
    const onMessage = (event: MessageEvent<FromWorker>) => {
      const message = event.data;
      if (message.type === "error") {
        done();
        reject(new Error(`listener thread: ${message.message}`));
      } else if (message.type === type) {
        done();
        resolve(message);
      }
    };
    const onError = (event: ErrorEvent) => {
      done();
      reject(new Error(`listener thread failed: ${event.message}`));
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
  });
}

function send(worker: Worker, message: ToWorker): void {
  worker.postMessage(message);
}

/** Configures the store and starts the listeners. Throws if the port cannot be bound. */
export async function startLeaf(options: LeafOptions): Promise<Leaf> {
  native.configure({
    memoryBytes: options.memoryBytes,
    maxItemBytes: options.maxItemBytes,
    threads: options.threads,
    version: options.version,
  });
  const reusePort = options.threads > 1;
  const main: Listener = listen({ hostname: options.hostname, port: options.port, reusePort });
  const workers: Worker[] = [];
  try {
    for (let i = 1; i < options.threads; i++) {
      const worker = new Worker(WORKER_ENTRY);
      workers.push(worker);
      const listening = waitFor(worker, "listening");
      send(worker, { type: "listen", hostname: options.hostname, port: main.port });
      await listening;
    }
  } catch (error) {
    await main.stop(0);
    for (const worker of workers) worker.terminate();
    throw error;
  }

  const sweeper = setInterval(() => native.sweepExpired(SWEEP_MAX_ITEMS), SWEEP_INTERVAL_MS);

  return {
    hostname: options.hostname,
    port: main.port,
    async stop(graceMs = 5000) {
      clearInterval(sweeper);
      const stopped = workers.map((worker) => {
        const done = waitFor(worker, "stopped");
        send(worker, { type: "stop", graceMs });
        return done;
      });
      await Promise.all([main.stop(graceMs), ...stopped]);
      for (const worker of workers) worker.terminate();
    },
  };
}
