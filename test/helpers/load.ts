// A client load that runs beside an outage or a membership change: one step after another until
// stopped, every failure collected rather than thrown, so a test can assert "no errors throughout"
// and wait for the load to make progress between the events it causes.

/** A running load; see startLoad. */
export interface Load {
  /** Resolves once `count` more steps completed; rejects if that takes longer than `deadlineMs` (10 s). */
  progress(count: number, deadlineMs?: number): Promise<void>;
  /** Stops after the step in flight; resolves with every failure, in order. */
  stop(): Promise<string[]>;
}

/**
 * Runs `step(i)` for i = 0, 1, 2... until stopped. A step resolves with a failure's description, or
 * undefined when all went well; a step that throws counts as a failure with the error's message.
 */
export function startLoad(step: (i: number) => Promise<string | undefined>): Load {
  const errors: string[] = [];
  let done = 0;
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      try {
        const failure = await step(i);
        if (failure !== undefined) errors.push(failure);
      } catch (error) {
        errors.push(`step ${i}: ${(error as Error).message}`);
      }
      done++;
    }
  })();
  return {
    async progress(count, deadlineMs = 10_000) {
      const target = done + count;
      const start = performance.now();
      while (done < target) {
        if (performance.now() - start > deadlineMs)
          throw new Error(`the load stalled at ${done} of ${target}`);
        await Bun.sleep(10);
      }
    },
    async stop() {
      running = false;
      await loop;
      return errors;
    },
  };
}
