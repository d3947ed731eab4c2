// A leaf reached over NATS: the router side of `transport: nats`. Requests to one leaf travel
// many per message, so the extra hop through nats-server is paid per batch, not per request.
//
//   send(bytes) ─> down (TKO)? ──yes──> DestinationDownError (at once)
//     │  link not connected? ──yes──> ConnectionError "NATS unreachable: ..." (at once)
//     └─> open batch: requests of this event-loop turn, concatenated (at most max_payload bytes)
//           ─(flush)─> PUB {prefix}.leaf.{pool}.{leafId}  reply-to {inbox}.{seq}
//                              │ the leaf runs the whole payload through one native feed()
//                              v
//           {inbox}.{seq} <── the batch's replies, concatenated, in request order; in pieces
//                              of at most max_payload, each but the last with header `more`
//           ─> one ReplyParser per batch: reply i answers request i (as on a pipelined TCP
//              connection), each request's Expect frames its reply
//
//   A batch fails as a whole: no reply within timeoutMs ──> TimeoutError; no leaf subscribed
//   (NATS "503 no responders") ──> ConnectionError; the link drops ──> ConnectionError at once;
//   a last piece that leaves requests unanswered ──> ProtocolError for those.
//   Timeouts and no responders count towards TKO (tko.ts) as a TCP destination's failures do;
//   an unreachable NATS server does not (the link is down, not the leaf: `down` says so anyway).
//
//   NatsPoolBroadcast.publishToAll(bytes) ─> {prefix}.pool.{pool}.all: one publish, every replica
//   receives it and answers; the replies (one per leaf, told apart by the `leaf` header) are
//   collected until `replicas` have answered or timeoutMs passes.
//
// The payloads are memcached protocol bytes, the same a TCP destination writes and reads (a batch
// of one is exactly one request), so a pool can mix both kinds behind the Sender interface
// (transport.ts). Requests must be complete and get exactly one reply each (no noreply), as on a
// pipelined TCP connection: an incomplete request would swallow the next one of its batch. A
// request larger than the NATS server's max_payload (1 MiB by default: set it above the leaves'
// item size limit) is not sent; it gets memcached's `SERVER_ERROR object too large for cache`, as
// an item too large for the leaf would. `affinity` does not apply: one NATS connection carries
// every request, and NATS keeps one publisher's order to one subscriber.

import {
  createInbox,
  type Msg,
  type NatsConnection,
  type NatsError,
  RequestStrategy,
  type Subscription,
} from "nats";
import { ConnectionError, DestinationDownError, ProtocolError, TimeoutError } from "../errors.ts";
import { type Expect, type Reply, Reply as ReplyClass, ReplyType } from "../protocol/reply.ts";
import { ReplyParser } from "../protocol/reply-parser.ts";
import type { Request } from "../protocol/request.ts";
import { maxPayloadBytes, type NatsLink } from "./nats-link.ts";
import { leafSubject, NatsHeader, poolSubject } from "./nats-subjects.ts";
import { SenderStats } from "./sender-stats.ts";
import { isTkoFailure, type TkoOptions, TkoTracker } from "./tko.ts";
import type { Sender, SenderHooks } from "./transport.ts";

export interface NatsDestinationOptions extends SenderHooks {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  pool: string;
  leafId: string;
  /** How long a request waits for its reply. */
  timeoutMs: number;
  tko: TkoOptions;
}

// Destinations with an open batch. Every one is flushed in one callback after this turn's I/O, so
// the batches of a turn leave in one write on the NATS connection (nats.js writes what was
// published since its last write at the end of the microtask queue).
const unflushed = new Set<{ flush(): void }>();
const flushAll = () => {
  for (const destination of unflushed) destination.flush();
  unflushed.clear();
};
function scheduleFlush(destination: { flush(): void }): void {
  if (unflushed.size === 0) setImmediate(flushAll);
  unflushed.add(destination);
}

// One request from send() to its reply.
interface Pending {
  readonly expect: Expect;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: Error) => void;
}

// Requests that travel in one message, and then their replies.
class Batch {
  readonly parts: Uint8Array[] = [];
  readonly pending: Pending[] = [];
  bytes = 0;
  answered = 0; // replies parsed so far; pending[answered] is the next to be answered
  parser: ReplyParser | null = null;
  timer: ReturnType<typeof setTimeout> | undefined;

  payload(): Uint8Array {
    return this.parts.length === 1 ? (this.parts[0] as Uint8Array) : Buffer.concat(this.parts, this.bytes);
  }
}

