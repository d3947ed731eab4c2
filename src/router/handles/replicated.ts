// A replicated pool: every leaf holds a copy. Writes and deletes go to all of them, reads to one
// (or to all, or hedged), as mcrouter's AllSync/AllAsync/AllMajority/AllInitial routes and its
// "one replica per router" read spreading do.
//
//   write ──> every live replica (down ones skipped, or failing the write under onDown: fail-fast)
//     all-sync      wait for all; acknowledged when writeQuorum replicas stored it (default: every
//                   replica of the pool, so a replica down or failing fails the write); else the
//                   worst failure, or DestinationDownError naming a replica that was skipped
//     all-majority  answer once a majority of the pool's replicas agree; a failure if they cannot
//     all-initial   answer with the first live replica's reply; the others finish in the background
//     all-async     answer at once (STORED/DELETED/TOUCHED/HD) if a replica is live; replies are
//                   only counted
//   read ──> one    this router's preferred replica, the next on error or when down
//            all-fastest  every replica, the first good reply wins
//            hedged       the preferred replica; the next after the hedge delay (hedged.ts)
//        ──> a miss is looked up on the other replicas and repaired (read-repair.ts); replicas
//            recovering from an outage are read first
//
// A write is sent to every live replica even when the answer will be a failure: the replicas that
// take it hold the newest value, and the client, told it failed, retries or deletes.

import { DestinationDownError, NoHealthyDestinationError } from "../../errors.ts";
import type { Reply } from "../../protocol/reply.ts";
import { Reply as ReplyClass, ReplyType } from "../../protocol/reply.ts";
import { Op, OpKind, type Request } from "../../protocol/request.ts";
import type { Sender, SendOptions } from "../../transport/transport.ts";
import { type HedgeSpec, OnDown, ReadPolicy, type ReadRepairSpec, WritePolicy } from "../config-types.ts";
import { isFailure, isMiss } from "../forward.ts";
import type { Pool } from "../pool.ts";
import { SpoolingSender } from "../spooling-sender.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";
import { type HedgeCounters, type HedgeOptions, hedgedSend } from "./hedged.ts";
import { ReadBudget } from "./read-budget.ts";
import { ReadRepair, type ReadRepairCounters, type ReadSource } from "./read-repair.ts";

const ANY_CONNECTION: SendOptions = { affinity: -1 }; // no pinning to the client's connection

export interface ReplicatedOptions {
  writes: WritePolicy;
  /** all-sync: replicas that must store a write; default every replica of the pool. */
  writeQuorum?: number;
  reads: ReadPolicy;
  hedge?: HedgeSpec;
  onDown: OnDown;
  /** Read repair (read-repair.ts); none when absent. */
  repair?: ReadRepairSpec;
  /** Counts hedges sent and won (metrics); optional. */
  counters?: HedgeCounters;
  /** Counts read repairs (metrics); optional. */
  repairCounters?: ReadRepairCounters;
  /** Called with write replies or errors nobody waits for (all-async, all-initial); optional. */
  onBackgroundResult?: (result: Reply | Error) => void;
}

