// Waiting with a deadline: tests await events, never sleep to synchronise.

/** Thrown when something awaited did not happen before its deadline. */
export class DeadlineError extends Error {
  constructor(what: string, deadlineMs: number) {
    super(`timed out after ${deadlineMs} ms waiting for ${what}`);
    this.name = "DeadlineError";
  }
}

/** Resolves as `promise` does, or rejects with DeadlineError naming `what` after `deadlineMs`. */
export function withDeadline<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, deadlineMs)), deadlineMs);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * Calls `probe` every `intervalMs` until it returns a value other than undefined, for state that
 * raises no event (a process's RSS, a port that starts accepting). Rejects after `deadlineMs`.
 */
export async function pollUntil<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  options: { deadlineMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const start = performance.now();
  const intervalMs = options.intervalMs ?? 20;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() - start > options.deadlineMs)
      throw new DeadlineError(options.what, options.deadlineMs);
    await Bun.sleep(intervalMs);
  }
}

/**
 * Resolves with `read()`'s value once it returns the same number twice `intervalMs` apart: a
 * counter that stopped moving (the requests a stalled load lets through). Rejects after `deadlineMs`.
 */
export function settled(
  read: () => Promise<number>,
  what: string,
  options: { intervalMs?: number; deadlineMs?: number } = {},
): Promise<number> {
  let last = Number.NaN;
  return pollUntil(
    async () => {
      const now = await read();
      const same = now === last;
      last = now;
      return same ? now : undefined;
    },
    { deadlineMs: options.deadlineMs ?? 20_000, intervalMs: options.intervalMs ?? 300, what },
  );
}