/** One leaf over NATS, requests batched per event-loop turn, with TKO; see the diagram above. */
export class NatsDestination implements Sender {
  readonly stats = new SenderStats();
  readonly name: string;
  readonly subject: string;
  private readonly link: NatsLink;
  private readonly timeoutMs: number;
  private readonly hooks: SenderHooks;
  private readonly tko: TkoTracker;
  private readonly downError: DestinationDownError; // one for every refusal while down (tcp-destination.ts)
  private readonly inbox = createInbox();
  private readonly sent = new Map<number, Batch>(); // batches awaiting replies, by reply-subject seq
  private open: Batch | null = null; // requests of this turn, not yet published
  private seq = 0;
  private inFlight = 0; // requests in `open` and `sent` not yet answered or failed
  private subscription: Subscription | null = null;
  private readonly stopListening: () => void;
  private readonly stopWatching: () => void;
  private closed = false;

  constructor(options: NatsDestinationOptions) {
    this.link = options.link;
    this.timeoutMs = options.timeoutMs;
    this.hooks = options;
    this.subject = leafSubject(options.prefix ?? "gravity", options.pool, options.leafId);
    this.name = `nats:${options.pool}/${options.leafId}`;
    this.downError = new DestinationDownError(this.name);
    this.tko = new TkoTracker({
      tko: options.tko,
      send: (request, expect) => this.enqueue(request, expect, this.link.require()),
      onChange: (down) => options.onHealthChange?.(this, down),
    });
    // One reply subscription per connection object (nats.js resubscribes it across reconnects).
    this.stopListening = this.link.onConnection((nc) => {
      if (this.closed) return;
      this.subscription = nc.subscribe(`${this.inbox}.*`, {
        callback: (error, msg) => {
          if (error === null) this.onMessage(msg);
        },
      });
    });
    this.stopWatching = this.link.onDisconnect((error) => this.failAll(error));
  }

