import { expect, test } from "bun:test";
import { ReadBudget } from "./read-budget.ts";

test("the budget allows hedges up to its share of reads", () => {
  const budget = new ReadBudget(0.05);
  let hedges = 0;
  for (let read = 0; read < 10_000; read++) {
    budget.countRead();
    if (budget.tryTake()) hedges++;
  }
  // Every read asked for a hedge: about 5% got one.
  expect(hedges).toBeGreaterThanOrEqual(480);
  expect(hedges).toBeLessThanOrEqual(520);
});

test("a budget of 0 never hedges; a budget of 1 hedges every read", () => {
  const none = new ReadBudget(0);
  const all = new ReadBudget(1);
  let hedgedNone = 0;
  let hedgedAll = 0;
  for (let read = 0; read < 100; read++) {
    none.countRead();
    all.countRead();
    if (none.tryTake()) hedgedNone++;
    if (all.tryTake()) hedgedAll++;
  }
  expect(hedgedNone).toBe(0);
  expect(hedgedAll).toBe(100);
});

test("the budget follows recent reads: a burst of hedges is paid back before more are allowed", () => {
  const budget = new ReadBudget(0.1);
  for (let read = 0; read < 1000; read++) budget.countRead();
  let burst = 0;
  while (budget.tryTake()) burst++;
  expect(burst).toBeGreaterThan(0);
  expect(budget.tryTake()).toBe(false);
  for (let read = 0; read < 9; read++) budget.countRead();
  expect(budget.tryTake()).toBe(false);
  for (let read = 0; read < 20; read++) budget.countRead();
  expect(budget.tryTake()).toBe(true);
});
