// `gravity router --threads N`: the main thread's side of threads 1..N-1 (src/router/worker.ts).
//
//   main thread: config, watch, SIGHUP, etcd ──reload──> every worker (awaits each one's swap)
//                listener (port P, reusePort) ─┐
//                worker 1..N-1 listen on P ────┴─ the kernel spreads connections over them
//                /metrics: own registry + every worker's JSON, aggregated per scrape
//                worker deletes ──> invalidation bus; worker health ──> readiness, log lines
//
// What each thread owns: its route tree, its connections to the leaves and their TKO state (as
// in mcrouter's proxies), and its counters. What is shared: the config (sent by the main thread,
// so every thread routes with the same tree) and the port. Replies never cross threads.
import { AggregatorRegistry, Registry } from "prom-client";
import { GravityError } from "../errors.ts";
import { CommonMetrics, RouterMetrics } from "../metrics/names.ts";
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import type { TlsMaterial } from "../security/tls.ts";
import type { RouterConfig } from "./config.ts";
import type { LoadLimits } from "./load-budget.ts";
import type { FromRouterWorker, MetricsJson, ToRouterWorker } from "./thread-messages.ts";

// Inside a `bun build --compile` executable every module lives under /$bunfs/root and a worker
// entrypoint is named by its path relative to the entrypoints' common folder (src/).
const WORKER_ENTRY: string | URL = import.meta.url.includes("/$bunfs/")
  ? "./router/worker.ts"
  : new URL("./worker.ts", import.meta.url);

/** How long a worker gets to answer a reload or a metrics request. */
const REQUEST_DEADLINE_MS = 5000;
/** Extra time stop() allows beyond the grace period before it gives up on a thread. */
const STOP_MARGIN_MS = 1000;

export interface RouterThreadsOptions {
  /** Threads in all, the main thread included (so N-1 workers). */
  threads: number;
  config: RouterConfig;
  host: string;
  /** The port the main thread listens on, with reusePort. */
  port: number;
  maxConnections: number;
  maxItemBytes: number;
  /** Each thread's share of the process's load limits (load-budget.ts threadShare). */
  limits: LoadLimits;
  /** TLS on the client port, and memcached's text authentication (user -> password). */
  tls: TlsMaterial | null;
  authPasswords: SaslPasswords | null;
  /** The -v level each thread starts with (`verbosity N` changes it per thread). */
  verbosity: number;
  /** --sasl-file's users: clients must authenticate (SASL PLAIN, binary only). */
  sasl?: SaslPasswords;
  /** Called with the key of every client delete a worker served (null: workers do not forward). */
  onDelete: ((key: Uint8Array) => void) | null;
  /** Called when a worker marks a destination down (TKO, with the last failure's words) or up again. */
  onHealthChange: (thread: number, destination: string, down: boolean, reason?: string) => void;
  /** Called if a worker dies after start (the router is then incomplete). */
  onFatal: (error: Error) => void;
}

interface Pending {
  resolve: (message: FromRouterWorker) => void;
  reject: (error: Error) => void;
}

// One worker and its requests in flight, matched to replies by id.
class WorkerLink {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  exited = false;

  constructor(
    readonly thread: number,
    readonly worker: Worker,
  ) {}

  send(message: ToRouterWorker): void {
    this.worker.postMessage(message);
  }

  /** Sends `make(id)` and resolves with the reply carrying that id; rejects on error, exit or deadline. */
  request(make: (id: number) => ToRouterWorker, deadlineMs: number): Promise<FromRouterWorker> {
    if (this.exited) return Promise.reject(this.gone());
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new GravityError("ETHREAD", `router thread ${this.thread} did not answer in ${deadlineMs} ms`),
        );
      }, deadlineMs);
      this.pending.set(id, {
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.send(make(id));
    });
  }

  /** Routes a reply to its request; false if the message answers none. */
  settle(message: FromRouterWorker): boolean {
    if (!("id" in message) || message.id === undefined) return false;
    const waiter = this.pending.get(message.id);
    if (waiter === undefined) return false;
    this.pending.delete(message.id);
    if (message.type === "error") {
      waiter.reject(new GravityError("ETHREAD", `router thread ${this.thread}: ${message.message}`));
    } else waiter.resolve(message);
    return true;
  }

  /** Fails every request in flight (the worker exited). */
  failAll(): void {
    this.exited = true;
    for (const waiter of this.pending.values()) waiter.reject(this.gone());
    this.pending.clear();
  }

  private gone(): Error {
    return new GravityError("ETHREAD", `router thread ${this.thread} has exited`);
  }
}

/** The workers of a router started with --threads N (N > 1); the main thread is thread 0. */
export class RouterThreads {
  private stopping = false;
  // Destinations each worker has marked down (TKO), by thread: readiness and destination_down.
  private readonly down = new Map<number, Set<string>>();

  private constructor(private readonly links: readonly WorkerLink[]) {}