  /** Down while marked down (TKO) or while the NATS link is not connected: send() fails at once. */
  get down(): boolean {
    return this.tko.down || !this.link.connected;
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  async send(request: Request): Promise<Reply> {
    if (this.closed) throw new ConnectionError(this.name, "destination closed");
    if (this.tko.down) throw this.downError;
    const start = performance.now();
    try {
      const reply = await this.enqueue(request.wire, request.expect, this.link.require());
      this.tko.succeeded();
      const ms = performance.now() - start;
      this.stats.replied(ms);
      this.hooks.onReply?.(this, ms);
      return reply;
    } catch (error) {
      this.stats.failed();
      // While NATS itself is unreachable no leaf can answer: that is not this leaf's failure.
      if (isTkoFailure(error) && this.link.connected) this.tko.failed();
      this.hooks.onError?.(this, error);
      throw error;
    }
  }

  /** Stops probing and fails what is in flight; the link stays open (it is shared). */
  async close(): Promise<void> {
    this.closed = true;
    this.tko.close();
    this.stopListening();
    this.stopWatching();
    this.failAll(new ConnectionError(this.name, "destination closed with the request in flight"));
    if (this.subscription !== null && !this.subscription.isClosed()) this.subscription.unsubscribe();
    this.subscription = null;
  }

  // Adds one request to this turn's batch (publishing the batch first if it would not fit).
  private enqueue(request: Uint8Array, expect: Expect, nc: NatsConnection): Promise<Reply> {
    const maxPayload = maxPayloadBytes(nc);
    if (request.length > maxPayload) return Promise.resolve(tooLargeReply());
    if (this.open !== null && this.open.bytes + request.length > maxPayload) this.flush();
    const batch = this.open ?? new Batch();
    this.open = batch;
    return new Promise<Reply>((resolve, reject) => {
      batch.parts.push(request);
      batch.bytes += request.length;
      batch.pending.push({ expect, resolve, reject });
      this.inFlight++;
      scheduleFlush(this);
    });
  }

  /** Publishes the open batch with its own reply subject (the shared flush calls it after the turn). */
  flush(): void {
    const batch = this.open;
    this.open = null;
    if (batch === null || batch.pending.length === 0) return;
    const seq = ++this.seq;
    let nc: NatsConnection;
    try {
      nc = this.link.require();
    } catch (error) {
      this.fail(batch, error as Error);
      return;
    }
    this.sent.set(seq, batch);
    batch.timer = setTimeout(() => this.expire(seq), this.timeoutMs);
    try {
      nc.publish(this.subject, batch.payload(), { reply: `${this.inbox}.${seq}` });
    } catch (error) {
      this.sent.delete(seq);
      clearTimeout(batch.timer);
      this.fail(
        batch,
        new ConnectionError(this.name, `NATS publish on ${this.subject} failed`, { cause: error }),
      );
    }
  }

  // One piece of a batch's replies (or nats-server's "no responders" status).
  private onMessage(msg: Msg): void {
    const seq = Number(msg.subject.slice(this.inbox.length + 1));
    const batch = this.sent.get(seq);
    if (batch === undefined) return; // timed out or failed already
    const headers = msg.headers;
    if (headers?.hasError === true && headers.code === 503) {
      this.settle(seq, batch);
      this.fail(batch, natsError(this.name, this.subject, this.timeoutMs, { code: "503" }));
      return;
    }
    if (batch.parser === null) batch.parser = this.replyParser(batch);
    try {
      batch.parser.feed(msg.data);
    } catch (error) {
      this.settle(seq, batch);
      this.fail(batch, new ProtocolError(`${this.name}: ${(error as Error).message}`, { cause: error }));
      return;
    }
    if (headers?.has(NatsHeader.More) === true) return;
    this.settle(seq, batch);
    if (batch.answered < batch.pending.length) {
      const got = batch.answered;
      this.fail(
        batch,
        new ProtocolError(
          `${this.name}: ${got} replies for a batch of ${batch.pending.length} requests` +
            " (a noreply request, or an incomplete one)",
        ),
      );
    }
  }

  // Reply i of the batch's replies answers request i.
  private replyParser(batch: Batch): ReplyParser {
    return new ReplyParser({
      nextExpect: () => batch.pending[batch.answered]?.expect,
      onReply: (reply) => {
        const pending = batch.pending[batch.answered++] as Pending;
        this.inFlight--;
        pending.resolve(reply);
      },
    });
  }

  private settle(seq: number, batch: Batch): void {
    this.sent.delete(seq);
    clearTimeout(batch.timer);
  }

  private expire(seq: number): void {
    const batch = this.sent.get(seq);
    if (batch === undefined) return;
    this.sent.delete(seq);
    const error = new TimeoutError(
      `${this.name}: no reply on ${this.subject} within ${this.timeoutMs} ms`,
      this.timeoutMs,
    );
    this.fail(batch, error);
  }

  // Rejects the batch's requests not yet answered.
  private fail(batch: Batch, error: Error): void {
    for (let i = batch.answered; i < batch.pending.length; i++) {
      this.inFlight--;
      (batch.pending[i] as Pending).reject(error);
    }
    batch.answered = batch.pending.length;
  }

  private failAll(error: Error): void {
    const open = this.open;
    this.open = null;
    if (open !== null) this.fail(open, error);
    for (const [seq, batch] of [...this.sent]) {
      this.settle(seq, batch);
      this.fail(batch, error);
    }
  }
}

export interface NatsPoolBroadcastOptions {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  pool: string;
  /** Replies to wait for: the pool's replica count. 0: fire-and-forget (no replies are asked for). */
  replicas: number;
  /** How long to wait for the replies. */
  timeoutMs: number;
}

/** One replica's answer to a broadcast: its parsed reply, or why its bytes were not a reply. */
export interface ReplicaReply {
  leafId: string;
  reply?: Reply;
  error?: Error;
}

/**
 * Replicated writes as one publish that every replica of a pool receives ({prefix}.pool.{pool}.all).
 *
 * Consistency: with `replicas` > 0 the write is a request that collects one reply per leaf, so the
 * caller learns which replicas applied it, as all-sync does over TCP. A replica that answers
 * nothing within the timeout may or may not have applied it (as with a TCP timeout). A replica
 * that was not subscribed when the publish went out (disconnected from NATS, restarting) never
 * gets it: core NATS is at-most-once and keeps nothing, so that replica stays stale until the item
 * expires or is written again. A caller that needs the replicas to agree treats fewer than
 * `replicas` good replies as a failed write (and may delete the key through each leaf's own
 * subject). With `replicas` = 0 the publish is fire-and-forget, all-async's consistency: the
 * result is always [] and nobody learns of a replica that missed it.
 */
export class NatsPoolBroadcast {
  readonly subject: string;
  private readonly inFlight = new Set<(error: Error) => void>();
  private readonly stopWatching: () => void;

