import { expect, test } from "bun:test";
import { Histogram, Registry } from "prom-client";
import { FastHistogram } from "./fast-histogram.ts";

const BOUNDS = [0.001, 0.01, 0.1, 1];

test("the exposition is prom-client's Histogram's for the same observations", async () => {
  const ours = new Registry();
  const theirs = new Registry();
  const fast = new FastHistogram("t_seconds", "a test", ["op"], BOUNDS, ours);
  const reference = new Histogram({
    name: "t_seconds",
    help: "a test",
    labelNames: ["op"],
    buckets: BOUNDS,
    registers: [theirs],
  });
  // Values below, on and between the bounds, and past the last one.
  const values = [0, 0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.5, 1, 2, 30];
  for (const [index, value] of values.entries()) {
    const op = index % 2 === 0 ? "get" : "set";
    fast.series({ op }).observe(value);
    reference.observe({ op }, value);
  }
  expect(await ours.metrics()).toBe(await theirs.metrics());
  fast.reset();
  reference.reset();
  expect(await ours.metrics()).toBe(await theirs.metrics());
});
