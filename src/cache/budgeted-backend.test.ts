import { expect, test } from "bun:test";
import { OverloadedError } from "../errors.ts";
import { LoadBudget } from "../router/load-budget.ts";
import type { CacheBackend } from "./backend.ts";
import { budgetedBackend } from "./budgeted-backend.ts";

// A backend whose gets answer when the test says, with the value it is given.
function heldBackend() {
  const waiting: ((value: Uint8Array | null) => void)[] = [];
  const backend: CacheBackend = {
    get: () => new Promise((resolve) => waiting.push(resolve)),
    set: async () => {},
    delete: async () => true,
    touch: async () => true,
    stats: async () => ({}),
  };
  return { backend, answer: (value: Uint8Array | null) => waiting.shift()?.(value) };
}

const key = new TextEncoder().encode("group:key");

test("calls past --max-inflight fail with OverloadedError (HTTP 503, gRPC RESOURCE_EXHAUSTED) and free their place", async () => {
  const budget = new LoadBudget({
    maxInflight: 2,
    maxBufferedBytes: 1024 * 1024,
    maxClientInflight: 1,
    maxClientBufferedBytes: 1,
  });
  const { backend, answer } = heldBackend();
  const budgeted = budgetedBackend(backend, budget);
  const first = budgeted.get(key);
  const second = budgeted.get(key);
  expect(budgeted.get(key)).rejects.toBeInstanceOf(OverloadedError);
  expect(budget.inFlight).toBe(2);
  answer(null);
  answer(new Uint8Array(3));
  expect(await first).toBeNull();
  expect(await second).toEqual(new Uint8Array(3));
  expect(budget.inFlight).toBe(0);
  expect(budget.bufferedBytes).toBe(0);
  expect(await budgeted.delete(key)).toBe(true);
  expect(budget.overloaded).toBe(1);
});

test("a value that cannot be held within --max-buffered-bytes fails instead of being returned", async () => {
  const budget = new LoadBudget({
    maxInflight: 10,
    maxBufferedBytes: 1024 * 1024,
    maxClientInflight: 1,
    maxClientBufferedBytes: 1,
  });
  const { backend, answer } = heldBackend();
  const budgeted = budgetedBackend(backend, budget);
  const got = budgeted.get(key);
  budget.bufferedBytes += 1024 * 1024; // held by other clients meanwhile
  answer(new Uint8Array(64 * 1024));
  expect(got).rejects.toThrow("out of memory writing get response");
  await got.catch(() => {});
  budget.bufferedBytes -= 1024 * 1024;
  expect(budget.bufferedBytes).toBe(0);
  expect(budget.inFlight).toBe(0);
});
