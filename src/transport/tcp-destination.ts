// One leaf as the router sees it: a small pool of pipelined connections plus its health.
//
//   send ─> down? ──yes──> DestinationDownError (fast fail, no socket touched)
//             └─no──> TcpPool ─> reply: failures in a row = 0
//                          └──> ConnectionError | TimeoutError: failures in a row + 1
//                                 reaching tko.failures ─> down, probe after probeIntervalMs
//   probe: `version` ─> answered: up again | failed: probe again after twice the delay (capped)
//
// mcrouter calls the down state TKO ("technical knockout"). Overload (our own bounded queue being
// full) is not the destination's fault and does not count.
import { DestinationDownError } from "../errors.ts";
import type { Reply } from "../protocol/reply.ts";
import type { Request } from "../protocol/request.ts";
import { SenderStats } from "./sender-stats.ts";
import { TcpPool, type TcpPoolOptions } from "./tcp-pool.ts";
import { isTkoFailure, type TkoOptions, TkoTracker } from "./tko.ts";
import type { Sender, SenderHooks, SendOptions } from "./transport.ts";

export interface TcpDestinationOptions extends TcpPoolOptions, SenderHooks {
  tko: TkoOptions;
}

/** A leaf (host:port) with TKO tracking; send() fails fast while it is down. */
export class TcpDestination implements Sender {
  readonly stats = new SenderStats();
  readonly name: string;
  private readonly pool: TcpPool;
  private readonly tko: TkoTracker;
  // One error for every request refused while down: a black-holed leaf behind a busy router is
  // refused hundreds of thousands of times a second, and an Error per refusal (its stack trace
  // included) was the bulk of the router's garbage then.
  private readonly downError: DestinationDownError;
  private lastFailure: Error | null = null; // the latest TKO failure: the reason given when marked down

  constructor(private readonly options: TcpDestinationOptions) {
    this.pool = new TcpPool(options);
    this.name = this.pool.destination;
    this.downError = new DestinationDownError(this.name);
    this.tko = new TkoTracker({
      tko: options.tko,
      send: (request, expect) => this.pool.send(request, expect),
      onChange: (down) => options.onHealthChange?.(this, down, down ? this.lastFailure?.message : undefined),
    });
  }

  /** Marked down (TKO) and not yet revived by a probe. */
  get down(): boolean {
    return this.tko.down;
  }

  get inFlightCount(): number {
    return this.pool.inFlightCount;
  }

  /** Whether a request now would wait behind a reply older than stallMs (TcpPool.stalled). */
  stalled(stallMs: number): boolean {
    return this.pool.stalled(stallMs);
  }

  /**
   * Sends one request (on the connection its affinity pins, see Request.affinity, else away from
   * connections stalled for options.stallMs); rejects with DestinationDownError at once while it
   * is down.
   */
  async send(request: Request, options?: SendOptions): Promise<Reply> {
    if (this.tko.down) throw this.downError;
    const start = performance.now();
    try {
      const reply = await this.pool.send(
        request.wire,
        request.expect,
        options?.affinity ?? request.affinity,
        options?.stallMs,
      );
      this.tko.succeeded();
      const ms = performance.now() - start;
      this.stats.replied(ms);
      this.options.onReply?.(this, ms);
      return reply;
    } catch (error) {
      this.stats.failed();
      if (isTkoFailure(error)) {
        this.lastFailure = error as Error;
        this.tko.failed();
      }
      this.options.onError?.(this, error);
      throw error;
    }
  }

  /** Stops probing and closes the connections, failing what is pending. */
  async close(): Promise<void> {
    this.tko.close();
    await this.pool.close();
  }
}
