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
import { ConnectionError, DestinationDownError, TimeoutError } from "../errors.ts";
import { encodeVersion } from "../protocol/encoder.ts";
import { Expect, type Reply } from "../protocol/reply.ts";
import { TcpPool, type TcpPoolOptions } from "../transport/tcp-pool.ts";

export interface TkoOptions {
  /** Consecutive failures or timeouts that mark the destination down. */
  failures: number;
  /** Delay before the first probe of a down destination; doubles per failed probe. */
  probeIntervalMs: number;
  maxProbeIntervalMs: number;
}

export interface DestinationOptions extends TcpPoolOptions {
  tko: TkoOptions;
  /** Called when the destination goes down or comes back. */
  onHealthChange?: (destination: Destination, down: boolean) => void;
  /** Called with each reply's latency in milliseconds (metrics). */
  onReply?: (destination: Destination, ms: number) => void;
  /** Called with each failed request's error (metrics). */
  onError?: (destination: Destination, error: unknown) => void;
}

/** What a pool's owner wants to hear from its destinations. */
export type DestinationHooks = Pick<DestinationOptions, "onHealthChange" | "onReply" | "onError">;

const VERSION_REQUEST = encodeVersion();

/** A leaf (host:port) with TKO tracking; send() fails fast while it is down. */
export class Destination {
  readonly name: string;
  private readonly pool: TcpPool;
  private failuresInRow = 0;
  private isDown = false;
  private probeDelayMs: number;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly options: DestinationOptions) {
    this.pool = new TcpPool(options);
    this.name = this.pool.destination;
    this.probeDelayMs = options.tko.probeIntervalMs;
  }

  /** Marked down (TKO) and not yet revived by a probe. */
  get down(): boolean {
    return this.isDown;
  }

  get inFlightCount(): number {
    return this.pool.inFlightCount;
  }

  /** Whether a request now would wait behind a reply older than stallMs (TcpPool.stalled). */
  stalled(stallMs: number): boolean {
    return this.pool.stalled(stallMs);
  }

  /**
   * Sends one request (on the connection `affinity` pins, see Request.affinity, else away from
   * connections stalled for stallMs); rejects with DestinationDownError at once while it is down.
   */
  async send(request: Uint8Array, expect: Expect, affinity = -1, stallMs?: number): Promise<Reply> {
    if (this.isDown) throw new DestinationDownError(this.name);
    const start = this.options.onReply === undefined ? 0 : performance.now();
    try {
      const reply = await this.pool.send(request, expect, affinity, stallMs);
      this.failuresInRow = 0;
      this.options.onReply?.(this, performance.now() - start);
      return reply;
    } catch (error) {
      if (error instanceof ConnectionError || error instanceof TimeoutError) this.recordFailure();
      this.options.onError?.(this, error);
      throw error;
    }
  }

  /** Stops probing and closes the connections, failing what is pending. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
    await this.pool.close();
  }

  private recordFailure(): void {
    if (this.isDown || this.closed) return;
    if (++this.failuresInRow < this.options.tko.failures) return;
    this.isDown = true;
    this.probeDelayMs = this.options.tko.probeIntervalMs;
    this.options.onHealthChange?.(this, true);
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probeTimer = setTimeout(() => void this.probe(), this.probeDelayMs);
  }

  private async probe(): Promise<void> {
    this.probeTimer = undefined;
    if (this.closed) return;
    try {
      const reply = await this.pool.send(VERSION_REQUEST, Expect.Line);
      if (reply.isError) throw new Error(`probe answered ${reply.text}`);
    } catch {
      this.probeDelayMs = Math.min(this.probeDelayMs * 2, this.options.tko.maxProbeIntervalMs);
      this.scheduleProbe();
      return;
    }
    if (this.closed) return;
    this.isDown = false;
    this.failuresInRow = 0;
    this.options.onHealthChange?.(this, false);
  }
}
