// Read repair for a replicated pool (Dynamo's and Cassandra's name; the copy itself is the warm-up
// route's, item-copy.ts): a read that misses on one replica is looked up on the others, and a hit
// is served and added back to every replica that missed it. So a replica that restarted empty
// refills from its peers as it is read, instead of sending its misses to the database.
//
//   read ──> replicas in read order (recovering ones first) ──> reply from replica R
//     hit or failure ──> the reply
//     miss, and R is recovering or the budget allows a lookup
//        ──> `mg <key> v f t` on the other replicas in read order, one at a time
//              hit on S ──> served (item-copy.ts's answer); added to R, and to every replica
//                           asked before S that missed too
//              no hit   ──> R's miss
//
// Recovering: the route saw the replica down (TKO) or a send to it failed with a lost connection
// within the last recoveryMs; it may have restarted empty. While any replica is recovering, reads
// go to the recovering replicas first, the latest in trouble first (but never before a replica
// stalled past the hedge delay), so what they lost is refilled by the reads that follow, and every
// miss on them is looked up. That is what
// keeps a rolling restart from losing keys: each replica is read first while it recovers, so a key
// read once after each restart is back on each restarted replica before the next one goes.
//
// The budget (a share of reads, read-budget.ts) caps lookups for misses on replicas that are not
// recovering: a key evicted from one replica, or a restart the router did not see (no request
// failed while the leaf was away). Those lookups are charged whether or not they find the value:
// a replica whose admission policy keeps refusing a key would otherwise be read and refilled on
// every read of it. A miss that no replica holds costs one lookup per other replica.
import { ConnectionError, DestinationDownError } from "../../errors.ts";
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import type { Sender } from "../../transport/transport.ts";
import type { ReadRepairSpec } from "../config-types.ts";
import { isFailure, isMiss } from "../forward.ts";
import {
  addCopy,
  answerFromCopy,
  type CopiedItem,
  copiedItem,
  copyRead,
  isCopyableRead,
} from "./item-copy.ts";
import { ReadBudget } from "./read-budget.ts";

/** Counts for metrics (route events of the replicated route); the repair only increments them. */
export interface ReadRepairCounters {
  /** Misses looked up on the other replicas. */
  lookups: number;
  /** Lookups that found the item on another replica (the read was served from it). */
  hits: number;
  /** Adds to a replica that missed that it answered (stored, or not stored: it had the key by then). */
  fills: number;
  /** Adds that failed, and lookups that failed on every replica asked. */
  fillFailures: number;
  /** Misses not looked up because the budget was spent. */
  refused: number;
}

/** Which replica answered a read: the read policies (replicated.ts, hedged.ts) fill it in. */
export interface ReadSource {
  answeredBy?: Sender | undefined;
  /** Called when a send to a replica fails (read repair notes lost connections). */
  onSendError?: ((destination: Sender, error: unknown) => void) | undefined;
}

export class ReadRepair {
  // When each replica was last seen down or losing a connection (performance.now() ms).
  private readonly troubleAtMs = new WeakMap<Sender, number>();
  private lastTroubleMs = Number.NEGATIVE_INFINITY; // the latest of troubleAtMs, for the fast path
  private readonly budget: ReadBudget;
  /** Bound once: passed to the read policies as their send-error callback. */
  readonly noteSendError = (destination: Sender, error: unknown): void => {
    if (error instanceof ConnectionError || error instanceof DestinationDownError)
      this.noteTrouble(destination, performance.now());
  };

  constructor(
    private readonly spec: ReadRepairSpec,
    private readonly counters?: ReadRepairCounters,
  ) {
    this.budget = new ReadBudget(spec.budget);
  }

  /** The replica is down, or lost a connection: it may come back empty. */
  noteTrouble(destination: Sender, nowMs: number): void {
    this.troubleAtMs.set(destination, nowMs);
    if (nowMs > this.lastTroubleMs) this.lastTroubleMs = nowMs;
  }

  /** Whether some replica was in trouble within recoveryMs (cheap: one comparison). */
  anyRecovering(nowMs: number): boolean {
    return nowMs - this.lastTroubleMs < this.spec.recoveryMs;
  }

  /** When `destination` was last in trouble if that was within recoveryMs (it is recovering), else undefined. */
  recoveringSince(destination: Sender, nowMs: number): number | undefined {
    const at = this.troubleAtMs.get(destination);
    return at !== undefined && nowMs - at < this.spec.recoveryMs ? at : undefined;
  }

  /** Counts one read for the budget. */
  countRead(): void {
    this.budget.countRead();
  }

  /**
   * The reply to `request` after `missed` answered it with the miss `reply`: the item from the
   * first other replica in `order` that holds it, or `reply` when none does or no lookup is made.
   */
  async repair(request: Request, reply: Reply, missed: Sender, order: readonly Sender[]): Promise<Reply> {
    if (!isCopyableRead(request)) return reply;
    if (this.recoveringSince(missed, performance.now()) === undefined && !this.budget.tryTake()) {
      if (this.counters !== undefined) this.counters.refused++;
      return reply;
    }
    if (this.counters !== undefined) this.counters.lookups++;
    const lookup = copyRead(request);
    const alsoMissed: Sender[] = []; // replicas asked before the hit that missed too
    let item: CopiedItem | undefined;
    let failures = 0;
    let asked = 0;
    for (const other of order) {
      if (other === missed || other.down) continue;
      asked++;
      let found: Reply;
      try {
        found = await other.send(lookup);
      } catch (error) {
        this.noteSendError(other, error);
        failures++;
        continue;
      }
      if (isFailure(found)) failures++;
      item = copiedItem(found);
      if (item !== undefined) break;
      if (isMiss(found)) alsoMissed.push(other);
    }
    if (item === undefined) {
      if (failures > 0 && failures === asked && this.counters !== undefined) this.counters.fillFailures++;
      return reply;
    }
    if (this.counters !== undefined) this.counters.hits++;
    if (item.exptime !== undefined)
      for (const other of alsoMissed)
        void addCopy((add) => other.send(add), request, item, item.exptime, this.counters);
    return answerFromCopy((copy) => missed.send(copy), request, reply, item, this.counters);
  }
}
