// Pacing the retries of a loop that talks to an unreachable service, and telling the operator
// about the outage once rather than once per retry.
import type { DiscoveryLog } from "./membership.ts";

/** Exponential backoff with jitter, capped: delays grow from `initialMs` to at most `maxMs`. */
export class Backoff {
  private nextMs: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.nextMs = initialMs;
  }

  /** The delay before the next attempt, in ms: doubles per call up to the cap, then +-20% jitter. */
  next(): number {
    const base = this.nextMs;
    this.nextMs = Math.min(this.maxMs, this.nextMs * 2);
    return Math.round(base * (0.8 + 0.4 * this.random()));
  }

  /** After a success: the next failure waits `initialMs` again. */
  reset(): void {
    this.nextMs = this.initialMs;
  }
}

/** Logs the first failure of an outage and the recovery that ends it, nothing in between. */
export class OutageReporter {
  private down = false; // true from the first failure until the next success

  constructor(private readonly log: DiscoveryLog) {}

  get inOutage(): boolean {
    return this.down;
  }

  /** Logs `line` if this failure starts an outage. */
  failed(line: string): void {
    if (this.down) return;
    this.down = true;
    this.log(line);
  }

  /** Logs `line` if this success ends an outage. */
  recovered(line: string): void {
    if (!this.down) return;
    this.down = false;
    this.log(line);
  }
}

/** The message of an error, or its text, on one line. */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s+/g, " ").trim();
}
