// A leaf: the native store plus memcached listeners on one or more threads.
//
//   main thread: configure store ─> listener (port P) ─> workers 2..N listen on P (reusePort)
//                sweeper timer (expired items)          all serve the one process-global store
import { GravityError } from "../errors.ts";
import { native } from "../native/index.ts";
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import type { TlsMaterial } from "../security/tls.ts";
import { type InjectedLatency, type Listener, listen } from "./listener.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

export interface LeafOptions {
  hostname: string;
  port: number;
  memoryBytes: number;
  maxItemBytes: number;
  threads: number;
  version: string;
  /** As memcached -c: connections beyond this get "ERROR Too many open connections". */
  maxConnections: number;
  /** The store's eviction policy, one of EVICTION_POLICIES. */
  policy: string;
  /** Delays a share of replies, for tests and benchmarks of hedging and timeouts; null = off. */
  injectLatency?: InjectedLatency | null;
  /** -v count: 1 logs refused connections, 2 every connection opened and closed. */
  verbosity?: number;
  /** The users of memcached's SASL password file: clients must authenticate (SASL PLAIN, binary only). */
  saslPasswords?: SaslPasswords;
  /** memcached over TLS on the port (every thread's listener). */
  tls?: TlsMaterial | null;
  /** memcached's text authentication (-Y): user -> password. */
  authPasswords?: SaslPasswords | null;
}

/** Eviction policies the native store implements (native/src/store/policy_*.cc). */
export const EVICTION_POLICIES: readonly string[] = ["lru", "tinylfu"];

/** A running leaf. */
export interface Leaf {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting on every thread, flushes in-flight replies, closes connections. */
  stop(graceMs?: number): Promise<void>;
}

/** How often the expiry wheel is swept, and at most how many of its entries one sweep looks at. */
const SWEEP_INTERVAL_MS = 1000;
const SWEEP_MAX_ITEMS = 100_000;

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
        reject(new GravityError("ETHREAD", `listener thread: ${message.message}`));
      } else if (message.type === type) {
        done();
        resolve(message);
      }
    };
    const onError = (event: ErrorEvent) => {
      done();
      reject(new GravityError("ETHREAD", `listener thread failed: ${event.message}`, { cause: event.error }));
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
  });
}

function send(worker: Worker, message: ToWorker): void {
  worker.postMessage(message);
}

// Binds the main thread's listener. With reusePort, a plain bind first proves the port is free:
// otherwise a second leaf on the same port would silently split traffic with this one.
function bindMain(options: LeafOptions, reusePort: boolean): Listener {
  const where = `${options.hostname}:${options.port}`;
  try {
    let port = options.port;
    if (reusePort) {
      const probe = Bun.listen({ hostname: options.hostname, port, socket: { data() {} } });
      port = probe.port;
      probe.stop(true);
    }
    return listen({
      hostname: options.hostname,
      port,
      reusePort,
      maxConnections: options.maxConnections,
      injectLatency: options.injectLatency ?? null,
      verbosity: options.verbosity ?? 0,
      tls: options.tls ?? null,
      authPasswords: options.authPasswords ?? null,
    });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new GravityError("ELISTEN", `cannot listen on ${where} (--listen, --port): ${reason}`, {
      cause: error,
    });
  }
}

/**
 * Configures the process-global store and starts the listeners; one leaf per process.
 * `onFatal` is called if a listener thread dies after start (the leaf is then incomplete).
 */
export async function startLeaf(
  options: LeafOptions,
  onFatal: (error: Error) => void = () => {},
): Promise<Leaf> {
  const fresh = native.configure({
    memoryBytes: options.memoryBytes,
    maxItemBytes: options.maxItemBytes,
    threads: options.threads,
    version: options.version,
    policy: options.policy,
    ...(options.saslPasswords === undefined ? {} : { saslPasswords: [...options.saslPasswords] }),
  });
  if (!fresh)
    throw new GravityError("ESTORE", "the native store is already configured: one leaf per process");
  const reusePort = options.threads > 1;
  const main = bindMain(options, reusePort);
  const workers: Worker[] = [];
  let stopping = false;
  try {
    for (let i = 1; i < options.threads; i++) {
      const worker = new Worker(WORKER_ENTRY);
      workers.push(worker);
      const listening = waitFor(worker, "listening");
      send(worker, {
        type: "listen",
        hostname: options.hostname,
        port: main.port,
        maxConnections: options.maxConnections,
        injectLatency: options.injectLatency ?? null,
        verbosity: options.verbosity ?? 0,
        tls: options.tls ?? null,
        authPasswords: options.authPasswords ?? null,
      });
      await listening;
      worker.addEventListener("close", () => {
        if (!stopping) onFatal(new GravityError("ETHREAD", `listener thread ${i} exited unexpectedly`));
      });
      worker.addEventListener("error", (event) => {
        onFatal(
          new GravityError("ETHREAD", `listener thread ${i} failed: ${event.message}`, {
            cause: event.error,
          }),
        );
      });
    }
  } catch (error) {
    stopping = true;
    await main.stop(0);
    for (const worker of workers) worker.terminate();
    throw error;
  }

  const sweeper = setInterval(() => native.sweepExpired(SWEEP_MAX_ITEMS), SWEEP_INTERVAL_MS);

  return {
    hostname: options.hostname,
    port: main.port,
    async stop(graceMs = 5000) {
      stopping = true;
      clearInterval(sweeper);
      const stopped = workers.map((worker) => {
        const done = waitFor(worker, "stopped");
        send(worker, { type: "stop", graceMs });
        return done;
      });
      // A worker that died cannot answer: the whole stop is bounded by the grace period plus a margin.
      const everything = Promise.all([main.stop(graceMs), ...stopped]).then(() => {});
      await withTimeout(everything, graceMs + STOP_MARGIN_MS);
      for (const worker of workers) worker.terminate();
    },
  };
}

/** Extra time Leaf.stop() allows beyond the grace period before it gives up on a thread. */
const STOP_MARGIN_MS = 1000;

// Resolves when `promise` settles or after timeoutMs, whichever is first.
function withTimeout(promise: Promise<void>, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
