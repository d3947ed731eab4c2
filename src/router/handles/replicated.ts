// A replicated pool: every leaf holds a copy. Writes and deletes go to all of them, reads to one
// (or to all, or hedged), as mcrouter's AllSync/AllAsync/AllMajority/AllInitial routes and its
// "one replica per router" read spreading do.
//
//   write ──> every replica (down ones skipped, or failing the write under onDown: fail-fast)
//     all-sync      wait for all; any failure wins (the worst reply), else the first replica's
//     all-majority  answer once a majority agree; a failure if they cannot
//     all-initial   answer with the first replica's reply; the others finish in the background
//     all-async     answer at once (STORED/DELETED/TOUCHED/HD); replies are only counted
//   read ──> one    this router's preferred replica, the next on error or when down
//            all-fastest  every replica, the first good reply wins
//            hedged       the preferred replica; the next after the hedge delay (hedged.ts)

import { DestinationDownError, NoHealthyDestinationError } from "../../errors.ts";
import type { Reply } from "../../protocol/reply.ts";
import { Reply as ReplyClass, ReplyType } from "../../protocol/reply.ts";
import { Op, OpKind, type Request } from "../../protocol/request.ts";
import type { Sender, SendOptions } from "../../transport/transport.ts";
import { type HedgeSpec, OnDown, ReadPolicy, WritePolicy } from "../config-types.ts";
import { isFailure } from "../forward.ts";
import type { Pool } from "../pool.ts";
import { SpoolingSender } from "../spooling-sender.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";
import { HedgeBudget, type HedgeCounters, hedgedSend } from "./hedged.ts";

const ANY_CONNECTION: SendOptions = { affinity: -1 }; // no pinning to the client's connection

export interface ReplicatedOptions {
  writes: WritePolicy;
  reads: ReadPolicy;
  hedge?: HedgeSpec;
  onDown: OnDown;
  /** Counts hedges sent and won (metrics); optional. */
  counters?: HedgeCounters;
  /** Called with write replies or errors nobody waits for (all-async, all-initial); optional. */
  onBackgroundResult?: (result: Reply | Error) => void;
}

