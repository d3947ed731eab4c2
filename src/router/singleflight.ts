// Singleflight (groupcache's singleflight package, with bounded waits): concurrent calls for one key
// share one execution of the work. The first caller runs it; callers that arrive while it runs
// wait for its result, each for at most `waitMs`, then fail on their own with a TimeoutError while
// the work goes on for the others.
//
//   do(k, fn)  no flight for k -> start fn, record the flight, answer with fn's result
//              a flight for k  -> wait for it (bounded by waitMs)
//   fn settles -> the flight is removed: the next call for k runs fn again
//
// Memory: one entry per key in flight, removed when its work settles, so the map never holds more
// than `maxKeys` entries; past that a call runs its work unshared. The work itself must be bounded
// (a loader bounds each load by its timeout): an entry lives as long as its work.
import { TimeoutError } from "../errors.ts";

export interface SingleflightOptions {
  /** How long a caller waits for a flight another caller started before failing with TimeoutError. */
  waitMs: number;
  /** The most keys in flight at once (default 10,000); a call past it runs unshared. */
  maxKeys?: number;
}

/** One in-flight execution per key; other callers for the key share its result. */
export class Singleflight<K, V> {
  private readonly flights = new Map<K, Promise<V>>();
  private readonly waitMs: number;
  private readonly maxKeys: number;

  constructor(options: SingleflightOptions) {
    if (!(options.waitMs > 0)) throw new RangeError(`waitMs must be positive, got ${options.waitMs}`);
    this.waitMs = options.waitMs;
    this.maxKeys = options.maxKeys ?? 10_000;
  }

  /** Keys with work in flight. */
  get size(): number {
    return this.flights.size;
  }

  /**
   * `fn()`'s result, shared: if a call for `key` is in flight, waits for its result instead of
   * calling `fn` (rejecting with TimeoutError after `waitMs`); else calls `fn` and lets callers
   * that arrive before it settles share it. The caller that ran `fn` waits as long as `fn` takes.
   */
  do(key: K, fn: () => Promise<V>): Promise<V> {
    const flight = this.flights.get(key);
    if (flight !== undefined) return this.wait(flight);
    const work = start(fn);
    if (this.flights.size >= this.maxKeys) return work;
    this.flights.set(key, work);
    const land = () => {
      if (this.flights.get(key) === work) this.flights.delete(key);
    };
    work.then(land, land);
    return work;
  }

  private wait(flight: Promise<V>): Promise<V> {
    const waitMs = this.waitMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`waited ${waitMs} ms for a load in flight for the same key`, waitMs)),
        waitMs,
      );
    });
    return Promise.race([flight, expired]).finally(() => clearTimeout(timer));
  }
}

// fn's promise, or a rejected one if fn throws before returning it.
function start<V>(fn: () => Promise<V>): Promise<V> {
  try {
    return fn();
  } catch (error) {
    return Promise.reject(error);
  }
}
