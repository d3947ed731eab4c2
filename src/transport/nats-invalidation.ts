// The invalidation bus: deletes broadcast to every cluster, as mcrouter's cross-cluster deletes and
// the paper's McSqueal carry a write in one region to the caches of the others ("Scaling Memcache
// at Facebook", section 5).
//
//   cluster A router: publishDelete(key) ─> subject (payload: the key's bytes, header cluster: A)
//                                             │
//        ┌────────────────────────────────────┼───────────────────────────┐
//        v                                    v                           v
//   cluster A bus: own cluster, skipped   cluster B bus: apply(key)   cluster C bus: apply(key)
//                                          (one router of B, the queue group "B")
//
// Each bus subscribes in the queue group of its cluster id (unless told otherwise), so one router
// per cluster applies each delete to its pools, not every router of it. Applying is bounded: at
// most `maxConcurrent` apply() calls at once, the rest wait in order, and past `maxQueued` new
// deletes are dropped and counted (a cluster that cannot keep up loses invalidations rather than
// memory).
//
// Delivery is core NATS: at most once. A cluster disconnected from NATS when a delete is published
// never sees it (its copy stays stale until it expires), and publishDelete() fails fast with
// ConnectionError while this router is disconnected, so the caller knows the broadcast did not go
// out. McSqueal replays from the database's commit log for this reason; a durable stream
// (JetStream) would be the equivalent here.
import { headers, type Msg, type Subscription } from "nats";
import type { NatsLink } from "./nats-link.ts";
import { NatsHeader } from "./nats-subjects.ts";

export interface InvalidationBusOptions {
  link: NatsLink;
  /** The subject every cluster publishes deletes on and listens to, e.g. "gravity.invalidate". */
  subject: string;
  /** This cluster's id: sent with its deletes, which it then skips; the default queue group. */
  clusterId: string;
  /** Deletes the key from this cluster's pools; a rejection is counted and reported, not retried. */
  apply: (key: Uint8Array) => Promise<void>;
  /** apply() calls running at once (default 16). */
  maxConcurrent?: number;
  /** Deletes waiting for a free slot before new ones are dropped (default 100 000). */
  maxQueued?: number;
  /** Queue group (default: the cluster id); null: every router of the cluster applies every delete. */
  queue?: string | null;
  /** A delete that failed to apply or was dropped. */
  onError?: (key: Uint8Array, error: Error) => void;
}

/** What the bus has done, for metrics and tests. */
export interface InvalidationCounters {
  published: number;
  received: number;
  /** Deletes of this cluster that came back (skipped). */
  skippedOwn: number;
  applied: number;
  failed: number;
  /** Dropped because maxQueued were waiting. */
  dropped: number;
}

/** Publishes this cluster's deletes and applies the other clusters'. */
export class InvalidationBus {
  readonly counters: InvalidationCounters = {
    published: 0,
    received: 0,
    skippedOwn: 0,
    applied: 0,
    failed: 0,
    dropped: 0,
  };
  /** Resolves once the subscription is registered with a NATS server (the first time). */
  readonly ready: Promise<void>;
  private readonly maxConcurrent: number;
  private readonly maxQueued: number;
  private readonly waiting: Uint8Array[] = []; // keys received, not yet applying (FIFO)
  private waitingHead = 0;
  private running = 0; // apply() calls in progress
  private subscription: Subscription | null = null;
  private readonly stopListening: () => void;
  private closed = false;

  constructor(private readonly options: InvalidationBusOptions) {
    if (options.clusterId === "") throw new RangeError("clusterId must not be empty");
    this.maxConcurrent = options.maxConcurrent ?? 16;
    this.maxQueued = options.maxQueued ?? 100_000;
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new RangeError(`maxConcurrent must be a positive integer, got ${this.maxConcurrent}`);
    }
    let markReady: () => void = () => {};
    this.ready = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    const queue = options.queue === undefined ? options.clusterId : options.queue;
    this.stopListening = options.link.onConnection((nc) => {
      if (this.closed) return;
      this.subscription = nc.subscribe(options.subject, {
        ...(queue === null ? {} : { queue }),
        callback: (error, msg) => {
          if (error === null) this.receive(msg);
        },
      });
      nc.flush().then(markReady, () => {});
    });
  }

  /**
   * Broadcasts a delete of `key` to every other cluster. Throws ConnectionError at once if NATS is
   * unreachable (the delete did not go out). Does not apply it to this cluster.
   */
  publishDelete(key: Uint8Array): void {
    const nc = this.options.link.require();
    const h = headers();
    h.set(NatsHeader.Cluster, this.options.clusterId);
    nc.publish(this.options.subject, key, { headers: h });
    this.counters.published++;
  }

  /** Deletes received and not yet applied (queued or running). */
  get backlog(): number {
    return this.waiting.length - this.waitingHead + this.running;
  }

  /** Stops listening; deletes already queued are still applied. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopListening();
    if (this.subscription !== null && !this.subscription.isClosed()) this.subscription.unsubscribe();
    this.subscription = null;
  }

  private receive(msg: Msg): void {
    this.counters.received++;
    if (msg.headers?.get(NatsHeader.Cluster) === this.options.clusterId) {
      this.counters.skippedOwn++;
      return;
    }
    const key = new Uint8Array(msg.data); // a copy: nats.js may reuse what it read into
    if (this.waiting.length - this.waitingHead >= this.maxQueued) {
      this.counters.dropped++;
      this.options.onError?.(
        key,
        new Error(`invalidation dropped: ${this.maxQueued} deletes already waiting`),
      );
      return;
    }
    this.waiting.push(key);
    this.pump();
  }

  private pump(): void {
    while (this.running < this.maxConcurrent && this.waitingHead < this.waiting.length) {
      const key = this.waiting[this.waitingHead++] as Uint8Array;
      if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead);
        this.waitingHead = 0;
      }
      this.running++;
      let applying: Promise<void>;
      try {
        applying = this.options.apply(key);
      } catch (error) {
        applying = Promise.reject(error);
      }
      applying.then(
        () => {
          this.counters.applied++;
          this.done();
        },
        (error: unknown) => {
          this.counters.failed++;
          this.options.onError?.(key, error instanceof Error ? error : new Error(String(error)));
          this.done();
        },
      );
    }
  }

  private done(): void {
    this.running--;
    this.pump();
  }
}
