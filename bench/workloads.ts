// Workload generators for the cache benchmarks: a seeded PRNG, a Zipf sampler and the standard
// traces (Zipf, loop+scan, shifting hot set), plus a trace file writer and reader.
// Everything is deterministic for a given seed; tests may import this module.
//
// A trace is a Uint32Array of key ids; writeTrace() writes it as one key per line ("k<id>").
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** sfc32 (Chris Doty-Humphrey's Small Fast Counter), seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number) {
    let s = seed >>> 0;
    const splitmix32 = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = splitmix32();
    this.b = splitmix32();
    this.c = splitmix32();
    for (let i = 0; i < 12; i++) this.next32();
  }

  /** A uniform 32-bit unsigned integer. */
  next32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    return ((this.next32() >>> 5) * 67108864 + (this.next32() >>> 6)) / 9007199254740992;
  }

  /** A uniform integer in [0, n), n <= 2^32 (rejection sampling: no modulo bias). */
  nextInt(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.next32();
      if (x < limit) return x % n;
    }
  }
}

/** Zipf over ranks 0..n-1: P(rank r) proportional to 1 / (r + 1)^s. Exact, by the inverse CDF. */
export class ZipfSampler {
  private readonly cdf: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`Zipf needs n >= 1, got ${n}`);
    if (!(s >= 0)) throw new RangeError(`Zipf needs s >= 0, got ${s}`);
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let r = 0; r < n; r++) {
      sum += (r + 1) ** -s;
      this.cdf[r] = sum;
    }
  }

  /** The probability of rank r. */
  probability(r: number): number {
    const total = this.cdf[this.n - 1] as number;
    const below = r === 0 ? 0 : (this.cdf[r - 1] as number);
    return ((this.cdf[r] as number) - below) / total;
  }

  /** A rank drawn with the Zipf distribution: the first r with cdf[r] > u * total. */
  sample(rng: Rng): number {
    const target = rng.nextDouble() * (this.cdf[this.n - 1] as number);
    let lo = 0;
    let hi = this.n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.cdf[mid] as number) > target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

export interface ZipfSpec {
  kind: "zipf";
  keys: number;
  s: number;
  requests: number;
  seed: number;
}

/** Independent Zipf requests over `keys` keys; key id = rank (0 is the most popular). */
export function zipfTrace(spec: ZipfSpec): Uint32Array {
  const rng = new Rng(spec.seed);
  const zipf = new ZipfSampler(spec.keys, spec.s);
  const trace = new Uint32Array(spec.requests);
  for (let i = 0; i < spec.requests; i++) trace[i] = zipf.sample(rng);
  return trace;
}

export interface LoopScanSpec {
  kind: "loop+scan";
  hotKeys: number; // the hot set: Zipf(s) over ids 0..hotKeys-1
  s: number;
  episodes: number;
  hotRun: number; // hot-only requests at the start of each episode
  scanLength: number; // one-time keys per scan
  scanBurst: number; // during a scan, one hot request after every scanBurst scan keys
  seed: number;
}

export interface LoopScanTrace {
  trace: Uint32Array; // hot and scan requests interleaved
  hotOnly: Uint32Array; // the same hot requests in the same order, without the scans
  scanRequests: number;
}

/**
 * A hot Zipf set interleaved with long one-time scans. Each episode is `hotRun` hot requests, then a
 * scan of `scanLength` fresh keys (ids from hotKeys upward, each requested exactly once) with a hot
 * request after every `scanBurst` scan keys. Scan requests can never hit, so the hit ratio on the hot requests
 * is hits / (requests - scanRequests), comparable with the hit ratio of `hotOnly`.
 */
export function loopScanTrace(spec: LoopScanSpec): LoopScanTrace {
  const rng = new Rng(spec.seed);
  const zipf = new ZipfSampler(spec.hotKeys, spec.s);
  const hotPerEpisode = spec.hotRun + Math.floor(spec.scanLength / spec.scanBurst);
  const trace = new Uint32Array(spec.episodes * (hotPerEpisode + spec.scanLength));
  const hotOnly = new Uint32Array(spec.episodes * hotPerEpisode);
  let n = 0;
  let h = 0;
  let nextScanKey = spec.hotKeys;
  for (let e = 0; e < spec.episodes; e++) {
    for (let i = 0; i < spec.hotRun; i++) {
      const key = zipf.sample(rng);
      trace[n++] = key;
      hotOnly[h++] = key;
    }
    for (let i = 0; i < spec.scanLength; i++) {
      trace[n++] = nextScanKey++;
      if ((i + 1) % spec.scanBurst !== 0) continue;
      const key = zipf.sample(rng);
      trace[n++] = key;
      hotOnly[h++] = key;
    }
  }
  return { trace, hotOnly, scanRequests: spec.episodes * spec.scanLength };
}

export interface ShiftingSpec {
  kind: "shifting";
  keys: number;
  s: number;
  requests: number;
  phaseLength: number; // the hot set changes every phaseLength requests
  seed: number;
}

/**
 * Zipf requests over `keys` keys whose popularity order is reshuffled every `phaseLength` requests:
 * each phase maps rank r to key perm[r] with a fresh random permutation, so the hot set moves.
 */
export function shiftingTrace(spec: ShiftingSpec): Uint32Array {
  const rng = new Rng(spec.seed);
  const zipf = new ZipfSampler(spec.keys, spec.s);
  const perm = new Uint32Array(spec.keys);
  for (let k = 0; k < spec.keys; k++) perm[k] = k;
  const trace = new Uint32Array(spec.requests);
  for (let i = 0; i < spec.requests; i++) {
    if (i % spec.phaseLength === 0) {
      for (let k = spec.keys - 1; k > 0; k--) {
        const j = rng.nextInt(k + 1);
        const t = perm[k] as number;
        perm[k] = perm[j] as number;
        perm[j] = t;
      }
    }
    trace[i] = perm[zipf.sample(rng)] as number;
  }
  return trace;
}

/** Writes a trace as one key per line ("k<id>"), creating the directory if needed. */
export function writeTrace(path: string, trace: Uint32Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, "w");
  try {
    const chunk = 65536;
    for (let start = 0; start < trace.length; start += chunk) {
      const lines: string[] = [];
      const end = Math.min(start + chunk, trace.length);
      for (let i = start; i < end; i++) lines.push(`k${trace[i]}\n`);
      writeSync(fd, lines.join(""));
    }
  } finally {
    closeSync(fd);
  }
}

/** Reads a trace file: one key per line, blank lines skipped. */
export function readTrace(path: string): string[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .map((line) => line.replace(/\r$/, ""))
    .filter((line) => line !== "");
}

/** Number of distinct keys in a trace. */
export function distinctKeys(trace: Uint32Array): number {
  return new Set(trace).size;
}
