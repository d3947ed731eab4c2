// Recent reply latencies of a pool, for adaptive hedging (The Tail at Scale: hedge after the
// p95 of recent requests). A fixed ring of samples; recording is O(1) and allocation-free, and a
// percentile is recomputed from a sorted copy when asked for and at least RECOMPUTE_EVERY samples
// came since the last time (always while the window is small), so a hot path that asks per
// request sorts at most once per RECOMPUTE_EVERY replies.

const DEFAULT_CAPACITY = 1024;
const RECOMPUTE_EVERY = 64;

/** The last `capacity` latencies in milliseconds, and a cached percentile of them. */
export class LatencyWindow {
  private readonly samples: Float64Array;
  private readonly sorted: Float64Array;
  private count = 0; // samples recorded, capped at capacity
  private next = 0; // where the next sample goes
  private sinceRecompute = 0;
  private cached: number[] = [];

  constructor(
    private readonly percentiles: readonly number[] = [95],
    capacity = DEFAULT_CAPACITY,
  ) {
    this.samples = new Float64Array(capacity);
    this.sorted = new Float64Array(capacity);
  }

  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.count < this.samples.length) this.count++;
    this.sinceRecompute++;
  }

  get size(): number {
    return this.count;
  }

  /** The p-th percentile (one of those given to the constructor) of the window, or undefined with no samples. */
  percentile(p: number): number | undefined {
    if (this.count === 0) return undefined;
    const index = this.percentiles.indexOf(p);
    if (index < 0)
      throw new RangeError(`percentile ${p} is not tracked (tracked: ${this.percentiles.join(", ")})`);
    const stale = this.sinceRecompute >= RECOMPUTE_EVERY || this.count < 2 * RECOMPUTE_EVERY;
    if (this.sinceRecompute > 0 && (stale || this.cached.length === 0)) this.recompute();
    return this.cached[index];
  }

  private recompute(): void {
    this.sinceRecompute = 0;
    const view = this.sorted.subarray(0, this.count);
    view.set(this.samples.subarray(0, this.count));
    view.sort();
    this.cached = this.percentiles.map((p) => {
      const rank = Math.min(this.count - 1, Math.max(0, Math.ceil((p / 100) * this.count) - 1));
      return view[rank] as number;
    });
  }
}