export class ReplicatedRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[] = [];
  // Spreads reads: each router (each process) prefers its own replica, so N routers in front of
  // N replicas load them evenly without coordinating.
  private readonly preferred: number;
  private readonly budget: HedgeBudget | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly options: ReplicatedOptions,
    preferred = Math.floor(Math.random() * Math.max(1, pool.destinations.length)),
  ) {
    this.preferred = preferred;
    this.routeName = `replicated(pool=${pool.name}, writes=${options.writes}, reads=${options.reads})`;
    this.budget = options.hedge === undefined ? undefined : new HedgeBudget(options.hedge.budget);
  }

  route(request: Request): Promise<Reply> {
    if (request.kind === OpKind.Read) return this.read(request);
    return this.write(request);
  }

  // Reads: the replicas in the order they would be tried; writes and deletes: every replica reached.
  traverse(request: Request, visit: RouteVisitor): void {
    if (request.kind !== OpKind.Read) {
      const spools = request.kind === OpKind.Delete;
      for (const destination of this.pool.destinations) {
        if (!destination.down) visit(destination, "write");
        else if (spools && destination instanceof SpoolingSender) visit(destination, "spooled write");
      }
      return;
    }
    const hedged = this.options.reads === ReadPolicy.Hedged;
    const order = this.readOrder(
      hedged ? hedgeDelayMs(this.options.hedge as HedgeSpec, this.pool) : undefined,
    );
    order.forEach((destination, index) => {
      if (index === 0 || this.options.reads === ReadPolicy.AllFastest) visit(destination, "read");
      else visit(destination, hedged ? "hedge" : "failover read");
    });
  }

  // Replicas in the order this router tries them: preferred first, then the rest in pool order,
  // skipping those marked down. Under fail-fast, a down preferred replica fails the read. With a
  // stall threshold (hedged reads: the hedge delay), replicas on which a read would wait behind a
  // reply overdue by that long go last, in the same relative order.
  private readOrder(stallMs?: number): Sender[] {
    const all = this.pool.destinations;
    if (all.length === 0) throw new NoHealthyDestinationError(`pool ${this.pool.name} has no servers`);
    const first = all[this.preferred % all.length] as Sender;
    if (this.options.onDown === OnDown.FailFast && first.down) throw new DestinationDownError(first.name);
    const order: Sender[] = [];
    let stalled = 0; // stalled replicas, moved to the end of order as they are found
    for (let i = 0; i < all.length; i++) {
      const destination = all[(this.preferred + i) % all.length] as Sender;
      if (destination.down) continue;
      if (stallMs !== undefined && destination.stalled?.(stallMs) === true) {
        order.push(destination);
        stalled++;
      } else if (stalled === 0) order.push(destination);
      else order.splice(order.length - stalled, 0, destination);
    }
    return order;
  }

  // Reads record their latency as the client sees it into the pool's window (adaptive hedging).
  private async read(request: Request): Promise<Reply> {
    const start = performance.now();
    const reply = await this.readOnce(request);
    this.pool.latency.record(performance.now() - start);
    return reply;
  }

  private async readOnce(request: Request): Promise<Reply> {
    const delayMs =
      this.options.reads === ReadPolicy.Hedged
        ? hedgeDelayMs(this.options.hedge as HedgeSpec, this.pool)
        : undefined;
    const order = this.readOrder(delayMs);
    if (order.length === 0)
      throw new NoHealthyDestinationError(`pool ${this.pool.name}: every replica is down`);
    // all-fastest and hedged reads already give up read-your-writes ordering (they may read
    // another replica), so they also give up connection affinity: each goes on the least busy
    // connection of its replica, away from one stalled behind a slow reply (a pipelined socket
    // answers in order, so one slow reply holds every reply queued behind it).
    switch (this.options.reads) {
      case ReadPolicy.AllFastest:
        return firstGood(order.map((destination) => destination.send(request, ANY_CONNECTION)));
      case ReadPolicy.Hedged:
        return hedgedSend(order, request, {
          delayMs: delayMs as number,
          budget: this.budget as HedgeBudget,
          counters: this.options.counters,
        });
      default:
        return sendInOrder(order, request);
    }
  }

  private async write(request: Request): Promise<Reply> {
    const all = this.pool.destinations;
    // A delete also goes to a down replica whose deletes are spooled (spooling-sender.ts): it is
    // written to the spool and replayed when the replica is back, so its copy does not survive.
    const spools = request.kind === OpKind.Delete;
    const targets = all.filter(
      (destination) => !destination.down || (spools && destination instanceof SpoolingSender),
    );
    if (this.options.onDown === OnDown.FailFast && targets.length < all.length) {
      const down = all.find((destination) => destination.down) as Sender;
      throw new DestinationDownError(down.name);
    }
    if (targets.length === 0)
      throw new NoHealthyDestinationError(`pool ${this.pool.name}: every replica is down`);
    const sends = targets.map((destination) => destination.send(request));
    let policy = this.options.writes;
    // incr/decr answer with the new value, which cannot be made up: async becomes initial.
    if (policy === WritePolicy.AllAsync && syntheticSuccess(request) === undefined)
      policy = WritePolicy.AllInitial;
    switch (policy) {
      case WritePolicy.AllAsync:
        for (const send of sends) this.background(send);
        return syntheticSuccess(request) as Reply;
      case WritePolicy.AllInitial:
        for (const send of sends.slice(1)) this.background(send);
        return sends[0] as Promise<Reply>;
      case WritePolicy.AllMajority:
        return majority(sends);
      default:
        return worst(await Promise.allSettled(sends));
    }
  }

  private background(send: Promise<Reply>): void {
    send.then(
      (reply) => this.options.onBackgroundResult?.(reply),
      (error: unknown) =>
        this.options.onBackgroundResult?.(error instanceof Error ? error : new Error(String(error))),
    );
  }
}

