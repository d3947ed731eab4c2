// What every server helper (servers.ts, twemproxy.ts, etcd.ts, nats.ts, postgres.ts) needs for its
// child processes: none outlives the test run, and each helper's `stopAll...` stops all its own.
import type { Subprocess } from "bun";
import { withDeadline } from "./wait.ts";

const children = new Set<Subprocess>();
process.on("exit", () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Kills `child` with SIGKILL if it is still running when the test process exits. */
export function killOnExit(child: Subprocess): void {
  children.add(child);
  void child.exited.then(() => children.delete(child));
}

/** Stops every item with `stop`, all at once; throws one AggregateError naming `what` if any failed. */
export async function stopEach<T>(
  items: Iterable<T>,
  stop: (item: T) => Promise<unknown>,
  what: string,
): Promise<void> {
  const errors: unknown[] = [];
  await Promise.all([...items].map((item) => stop(item).catch((error: unknown) => errors.push(error))));
  if (errors.length > 0) throw new AggregateError(errors, `some ${what} did not stop cleanly`);
}

/**
 * Sends `signal` to `child` if it still runs and waits for it to exit; past `deadlineMs` it is
 * SIGKILLed and the DeadlineError (naming `what`) is thrown once it is gone.
 */
export async function endProcess(
  child: Subprocess,
  signal: NodeJS.Signals,
  deadlineMs: number,
  what: string,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  try {
    await withDeadline(child.exited, deadlineMs, `${what} (pid ${child.pid}) to exit`);
  } catch (error) {
    child.kill("SIGKILL");
    await child.exited;
    throw error;
  }
}
