import { describe, expect, test } from "bun:test";
import { TimeoutError } from "../errors.ts";
import { Singleflight } from "./singleflight.ts";

// A promise settled from outside, so a test decides when work finishes.
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("Singleflight", () => {
  test("concurrent calls for one key run the work once and share its result", async () => {
    const flights = new Singleflight<string, number>({ waitMs: 5000 });
    const gate = deferred<number>();
    let calls = 0;
    const work = () => {
      calls++;
      return gate.promise;
    };
    const results = Array.from({ length: 100 }, () => flights.do("k", work));
    expect(calls).toBe(1);
    expect(flights.size).toBe(1);
    gate.resolve(7);
    expect(await Promise.all(results)).toEqual(Array(100).fill(7));
    expect(flights.size).toBe(0);
  });

  test("different keys run separately", async () => {
    const flights = new Singleflight<string, string>({ waitMs: 5000 });
    const [a, b] = await Promise.all([flights.do("a", async () => "A"), flights.do("b", async () => "B")]);
    expect([a, b]).toEqual(["A", "B"]);
  });

  test("a failure reaches every caller and leaves no entry; the next call runs the work again", async () => {
    const flights = new Singleflight<string, number>({ waitMs: 5000 });
    const gate = deferred<number>();
    const first = flights.do("k", () => gate.promise);
    const second = flights.do("k", () => Promise.resolve(1));
    gate.reject(new Error("origin down"));
    await expect(first).rejects.toThrow("origin down");
    await expect(second).rejects.toThrow("origin down");
    expect(flights.size).toBe(0);
    expect(await flights.do("k", async () => 2)).toBe(2);
  });

  test("work that throws synchronously rejects and leaves no entry", async () => {
    const flights = new Singleflight<string, number>({ waitMs: 5000 });
    await expect(
      flights.do("k", () => {
        throw new Error("bad");
      }),
    ).rejects.toThrow("bad");
    expect(flights.size).toBe(0);
  });

  test("a waiter fails with its own TimeoutError after waitMs; the work goes on for the caller that ran it", async () => {
    const flights = new Singleflight<string, number>({ waitMs: 30 });
    const gate = deferred<number>();
    const leader = flights.do("k", () => gate.promise);
    const waiter = flights.do("k", () => Promise.resolve(0));
    const error = await waiter.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).message).toContain("waited 30 ms");
    expect(flights.size).toBe(1);
    gate.resolve(5);
    expect(await leader).toBe(5);
    expect(flights.size).toBe(0);
  });

  test("past maxKeys a call runs unshared and adds no entry", async () => {
    const flights = new Singleflight<number, number>({ waitMs: 5000, maxKeys: 2 });
    const gates = [deferred<number>(), deferred<number>()];
    const held = gates.map((gate, key) => flights.do(key, () => gate.promise));
    expect(flights.size).toBe(2);
    let calls = 0;
    const extra = () => {
      calls++;
      return Promise.resolve(9);
    };
    expect(await Promise.all([flights.do(3, extra), flights.do(3, extra)])).toEqual([9, 9]);
    expect(calls).toBe(2);
    expect(flights.size).toBe(2);
    for (const gate of gates) gate.resolve(1);
    await Promise.all(held);
    expect(flights.size).toBe(0);
  });

  test("waitMs must be positive", () => {
    expect(() => new Singleflight({ waitMs: 0 })).toThrow(RangeError);
  });
});
