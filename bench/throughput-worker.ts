// One Bun worker of the throughput bench (bench/throughput.ts): it loops over the shared Zipf trace
// from its own offset, running gets and sets against one cache, and counts the ops it completes
// while the main thread's phase word says "measure".
//
//   main ──init──> worker: build key strings, make the cache (a JS cache is filled with every key)
//   main ──run───> worker: "armed", then waits on the phase word
//   main sets phase: WarmUp ─> Measure (ops counted) ─> Stop;  worker ──done {ops, gets, hits}──> main
//
// gravity-addon workers all use the one process-global store (the main thread configured and
// filled it) through the addon's get/set, each with one reused out buffer. A JavaScript cache is
// single-threaded, so each worker owns its own instance, filled with every key: N workers are N
// independent caches over the same trace, which is how such a cache scales in a Bun program.
import { LRUCache } from "lru-cache";
import { LRUCache as MnemonistLRUCache } from "mnemonist";

declare const self: Worker;

export const WORKER_CACHES = ["gravity-addon", "lru-cache", "mnemonist", "Map"] as const;
export type WorkerCache = (typeof WORKER_CACHES)[number];

export const WORKLOADS = ["read", "write", "mixed"] as const;
export type Workload = (typeof WORKLOADS)[number];

/** Values of the run's phase word (Int32Array(1) over a SharedArrayBuffer), set by the main thread. */
export const Phase = { Armed: 0, WarmUp: 1, Measure: 2, Stop: 3 } as const;

/** One op in `writeEvery` is a set (0 = none): write = every op, mixed = one in four, as native/bench does. */
export function writeEvery(workload: Workload): number {
  return workload === "write" ? 1 : workload === "mixed" ? 4 : 0;
}

export type ToWorker =
  | {
      type: "init";
      cache: WorkerCache;
      /** Uint32Array: the trace as indexes into keyIds. */
      trace: SharedArrayBuffer;
      /** Uint32Array: the distinct key ids; key j is the string `k${keyIds[j]}`. */
      keyIds: SharedArrayBuffer;
      valueBytes: number;
    }
  | { type: "run"; workload: Workload; start: number; phase: SharedArrayBuffer };

export type FromWorker =
  | { type: "ready" }
  | { type: "armed" }
  | { type: "done"; ops: number; gets: number; hits: number; failedSets: number }
  | { type: "error"; message: string };

/** A cache as the loop drives it: key j's get (hit?) and set (stored?). */
interface Ops {
  get(j: number): boolean;
  set(j: number): boolean;
}

const BATCH = 256; // ops between two reads of the phase word

function loop(
  ops: Ops,
  trace: Uint32Array<ArrayBufferLike>,
  start: number,
  every: number,
  phase: Int32Array,
) {
  let i = start;
  let done = 0;
  let counted = 0;
  let gets = 0;
  let hits = 0;
  let failedSets = 0;
  for (;;) {
    const now = Atomics.load(phase, 0);
    if (now === Phase.Stop) break;
    for (let b = 0; b < BATCH; b++) {
      const j = trace[i] as number;
      if (++i === trace.length) i = 0;
      if (every !== 0 && done % every === 0) {
        if (!ops.set(j)) failedSets++;
      } else {
        gets++;
        if (ops.get(j)) hits++;
      }
      done++;
    }
    if (now === Phase.Measure) counted += BATCH;
  }
  return { ops: counted, gets, hits, failedSets };
}

async function makeOps(cache: WorkerCache, names: string[], valueBytes: number): Promise<Ops> {
  const n = names.length;
  if (cache === "gravity-addon") {
    const { native, StoreStatus } = await import("../src/native/index.ts");
    if (!native.isConfigured()) throw new Error("gravity-addon: the main thread did not configure the store");
    const out = new Uint8Array(valueBytes);
    const value = new Uint8Array(valueBytes).fill(0x76);
    return {
      get: (j) => native.get(names[j] as string, out) >= 0,
      set: (j) => native.set(names[j] as string, value) === StoreStatus.Stored,
    };
  }
  // JS caches hold references: each key gets its own value object, and a set stores the key's
  // value object again, so no run creates garbage the next one pays for.
  const values: Uint8Array[] = [];
  for (let j = 0; j < n; j++) values.push(new Uint8Array(valueBytes).fill(0x76));
  if (cache === "lru-cache") {
    const lru = new LRUCache<string, Uint8Array>({ max: n });
    for (let j = 0; j < n; j++) lru.set(names[j] as string, values[j] as Uint8Array);
    return {
      get: (j) => lru.get(names[j] as string) !== undefined,
      set: (j) => {
        lru.set(names[j] as string, values[j] as Uint8Array);
        return true;
      },
    };
  }
  if (cache === "mnemonist") {
    const lru = new MnemonistLRUCache<string, Uint8Array>(n);
    for (let j = 0; j < n; j++) lru.set(names[j] as string, values[j] as Uint8Array);
    return {
      get: (j) => lru.get(names[j] as string) !== undefined,
      set: (j) => {
        lru.set(names[j] as string, values[j] as Uint8Array);
        return true;
      },
    };
  }
  const map = new Map<string, Uint8Array>();
  for (let j = 0; j < n; j++) map.set(names[j] as string, values[j] as Uint8Array);
  return {
    get: (j) => map.get(names[j] as string) !== undefined,
    set: (j) => {
      map.set(names[j] as string, values[j] as Uint8Array);
      return true;
    },
  };
}

function reply(message: FromWorker): void {
  self.postMessage(message);
}

if (!Bun.isMainThread) {
  let ops: Ops | null = null;
  let trace: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  self.onmessage = async (event: MessageEvent<ToWorker>) => {
    const message = event.data;
    try {
      if (message.type === "init") {
        trace = new Uint32Array(message.trace);
        const keyIds = new Uint32Array(message.keyIds);
        const names: string[] = [];
        for (const id of keyIds) names.push(`k${id}`);
        ops = await makeOps(message.cache, names, message.valueBytes);
        reply({ type: "ready" });
      } else if (message.type === "run") {
        if (ops === null) throw new Error("run before init");
        const phase = new Int32Array(message.phase);
        reply({ type: "armed" });
        Atomics.wait(phase, 0, Phase.Armed);
        reply({ type: "done", ...loop(ops, trace, message.start, writeEvery(message.workload), phase) });
      }
    } catch (error) {
      reply({ type: "error", message: error instanceof Error ? error.message : String(error) });
    }
  };
}
