// The router's HTTP and gRPC front doors under the same load budget as its memcached clients
// (src/router/load-budget.ts): a call past the budget fails with OverloadedError, which HTTP
// answers 503 and gRPC RESOURCE_EXHAUSTED, instead of queueing without bound.
//
//   call ─> budget.admit(1, value bytes)? ─no─> OverloadedError
//              └─yes─> backend ─> settle; a value too large to hold now ─> OverloadedError
import { OverloadedError } from "../errors.ts";
import type { LoadBudget } from "../router/load-budget.ts";
import type { CacheBackend } from "./backend.ts";

const REFUSED = "overloaded: too many requests or bytes in flight in the router";
const DROPPED = "out of memory writing get response";

/** `backend` with every cache call counted in `budget` and refused past it; stats() is not counted. */
export function budgetedBackend(backend: CacheBackend, budget: LoadBudget): CacheBackend {
  const admitted = async <T>(pinnedBytes: number, call: () => Promise<T>): Promise<T> => {
    if (!budget.admit(1, pinnedBytes)) throw new OverloadedError(REFUSED);
    try {
      return await call();
    } finally {
      budget.settle(1, pinnedBytes);
    }
  };
  return {
    get: (key) =>
      admitted(key.length, async () => {
        const value = await backend.get(key);
        if (value !== null && !budget.canHold(value.length)) {
          budget.overloaded++;
          throw new OverloadedError(DROPPED);
        }
        return value;
      }),
    set: (key, value, ttlSeconds) =>
      admitted(key.length + value.length, () => backend.set(key, value, ttlSeconds)),
    delete: (key) => admitted(key.length, () => backend.delete(key)),
    touch: (key, ttlSeconds) => admitted(key.length, () => backend.touch(key, ttlSeconds)),
    stats: () => backend.stats(),
  };
}