/** The hedge delay for a pool now: fixed, or its recent latency percentile clamped to [min, max]. */
export function hedgeDelayMs(spec: HedgeSpec, pool: Pool): number {
  if (spec.delayMs !== "adaptive") return spec.delayMs;
  const observed =
    pool.latency.size >= MIN_SAMPLES_FOR_ADAPTIVE ? pool.latency.percentile(spec.percentile) : undefined;
  const delay = observed ?? spec.maxDelayMs;
  return Math.min(spec.maxDelayMs, Math.max(spec.minDelayMs, delay));
}

const MIN_SAMPLES_FOR_ADAPTIVE = 20;

// Tries destinations one after another, the next only after a transport error, a down mark or a
// SERVER_ERROR.
async function sendInOrder(order: readonly Sender[], request: Request): Promise<Reply> {
  let failed: Reply | undefined;
  let error: unknown;
  for (const destination of order) {
    try {
      const reply = await destination.send(request);
      if (!isFailure(reply)) return reply;
      failed = reply;
    } catch (caught) {
      error = caught;
    }
  }
  if (failed !== undefined) return failed;
  throw error;
}

/** The first reply that is not a failure; if every send fails, the last failure or error. */
export function firstGood(sends: readonly Promise<Reply>[]): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let pending = sends.length;
    let failed: Reply | undefined;
    let error: unknown;
    const settle = () => {
      if (--pending > 0) return;
      if (failed !== undefined) resolve(failed);
      else reject(error);
    };
    for (const send of sends) {
      send.then(
        (reply) => {
          if (!isFailure(reply)) resolve(reply);
          else failed = reply;
          settle();
        },
        (caught: unknown) => {
          error = caught;
          settle();
        },
      );
    }
  });
}

// all-sync's answer: an error if any replica failed (the client must not believe a write that
// did not reach every copy), else the first replica's reply.
function worst(results: readonly PromiseSettledResult<Reply>[]): Reply {
  let first: Reply | undefined;
  for (const result of results) {
    if (result.status === "rejected") throw result.reason;
    if (isFailure(result.value)) return result.value;
    first ??= result.value;
  }
  return first as Reply;
}

// all-majority's answer: the first reply type that a majority of the replicas agree on.
function majority(sends: readonly Promise<Reply>[]): Promise<Reply> {
  const needed = Math.floor(sends.length / 2) + 1;
  return new Promise((resolve, reject) => {
    const votes = new Map<ReplyType, number>();
    let pending = sends.length;
    let done = false;
    let lastFailure: Reply | undefined;
    let lastError: unknown;
    const settle = () => {
      if (--pending > 0 || done) return;
      done = true;
      if (lastFailure !== undefined) resolve(lastFailure);
      else reject(lastError ?? new NoHealthyDestinationError("no majority of replicas agreed"));
    };
    for (const send of sends) {
      send.then(
        (reply) => {
          if (isFailure(reply)) lastFailure = reply;
          const count = (votes.get(reply.type) ?? 0) + 1;
          votes.set(reply.type, count);
          if (!done && count >= needed && !isFailure(reply)) {
            done = true;
            resolve(reply);
          }
          settle();
        },
        (error: unknown) => {
          lastError = error;
          settle();
        },
      );
    }
  });
}

// The success reply of a write whose outcome all-async does not wait for; undefined when the reply
// carries data (incr/decr, ma with v) that cannot be made up.
function syntheticSuccess(request: Request): Reply | undefined {
  switch (request.op) {
    case Op.Set:
    case Op.Add:
    case Op.Replace:
    case Op.Append:
    case Op.Prepend:
    case Op.Cas:
      return new ReplyClass(ReplyType.Stored);
    case Op.Delete:
      return new ReplyClass(ReplyType.Deleted);
    case Op.Touch:
      return new ReplyClass(ReplyType.Touched);
    case Op.MetaSet:
    case Op.MetaDelete:
      return request.metaFlags.some((flag) => flag !== "q")
        ? undefined
        : new ReplyClass(ReplyType.MetaHeader);
    default:
      return undefined;
  }
}
