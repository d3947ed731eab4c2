// A share of reads that may cost an extra request: hedges (hedged.ts) and read-repair lookups
// (read-repair.ts). Counts are halved every WINDOW reads, so the budget follows the recent share,
// not all history.
//
// The horizon is long on purpose: extra requests come in bursts (every read that lands on a
// stalled replica wants a hedge at once), and a short horizon refused them exactly then (measured
// with bench:hedge, three slow replicas: a 1,000-read window gave p99.9 21 ms, 10,000 gave 6 ms,
// with 3.2% and 3.5% extra requests).
const WINDOW = 10_000;

/** At most `share` (0..1) of the reads counted over roughly the last 10,000 may take an extra request. */
export class ReadBudget {
  private reads = 0;
  private taken = 0;

  constructor(private readonly share: number) {}

  /** Counts one read. */
  countRead(): void {
    if (++this.reads >= WINDOW) {
      this.reads /= 2;
      this.taken /= 2;
    }
  }

  /** Takes one extra request if the budget allows it. */
  tryTake(): boolean {
    if (this.taken + 1 > this.share * this.reads) return false;
    this.taken++;
    return true;
  }
}