export class ReplicatedRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[] = [];
  // Spreads reads: each router (each process) prefers its own replica, so N routers in front of
  // N replicas load them evenly without coordinating.
  private readonly preferred: number;
  private readonly budget: ReadBudget | undefined;
  private readonly repair: ReadRepair | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly options: ReplicatedOptions,
    preferred = Math.floor(Math.random() * Math.max(1, pool.destinations.length)),
  ) {
    this.preferred = preferred;
    const quorum = options.writeQuorum === undefined ? "" : `, writeQuorum=${options.writeQuorum}`;
    this.routeName = `replicated(pool=${pool.name}, writes=${options.writes}${quorum}, reads=${options.reads})`;
    this.budget = options.hedge === undefined ? undefined : new ReadBudget(options.hedge.budget);
    this.repair =
      options.repair === undefined ? undefined : new ReadRepair(options.repair, options.repairCounters);
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
      performance.now(),
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
  // reply overdue by that long go last, in the same relative order. Replicas recovering from an
  // outage (read-repair.ts) go first among those not stalled, the latest in trouble first.
  private readOrder(nowMs: number, stallMs?: number): Sender[] {
    const all = this.pool.destinations;
    if (all.length === 0) throw new NoHealthyDestinationError(`pool ${this.pool.name} has no servers`);
    const first = all[this.preferred % all.length] as Sender;
    if (this.options.onDown === OnDown.FailFast && first.down) throw new DestinationDownError(first.name);
    const repair = this.repair;
    const anyRecovering = repair?.anyRecovering(nowMs) === true;
    const order: Sender[] = [];
    let stalled = 0; // stalled replicas, moved to the end of order as they are found
    let recovering = 0; // recovering replicas, moved to the front of order as they are found
    for (let i = 0; i < all.length; i++) {
      const destination = all[(this.preferred + i) % all.length] as Sender;
      if (destination.down) {
        repair?.noteTrouble(destination, nowMs);
        continue;
      }
      const since = anyRecovering ? repair?.recoveringSince(destination, nowMs) : undefined;
      if (stallMs !== undefined && destination.stalled?.(stallMs) === true) {
        order.push(destination);
        stalled++;
      } else if (since !== undefined) {
        // The latest in trouble first: the likeliest to have lost keys.
        let at = 0;
        while (at < recovering && (repair?.recoveringSince(order[at] as Sender, nowMs) ?? 0) >= since) at++;
        order.splice(at, 0, destination);
        recovering++;
      } else if (stalled === 0) order.push(destination);
      else order.splice(order.length - stalled, 0, destination);
    }
    return order;
  }

  // Reads record their latency as the client sees it into the pool's window (adaptive hedging).
  private async read(request: Request): Promise<Reply> {
    const start = performance.now();
    const reply = await this.readOnce(request, start);
    this.pool.latency.record(performance.now() - start);
    return reply;
  }

  private async readOnce(request: Request, nowMs: number): Promise<Reply> {
    const delayMs =
      this.options.reads === ReadPolicy.Hedged
        ? hedgeDelayMs(this.options.hedge as HedgeSpec, this.pool)
        : undefined;
    const order = this.readOrder(nowMs, delayMs);
    if (order.length === 0)
      throw new NoHealthyDestinationError(`pool ${this.pool.name}: every replica is down`);
    const repair = this.repair;
    repair?.countRead();
    // all-fastest and hedged reads already give up read-your-writes ordering (they may read
    // another replica), so they also give up connection affinity: each goes on the least busy
    // connection of its replica, away from one stalled behind a slow reply (a pipelined socket
    // answers in order, so one slow reply holds every reply queued behind it).
    let reply: Reply;
    let source: ReadSource;
    switch (this.options.reads) {
      case ReadPolicy.AllFastest:
        source = { onSendError: repair?.noteSendError };
        reply = await firstGood(
          order.map((destination) => destination.send(request, ANY_CONNECTION)),
          order,
          source,
        );
        break;
      case ReadPolicy.Hedged: {
        const hedge: HedgeOptions = {
          delayMs: delayMs as number,
          budget: this.budget as ReadBudget,
          counters: this.options.counters,
          onSendError: repair?.noteSendError,
        };
        source = hedge;
        reply = await hedgedSend(order, request, hedge);
        break;
      }
      default:
        source = { onSendError: repair?.noteSendError };
        reply = await sendInOrder(order, request, source);
    }
    // Hits and failures return here, without the repair's extra promise.
    if (repair === undefined || source.answeredBy === undefined || !isMiss(reply)) return reply;
    return repair.repair(request, reply, source.answeredBy, order);
  }

  private async write(request: Request): Promise<Reply> {
    const all = this.pool.destinations;
    // A delete also goes to a down replica whose deletes are spooled (spooling-sender.ts): it is
    // written to the spool and replayed when the replica is back, so its copy does not survive.
    const spools = request.kind === OpKind.Delete;
    const targets = all.filter(
      (destination) => !destination.down || (spools && destination instanceof SpoolingSender),
    );
    if (this.repair !== undefined && targets.length < all.length) {
      const nowMs = performance.now();
      for (const destination of all) if (destination.down) this.repair.noteTrouble(destination, nowMs);
    }
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
        sends.forEach((send, index) => {
          this.background(send, targets[index] as Sender);
        });
        return syntheticSuccess(request) as Reply;
      case WritePolicy.AllInitial:
        sends.forEach((send, index) => {
          if (index > 0) this.background(send, targets[index] as Sender);
        });
        return sends[0] as Promise<Reply>;
      case WritePolicy.AllMajority:
        return majority(sends, Math.floor(all.length / 2) + 1, (index, error) =>
          this.noteWriteError(targets[index] as Sender, error),
        );
      default:
        return this.allSync(all, targets, await Promise.allSettled(sends));
    }
  }

  // all-sync's answer: the first replica's reply when at least writeQuorum replicas (default every
  // replica of the pool) stored the write; else the first failure (the client must not believe a
  // write that did not reach the copies it asked for), or, when the only shortfall is replicas
  // skipped because they are down, DestinationDownError naming one.
  private allSync(
    all: readonly Sender[],
    targets: readonly Sender[],
    results: readonly PromiseSettledResult<Reply>[],
  ): Reply {
    let first: Reply | undefined;
    let stored = 0;
    let failed: Reply | undefined;
    let error: unknown;
    results.forEach((result, index) => {
      if (result.status === "rejected") {
        error ??= result.reason;
        this.noteWriteError(targets[index] as Sender, result.reason);
      } else if (isFailure(result.value)) failed ??= result.value;
      else {
        stored++;
        first ??= result.value;
      }
    });
    if (stored >= (this.options.writeQuorum ?? all.length)) return first as Reply;
    if (error !== undefined) throw error;
    if (failed !== undefined) return failed;
    const down = all.find((destination) => !targets.includes(destination)) as Sender;
    throw new DestinationDownError(down.name);
  }

  private noteWriteError(destination: Sender, error: unknown): void {
    this.repair?.noteSendError(destination, error);
  }

  private background(send: Promise<Reply>, destination: Sender): void {
    send.then(
      (reply) => this.options.onBackgroundResult?.(reply),
      (error: unknown) => {
        this.noteWriteError(destination, error);
        this.options.onBackgroundResult?.(error instanceof Error ? error : new Error(String(error)));
      },
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
// SERVER_ERROR; records which one answered in `source`.
async function sendInOrder(order: readonly Sender[], request: Request, source: ReadSource): Promise<Reply> {
  let failed: Reply | undefined;
  let error: unknown;
  for (const destination of order) {
    try {
      const reply = await destination.send(request);
      if (!isFailure(reply)) {
        source.answeredBy = destination;
        return reply;
      }
      failed = reply;
    } catch (caught) {
      error = caught;
      source.onSendError?.(destination, caught);
    }
  }
  if (failed !== undefined) return failed;
  throw error;
}

/**
 * The first reply that is not a failure; if every send fails, the last failure or error. With
 * `source`, records which of `from` (the destinations of `sends`, in order) answered.
 */
export function firstGood(
  sends: readonly Promise<Reply>[],
  from?: readonly Sender[],
  source?: ReadSource,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let pending = sends.length;
    let failed: Reply | undefined;
    let error: unknown;
    let done = false;
    const settle = () => {
      if (--pending > 0 || done) return;
      if (failed !== undefined) resolve(failed);
      else reject(error);
    };
    sends.forEach((send, index) => {
      send.then(
        (reply) => {
          if (isFailure(reply)) failed = reply;
          else if (!done) {
            done = true;
            if (source !== undefined) source.answeredBy = from?.[index];
            resolve(reply);
          }
          settle();
        },
        (caught: unknown) => {
          error = caught;
          if (source !== undefined && from !== undefined) source.onSendError?.(from[index] as Sender, caught);
          settle();
        },
      );
    });
  });
}

// all-majority's answer: the first reply type that `needed` replicas (a majority of the pool, not of
// the replicas live now) agree on; else the last failure or error, or NoHealthyDestinationError.
function majority(
  sends: readonly Promise<Reply>[],
  needed: number,
  onError: (index: number, error: unknown) => void,
): Promise<Reply> {
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
      else
        reject(
          lastError ??
            new NoHealthyDestinationError(`no ${needed} replicas agreed (${sends.length} were reachable)`),
        );
    };
    sends.forEach((send, index) => {
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
          onError(index, error);
          settle();
        },
      );
    });
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