  /** Starts threads 1..N-1 on `options.port`; resolves once each listens, rejects (stopping them all) if one cannot. */
  static async start(options: RouterThreadsOptions): Promise<RouterThreads> {
    const links: WorkerLink[] = [];
    try {
      for (let thread = 1; thread < options.threads; thread++) {
        const link = new WorkerLink(thread, new Worker(WORKER_ENTRY));
        links.push(link);
        await listening(link, {
          type: "start",
          thread,
          threads: options.threads,
          config: options.config,
          host: options.host,
          port: options.port,
          maxConnections: options.maxConnections,
          maxItemBytes: options.maxItemBytes,
          limits: options.limits,
          tls: options.tls,
          authPasswords: options.authPasswords,
          verbosity: options.verbosity,
          ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
          forwardDeletes: options.onDelete !== null,
        });
      }
    } catch (error) {
      for (const link of links) link.worker.terminate();
      throw error;
    }
    const started = new RouterThreads(links);
    for (const link of links) {
      link.worker.addEventListener("message", (event: MessageEvent<FromRouterWorker>) => {
        const message = event.data;
        if (link.settle(message)) return;
        if (message.type === "delete") options.onDelete?.(message.key);
        else if (message.type === "health") {
          started.noteHealth(link.thread, message.destination, message.down);
          options.onHealthChange(link.thread, message.destination, message.down, message.reason);
        }
      });
      link.worker.addEventListener("close", () => {
        link.failAll();
        if (!started.stopping)
          options.onFatal(new GravityError("ETHREAD", `router thread ${link.thread} exited unexpectedly`));
      });
      link.worker.addEventListener("error", (event) => {
        options.onFatal(
          new GravityError("ETHREAD", `router thread ${link.thread} failed: ${event.message}`, {
            cause: event.error,
          }),
        );
      });
    }
    return started;
  }

  /** Whether some worker has `destination` marked down (TKO). */
  downAnywhere(destination: string): boolean {
    for (const names of this.down.values()) if (names.has(destination)) return true;
    return false;
  }

  /** Every worker swaps to a tree built from `config`; resolves once all have (the main thread reloads itself first). */
  async reload(config: RouterConfig): Promise<void> {
    await Promise.all(
      this.links.map((link) => link.request((id) => ({ type: "reload", id, config }), REQUEST_DEADLINE_MS)),
    );
  }

  /** Each worker's registry, as JSON for AggregatorRegistry. */
  async metrics(): Promise<MetricsJson[]> {
    const replies = await Promise.all(
      this.links.map((link) => link.request((id) => ({ type: "metrics", id }), REQUEST_DEADLINE_MS)),
    );
    return replies.map((reply) => (reply.type === "metrics" ? reply.metrics : []));
  }

  /** Each worker stops accepting, answers what it read and closes; bounded by graceMs plus a margin. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    const deadline = graceMs + STOP_MARGIN_MS;
    await Promise.allSettled(
      this.links.map((link) => link.request((id) => ({ type: "stop", id, graceMs }), deadline)),
    );
    for (const link of this.links) link.worker.terminate();
  }

  private noteHealth(thread: number, destination: string, down: boolean): void {
    let names = this.down.get(thread);
    if (names === undefined) {
      names = new Set();
      this.down.set(thread, names);
    }
    if (down) names.add(destination);
    else names.delete(destination);
  }
}

// Sends the start message and resolves once the worker listens; rejects if it reports an error or fails to load.
function listening(link: WorkerLink, start: ToRouterWorker): Promise<void> {
  const { worker, thread } = link;
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
    };
    const onMessage = (event: MessageEvent<FromRouterWorker>) => {
      const message = event.data;
      if (message.type === "error") {
        done();
        reject(new GravityError("ETHREAD", `router thread ${thread}: ${message.message}`));
      } else if (message.type === "listening") {
        done();
        resolve();
      }
    };
    const onError = (event: ErrorEvent) => {
      done();
      reject(
        new GravityError("ETHREAD", `router thread ${thread} failed: ${event.message}`, {
          cause: event.error,
        }),
      );
    };
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
    link.send(start);
  });
}

// How each metric is combined over threads; everything not named is summed (counters, histograms,
// connections and in-flight gauges). TKO is per thread: a destination counts as down if any
// thread has it down, and a pool's healthy count is the lowest any thread sees.
const AGGREGATION: ReadonlyMap<string, "first" | "max" | "min"> = new Map([
  [CommonMetrics.buildInfo.name, "first"],
  [RouterMetrics.destinationDown.name, "max"],
  [RouterMetrics.poolDestinations.name, "max"],
  [RouterMetrics.poolHealthyDestinations.name, "min"],
]);

/**
 * The registry the HTTP server exposes at /metrics with --threads N: its own metrics (the HTTP
 * API's), the main thread's registry and every worker's, combined per scrape with prom-client's
 * AggregatorRegistry (as its cluster mode does for Node's worker processes).
 */
export class ThreadsRegistry extends Registry {
  constructor(
    private readonly main: Registry,
    private readonly threads: RouterThreads,
  ) {
    super();
  }

  override async metrics(): Promise<string> {
    const [own, main, workers] = await Promise.all([
      this.getMetricsAsJSON(),
      this.main.getMetricsAsJSON(),
      this.threads.metrics(),
    ]);
    const all = [own, main, ...workers];
    for (const registry of all) {
      for (const metric of registry) {
        const aggregator = AGGREGATION.get(metric.name);
        if (aggregator !== undefined) metric.aggregator = aggregator;
      }
    }
    return await AggregatorRegistry.aggregate(all).metrics();
  }
}
