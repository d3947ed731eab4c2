// Spooled deletes (mcrouter's AsynclogRoute) as a wrapper around one destination's Sender, so
// every route above it (sharded, failover, the write half of replicated) gets them unchanged.
//
//   send ─> spool empty ──> inner.send ─> reply
//     │                         └─> delete/md failing with ConnectionError | TimeoutError |
//     │                             DestinationDownError ─> spool.append (fsync) ─> DELETED / HD
//     └─> spool not empty, destination up ─> drain: replay every spooled delete, in order ─> inner.send
//   every retryMs while the spool is not empty and the destination is up: drain
//
// Guarantees: a spooled delete answers the client as memcached answers a delete that will be
// applied (DELETED, or HD for md), even if the key turns out to be absent. Once the destination
// answers again, no request this router sends it (read or write) goes out before every delete
// spooled for it has been replayed, so a read never sees the value a spooled delete removes, and
// a set sent after the delete lands after it. A delete refused by the spool (full, or its disk
// failing) is an error the client sees as SERVER_ERROR: it is never dropped silently.
import { isOutage } from "../errors.ts";
import { Reply, ReplyType } from "../protocol/reply.ts";
import { Op, type Request } from "../protocol/request.ts";
import { parseRequest } from "../protocol/request-parser.ts";
import type { SenderStats } from "../transport/sender-stats.ts";
import type { Sender, SendOptions } from "../transport/transport.ts";
import type { DeleteSpool, ReplayResult } from "./spool.ts";

export interface SpoolingSenderOptions {
  /** How often to look for the destination's return while deletes wait for it (default 200 ms). */
  retryMs?: number;
  /** Called after each replay (logs, metrics). */
  onReplay?: (destination: string, result: ReplayResult) => void;
}

const DEFAULT_RETRY_MS = 200;
const latin1 = new TextDecoder("latin1");
const latin1Bytes = (text: string) => Uint8Array.from(text, (char) => char.charCodeAt(0));

/** A Sender whose deletes survive the destination being unreachable: see the file comment. */
export class SpoolingSender implements Sender {
  private draining: Promise<unknown> | undefined; // resolves with the error that stopped it, if any
  private timer: ReturnType<typeof setTimeout> | undefined; // the next look at the destination
  private closed = false;
  private readonly retryMs: number;

  constructor(
    private readonly inner: Sender,
    private readonly spool: DeleteSpool,
    private readonly options: SpoolingSenderOptions = {},
  ) {
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    // Deletes left by an earlier run of the router (or an earlier configuration).
    if (spool.pending(inner.name) > 0) this.schedule();
  }

  get name(): string {
    return this.inner.name;
  }

  get down(): boolean {
    return this.inner.down;
  }

  get inFlightCount(): number {
    return this.inner.inFlightCount;
  }

  get stats(): SenderStats | undefined {
    return this.inner.stats;
  }

  /** Deletes spooled for this destination and not yet replayed. */
  get spooled(): number {
    return this.spool.pending(this.inner.name);
  }

  stalled(stallMs: number): boolean {
    return this.inner.stalled?.(stallMs) ?? false;
  }

  async send(request: Request, options?: SendOptions): Promise<Reply> {
    if (this.spooled > 0 && !this.inner.down) {
      const stopped = await this.drain();
      if (stopped !== undefined) return this.failed(request, stopped);
    }
    try {
      return await this.inner.send(request, options);
    } catch (error) {
      return this.failed(request, error);
    }
  }

  /** Replays what is spooled now if the destination is up; resolves with what stopped it, if anything. */
  drain(): Promise<unknown> {
    if (this.draining !== undefined) return this.draining;
    const run = this.replayAll();
    this.draining = run;
    void run.finally(() => {
      if (this.draining === run) this.draining = undefined;
    });
    return run;
  }

  /** Stops looking for the destination and closes it; spooled deletes stay on disk. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inner.close();
  }

  private async replayAll(): Promise<unknown> {
    try {
      while (this.spooled > 0) {
        const result = await this.spool.replay(this.inner.name, (bytes) =>
          this.inner.send(parseRequest(bytes)),
        );
        this.options.onReplay?.(this.inner.name, result);
        if (result.error !== undefined) return result.error;
      }
      return undefined;
    } catch (error) {
      return error; // our bug or the disk's: the requests waiting on the drain fail with it
    }
  }

  // A delete that could not reach the destination is spooled and answered as applied; anything
  // else (or a delete the spool refuses) fails as it would have.
  private async failed(request: Request, error: unknown): Promise<Reply> {
    if (!isOutage(error)) throw error;
    const reply = spooledReply(request);
    if (reply === undefined) throw error;
    await this.spool.append(this.inner.name, request.wire);
    this.schedule();
    return reply;
  }

  private schedule(): void {
    if (this.timer !== undefined || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.spooled === 0 || this.closed) return;
      if (this.inner.down) return this.schedule();
      void this.drain().then(() => {
        if (this.spooled > 0) this.schedule();
      });
    }, this.retryMs);
    this.timer.unref?.();
  }
}

/**
 * The reply a spooled delete gets, or undefined if `request` is not one the spool may take:
 * `delete <key>` answers DELETED; `md <key> <flags>` answers HD with its O (opaque) and k (key)
 * return flags. An md with C (compare CAS) is conditional, so it cannot be promised: not spooled.
 */
export function spooledReply(request: Request): Reply | undefined {
  if (request.op === Op.Delete) return new Reply(ReplyType.Deleted);
  if (request.op !== Op.MetaDelete) return undefined;
  const flags = request.metaFlags;
  if (flags.some((flag) => flag.startsWith("C"))) return undefined;
  const echoed: string[] = [];
  for (const flag of flags) {
    if (flag.startsWith("O")) echoed.push(flag);
    else if (flag === "k") echoed.push(`k${latin1.decode(request.key)}`);
  }
  if (echoed.some((flag) => flag.startsWith("k")) && flags.includes("b")) echoed.push("b");
  const reply = new Reply(ReplyType.MetaHeader);
  reply.rest = latin1Bytes(echoed.join(" "));
  return reply;
}
