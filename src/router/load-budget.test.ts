import { describe, expect, test } from "bun:test";
import { LoadBudget, type LoadLimits, SMALL_REPLY_BYTES, threadShare } from "./load-budget.ts";

const limits: LoadLimits = {
  maxInflight: 4,
  maxBufferedBytes: 10_000,
  maxClientInflight: 2,
  maxClientBufferedBytes: 5_000,
};

describe("LoadBudget", () => {
  test("admits up to maxInflight requests, counting each key, and frees them on settle", () => {
    const budget = new LoadBudget(limits);
    expect(budget.admit(3, 10)).toBe(true);
    expect(budget.admit(2, 10)).toBe(false); // 5 > 4
    expect(budget.admit(1, 10)).toBe(true);
    expect(budget.admit(1, 10)).toBe(false);
    expect(budget.overloaded).toBe(2);
    budget.settle(3, 10);
    expect(budget.inFlight).toBe(1);
    expect(budget.bufferedBytes).toBe(10);
    expect(budget.admit(3, 10)).toBe(true);
  });

  test("admits up to maxBufferedBytes of pinned bytes, replies held included", () => {
    const budget = new LoadBudget(limits);
    expect(budget.admit(1, 6_000)).toBe(true);
    expect(budget.admit(1, 4_000)).toBe(true); // exactly the budget
    expect(budget.admit(1, 1)).toBe(false);
    budget.settle(1, 4_000);
    budget.bufferedBytes += 3_000; // a reply held for its client
    expect(budget.admit(1, 1_001)).toBe(false);
    expect(budget.admit(1, 1_000)).toBe(true);
  });

  test("with nothing in flight, one request of any size goes (it could never go otherwise)", () => {
    const budget = new LoadBudget(limits);
    expect(budget.admit(100, 50_000)).toBe(true);
    expect(budget.admit(1, 1)).toBe(false);
  });

  test("small replies are always held; large ones only within the byte budget", () => {
    const budget = new LoadBudget({ ...limits, maxBufferedBytes: 2 * SMALL_REPLY_BYTES });
    budget.bufferedBytes = 2 * SMALL_REPLY_BYTES;
    expect(budget.canHold(SMALL_REPLY_BYTES)).toBe(true);
    expect(budget.canHold(SMALL_REPLY_BYTES + 1)).toBe(false);
    budget.bufferedBytes = 0;
    expect(budget.canHold(2 * SMALL_REPLY_BYTES)).toBe(true);
  });
});

test("threadShare splits the process-wide limits, not the per-client ones, never below 1 and 1 MiB", () => {
  const process: LoadLimits = {
    maxInflight: 10,
    maxBufferedBytes: 16 * 1024 * 1024,
    maxClientInflight: 7,
    maxClientBufferedBytes: 3,
  };
  expect(threadShare(process, 4)).toEqual({
    maxInflight: 2,
    maxBufferedBytes: 4 * 1024 * 1024,
    maxClientInflight: 7,
    maxClientBufferedBytes: 3,
  });
  expect(threadShare(process, 64)).toMatchObject({ maxInflight: 1, maxBufferedBytes: 1024 * 1024 });
});
