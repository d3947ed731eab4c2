import { expect, test } from "bun:test";
import { LatencyWindow } from "./latency.ts";

test("percentiles of the window, by nearest rank", () => {
  const window = new LatencyWindow([50, 95, 100], 1000);
  expect(window.percentile(95)).toBeUndefined();
  for (let ms = 1; ms <= 100; ms++) window.record(ms);
  expect(window.percentile(50)).toBe(50);
  expect(window.percentile(95)).toBe(95);
  expect(window.percentile(100)).toBe(100);
  expect(() => window.percentile(99)).toThrow(/not tracked/);
});

test("old samples leave the window", () => {
  const window = new LatencyWindow([95], 128);
  for (let i = 0; i < 128; i++) window.record(500);
  for (let i = 0; i < 128; i++) window.record(2);
  expect(window.size).toBe(128);
  expect(window.percentile(95)).toBe(2);
});
