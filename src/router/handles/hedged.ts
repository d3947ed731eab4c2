// Hedged reads (Dean and Barroso, "The Tail at Scale"): send to one replica; if it has not
// answered within the hedge delay, send the same read to the next; the first good reply wins and
// the other is ignored. A budget caps hedges at a share of reads, so a slow pool cannot double
// its own load.
//
//   t=0 ──> replica A ───────────────(reply)──> wins, unless B answered first
//   t=delay, no reply yet, budget allows ──> replica B ──(reply)──> wins if first
//                          budget refuses ──> ask again every delay until the budget allows
//   A fails before the delay ──> B at once (that is failover, not a hedge, and costs no budget)
//
// Every send also passes the delay as its stall threshold (Sender.send's stallMs): a read is not
// queued on a pipelined connection whose oldest reply is already overdue by the hedge delay, so
// the budget is spent on replies that are slow, not on reads that waited behind them. A refused
// hedge asks again each delay (not after a growing wait): reads keep arriving and refilling the
// budget, and a read held by a 50 ms stall must get its hedge within the stall, not after it.
import { NoHealthyDestinationError } from "../../errors.ts";
import type { Reply } from "../../protocol/reply.ts";
import type { Request } from "../../protocol/request.ts";
import type { Sender, SendOptions } from "../../transport/transport.ts";
import { isFailure } from "../forward.ts";
import type { ReadBudget } from "./read-budget.ts";
import type { ReadSource } from "./read-repair.ts";

/** Hedges sent and hedges whose reply was the one used (for metrics). */
export interface HedgeCounters {
  sent: number;
  won: number;
}

/** A hedged read's settings; it records which replica answered (ReadSource) as it resolves. */
export interface HedgeOptions extends ReadSource {
  delayMs: number;
  budget: ReadBudget;
  counters?: HedgeCounters | undefined;
}

/** Sends `request` to order[0], hedging to the next replicas as described above. */
export function hedgedSend(
  order: readonly Sender[],
  request: Request,
  options: HedgeOptions,
): Promise<Reply> {
  options.budget.countRead();
  // Any connection (a hedged read gives up read-your-writes order anyway), away from stalls.
  const sendOptions: SendOptions = { affinity: -1, stallMs: options.delayMs };
  return new Promise((resolve, reject) => {
    let next = 0; // the next replica to send to
    let outstanding = 0;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failed: Reply | undefined;
    let error: unknown;

    const finish = () => {
      done = true;
      if (timer !== undefined) clearTimeout(timer);
    };
    const giveUp = () => {
      if (outstanding > 0 || next < order.length || done) return;
      finish();
      if (failed !== undefined) resolve(failed);
      else reject(error ?? new NoHealthyDestinationError("no replica to read from"));
    };
    const send = (hedge: boolean) => {
      const destination = order[next++] as Sender;
      outstanding++;
      if (hedge && options.counters !== undefined) options.counters.sent++;
      destination.send(request, sendOptions).then(
        (reply) => {
          outstanding--;
          if (done) return;
          if (isFailure(reply)) {
            failed = reply;
            failoverOrGiveUp();
            return;
          }
          finish();
          if (hedge && options.counters !== undefined) options.counters.won++;
          options.answeredBy = destination;
          resolve(reply);
        },
        (caught: unknown) => {
          outstanding--;
          options.onSendError?.(destination, caught);
          if (done) return;
          error = caught;
          failoverOrGiveUp();
        },
      );
      armTimer();
    };
    // A failed send moves on at once (failover, no budget) when nothing else is in flight.
    const failoverOrGiveUp = () => {
      if (outstanding === 0 && next < order.length) send(false);
      else giveUp();
    };
    // The hedge timer; a refused hedge asks again one delay later.
    const armTimer = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (next >= order.length) return;
      timer = setTimeout(() => {
        timer = undefined;
        if (done || next >= order.length) return;
        if (options.budget.tryTake()) send(true);
        else armTimer();
      }, options.delayMs);
    };

    if (order.length === 0) {
      reject(new NoHealthyDestinationError("no replica to read from"));
      return;
    }
    send(false);
  });
}
