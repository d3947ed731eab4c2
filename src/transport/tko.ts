// A destination's health, whatever carries its bytes (TCP or NATS): mcrouter's TKO ("technical
// knockout").
//
//   failed() x tko.failures in a row ──> down ──(probeIntervalMs)──> probe: `version`
//   succeeded(): the count starts over        ├─ answered: up again (onChange(false))
//                                             └─ failed: probe again after twice the delay (capped)
//
// Only the leaf's own failures count (isTkoFailure: a lost connection, no responder, a timeout);
// overload of our own queues and an unreachable NATS server are not the leaf's fault and do not.
import { ConnectionError, TimeoutError } from "../errors.ts";
import { encodeVersion } from "../protocol/encoder.ts";
import { Expect, type Reply } from "../protocol/reply.ts";

export interface TkoOptions {
  /** Consecutive failures or timeouts that mark the destination down. */
  failures: number;
  /** Delay before the first probe of a down destination; doubles per failed probe. */
  probeIntervalMs: number;
  maxProbeIntervalMs: number;
}

export interface TkoTrackerOptions {
  tko: TkoOptions;
  /** Sends the probe through the destination's transport (bypassing its down check). */
  send: (request: Uint8Array, expect: Expect) => Promise<Reply>;
  /** Called when the destination goes down (true) or comes back (false). */
  onChange: (down: boolean) => void;
}

const VERSION_REQUEST = encodeVersion();

/** Whether a failed request counts towards marking its destination down. */
export function isTkoFailure(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof TimeoutError;
}

/** Counts failures in a row, marks the destination down and probes it back; see the diagram above. */
export class TkoTracker {
  private failuresInRow = 0;
  private isDown = false;
  private probeDelayMs: number;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly options: TkoTrackerOptions) {
    this.probeDelayMs = options.tko.probeIntervalMs;
  }

  /** Marked down (TKO) and not yet revived by a probe. */
  get down(): boolean {
    return this.isDown;
  }

  /** A request was answered: the failures in a row start over. */
  succeeded(): void {
    this.failuresInRow = 0;
  }

  /** A request failed with a TKO failure (see isTkoFailure). */
  failed(): void {
    if (this.isDown || this.closed) return;
    if (++this.failuresInRow < this.options.tko.failures) return;
    this.isDown = true;
    this.probeDelayMs = this.options.tko.probeIntervalMs;
    this.options.onChange(true);
    this.scheduleProbe();
  }

  /** Stops probing. */
  close(): void {
    this.closed = true;
    if (this.probeTimer !== undefined) clearTimeout(this.probeTimer);
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probeTimer = setTimeout(() => void this.probe(), this.probeDelayMs);
  }

  private async probe(): Promise<void> {
    this.probeTimer = undefined;
    if (this.closed) return;
    try {
      const reply = await this.options.send(VERSION_REQUEST, Expect.Line);
      if (reply.isError) throw new Error(`probe answered ${reply.text}`);
    } catch {
      this.probeDelayMs = Math.min(this.probeDelayMs * 2, this.options.tko.maxProbeIntervalMs);
      this.scheduleProbe();
      return;
    }
    if (this.closed) return;
    this.isDown = false;
    this.failuresInRow = 0;
    this.options.onChange(false);
  }
}