  constructor(private readonly options: NatsPoolBroadcastOptions) {
    if (!Number.isInteger(options.replicas) || options.replicas < 0) {
      throw new RangeError(`replicas must be a non-negative integer, got ${options.replicas}`);
    }
    this.subject = poolSubject(options.prefix ?? "gravity", options.pool);
    this.stopWatching = options.link.onDisconnect((error) => {
      for (const fail of [...this.inFlight]) fail(error);
    });
  }

  /**
   * Publishes one request to every replica. Resolves with the replies that arrived (at most
   * `replicas`, in arrival order) once all have answered or the timeout passes; rejects with
   * ConnectionError at once if NATS is unreachable or no replica is subscribed.
   */
  async publishToAll(request: Uint8Array, expect: Expect): Promise<ReplicaReply[]> {
    const name = `nats:${this.options.pool}/all`;
    const nc = this.options.link.require();
    if (this.options.replicas === 0) {
      try {
        nc.publish(this.subject, request);
      } catch (error) {
        if (isTooLarge(error)) return [];
        throw natsError(name, this.subject, this.options.timeoutMs, error);
      }
      return [];
    }
    return new Promise<ReplicaReply[]>((resolve, reject) => {
      const replies: ReplicaReply[] = [];
      const fail = (error: Error) => {
        this.inFlight.delete(fail);
        reject(error);
      };
      this.inFlight.add(fail);
      const collect = async () => {
        const messages = await nc.requestMany(this.subject, request, {
          strategy: RequestStrategy.Count,
          maxMessages: this.options.replicas,
          maxWait: this.options.timeoutMs,
        });
        for await (const msg of messages) {
          const leafId = msg.headers?.get(NatsHeader.Leaf) ?? "";
          try {
            replies.push({
              leafId,
              reply: parseReply(msg.data, expect, `nats:${this.options.pool}/${leafId}`),
            });
          } catch (error) {
            replies.push({ leafId, error: error instanceof Error ? error : new Error(String(error)) });
          }
        }
      };
      collect().then(
        () => {
          if (!this.inFlight.delete(fail)) return;
          resolve(replies);
        },
        (error: unknown) => {
          if (isTooLarge(error)) {
            if (this.inFlight.delete(fail)) resolve([{ leafId: "", reply: tooLargeReply() }]);
            return;
          }
          fail(natsError(name, this.subject, this.options.timeoutMs, error));
        },
      );
    });
  }

  /** Fails what is in flight. */
  async close(): Promise<void> {
    this.stopWatching();
    for (const fail of [...this.inFlight]) fail(new ConnectionError(this.subject, "broadcast closed"));
  }
}

/** Parses one whole reply; anything else in `bytes` (nothing, a partial reply, two replies) is a ProtocolError. */
export function parseReply(bytes: Uint8Array, expect: Expect, from: string): Reply {
  let reply: Reply | undefined;
  const parser = new ReplyParser({
    nextExpect: () => (reply === undefined ? expect : undefined),
    onReply: (parsed) => {
      reply = parsed;
    },
  });
  try {
    parser.feed(bytes);
  } catch (error) {
    throw new ProtocolError(`${from}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (reply === undefined || parser.midReply) {
    throw new ProtocolError(
      bytes.length === 0
        ? `${from}: empty reply (a noreply request, or an incomplete one)`
        : `${from}: reply of ${bytes.length} bytes is incomplete`,
    );
  }
  return reply;
}

const TOO_LARGE_TEXT = new TextEncoder().encode("object too large for cache");

// nats.js refuses a message above the server's max_payload (1 MiB unless configured) before sending it.
function isTooLarge(error: unknown): boolean {
  return (error as Partial<NatsError> | undefined)?.code === "MAX_PAYLOAD_EXCEEDED";
}

// What memcached answers an item it cannot hold; the request never left this process.
function tooLargeReply(): Reply {
  const reply = new ReplyClass(ReplyType.ServerError);
  reply.rest = TOO_LARGE_TEXT;
  return reply;
}

// A nats.js error as one of ours: a timeout, nobody subscribed, or the connection.
function natsError(name: string, subject: string, timeoutMs: number, error: unknown): Error {
  const code = (error as Partial<NatsError> | undefined)?.code;
  if (code === "TIMEOUT") {
    return new TimeoutError(`${name}: no reply on ${subject} within ${timeoutMs} ms`, timeoutMs, {
      cause: error,
    });
  }
  if (code === "503") {
    return new ConnectionError(name, `no leaf subscribes to ${subject} (NATS: no responders)`, {
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ConnectionError(name, `NATS request on ${subject} failed: ${message}`, { cause: error });
}
