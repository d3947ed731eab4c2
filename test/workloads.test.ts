// The benchmark trace generators (bench/workloads.ts): deterministic by seed, and shaped as their
// names promise, so a hit-ratio table measures the workload it claims to.
import { describe, expect, test } from "bun:test";
import { distinctKeys, loopScanTrace, shiftingTrace, zipfTrace } from "../bench/workloads.ts";

function counts(trace: Uint32Array): Map<number, number> {
  const out = new Map<number, number>();
  for (const key of trace) out.set(key, (out.get(key) ?? 0) + 1);
  return out;
}

describe("zipfTrace", () => {
  test("the same seed gives the same trace, another seed another", () => {
    const spec = { kind: "zipf", keys: 1000, s: 0.99, requests: 10_000, seed: 3 } as const;
    expect(zipfTrace(spec)).toEqual(zipfTrace(spec));
    expect(zipfTrace({ ...spec, seed: 4 })).not.toEqual(zipfTrace(spec));
  });

  test("rank frequencies follow 1/rank^s", () => {
    const s = 0.99;
    const keys = 1000;
    const requests = 400_000;
    const c = counts(zipfTrace({ kind: "zipf", keys, s, requests, seed: 1 }));
    let norm = 0;
    for (let r = 1; r <= keys; r++) norm += 1 / r ** s;
    // Ranks 1, 2, 5 and 10 (key ids 0, 1, 4, 9) within 5% of their expected share.
    for (const rank of [1, 2, 5, 10]) {
      const expected = requests / rank ** s / norm;
      expect(Math.abs((c.get(rank - 1) ?? 0) - expected) / expected).toBeLessThan(0.05);
    }
    for (const key of c.keys()) expect(key).toBeLessThan(keys);
  });
});

test("loopScanTrace: scan keys appear once, and hotOnly is the trace without them", () => {
  const spec = {
    kind: "loop+scan",
    hotKeys: 500,
    s: 0.99,
    episodes: 3,
    hotRun: 1000,
    scanLength: 4000,
    scanBurst: 4,
    seed: 2,
  } as const;
  const { trace, hotOnly, scanRequests } = loopScanTrace(spec);
  expect(scanRequests).toBe(spec.episodes * spec.scanLength);
  const scan = [...trace].filter((key) => key >= spec.hotKeys);
  expect(scan.length).toBe(scanRequests);
  expect(new Set(scan).size).toBe(scanRequests);
  expect([...trace].filter((key) => key < spec.hotKeys)).toEqual([...hotOnly]);
});

test("shiftingTrace: the most requested keys change from one phase to the next", () => {
  const phaseLength = 20_000;
  const trace = shiftingTrace({
    kind: "shifting",
    keys: 5000,
    s: 0.99,
    requests: 2 * phaseLength,
    phaseLength,
    seed: 5,
  });
  const top = (part: Uint32Array) =>
    new Set(
      [...counts(part).entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 10)
        .map(([key]) => key),
    );
  const first = top(trace.subarray(0, phaseLength));
  const second = top(trace.subarray(phaseLength));
  const shared = [...first].filter((key) => second.has(key)).length;
  expect(shared).toBeLessThan(3);
  expect(distinctKeys(trace)).toBeGreaterThan(1000);
});
