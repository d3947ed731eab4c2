// A leaf reached over NATS request/reply: the router side of `transport: nats`.
//
//   send(bytes) ─> link not connected? ──yes──> ConnectionError "NATS unreachable: ..." (at once)
//                      └─no──> request {prefix}.leaf.{pool}.{leafId} ─> reply payload ─> ReplyParser ─> Reply
//                                   ├─ no reply in timeoutMs ──> TimeoutError
//                                   ├─ no leaf subscribed (NATS "503 no responders") ──> ConnectionError
//                                   └─ the connection drops meanwhile ──> ConnectionError at once
//
//   NatsPoolBroadcast.publishToAll(bytes) ─> {prefix}.pool.{pool}.all: one publish, every replica
//   receives it and answers; the replies (one per leaf, told apart by the `leaf` header) are
//   collected until `replicas` have answered or timeoutMs passes.
//
// The payloads are memcached protocol bytes, the same a TCP destination writes and reads, so a
// pool can mix both kinds behind the Sender interface (transport.ts). A request larger than the NATS
// server's max_payload (1 MiB by default: set it above the leaves' item size limit) is not sent;
// it gets memcached's `SERVER_ERROR object too large for cache`, as an item too large for the
// leaf would. `affinity` does not apply: one NATS
// connection carries every request, and NATS keeps one publisher's order to one subscriber.

import { type NatsError, RequestStrategy } from "nats";
import { ConnectionError, ProtocolError, TimeoutError } from "../errors.ts";
import { type Expect, type Reply, Reply as ReplyClass, ReplyType } from "../protocol/reply.ts";
import { ReplyParser } from "../protocol/reply-parser.ts";
import type { NatsLink } from "./nats-link.ts";
import { leafSubject, NatsHeader, poolSubject } from "./nats-subjects.ts";
import type { Sender } from "./transport.ts";

/** Where a sender records reply latencies (the router's LatencyWindow has this shape). */
export interface LatencyRecorder {
  record(latencyMs: number): void;
}

export interface NatsDestinationOptions {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  pool: string;
  leafId: string;
  /** How long a request waits for its reply. */
  timeoutMs: number;
}

/** One leaf over NATS; see the diagram above. */
export class NatsDestination implements Sender {
  readonly name: string;
  readonly subject: string;
  latency: LatencyRecorder | undefined;
  private readonly link: NatsLink;
  private readonly timeoutMs: number;
  private readonly inFlight = new Set<(error: Error) => void>(); // rejects of requests awaiting replies
  private readonly stopWatching: () => void;
  private closed = false;

  constructor(options: NatsDestinationOptions) {
    this.link = options.link;
    this.timeoutMs = options.timeoutMs;
    this.subject = leafSubject(options.prefix ?? "gravity", options.pool, options.leafId);
    this.name = `nats:${options.pool}/${options.leafId}`;
    this.stopWatching = this.link.onDisconnect((error) => this.failInFlight(error));
  }

  /** Down while the NATS link is not connected: send() would fail at once. */
  get down(): boolean {
    return !this.link.connected;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  async send(request: Uint8Array, expect: Expect, _affinity = -1): Promise<Reply> {
    if (this.closed) throw new ConnectionError(this.name, "destination closed");
    const nc = this.link.require();
    const start = performance.now();
    const msg = await this.track(async (reject) => {
      try {
        return await nc.request(this.subject, request, { timeout: this.timeoutMs });
      } catch (error) {
        if (isTooLarge(error)) return TOO_LARGE;
        reject(natsError(this.name, this.subject, this.timeoutMs, error));
        return undefined;
      }
    });
    if (msg === TOO_LARGE) return tooLargeReply();
    const reply = parseReply(msg.data, expect, this.name);
    this.latency?.record(performance.now() - start);
    return reply;
  }

  /** Fails what is in flight; the link stays open (it is shared). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopWatching();
    this.failInFlight(new ConnectionError(this.name, "destination closed with the request in flight"));
  }

  // Runs one request so that a disconnect or close() can reject it before nats.js's own timeout.
  private track<T>(run: (reject: (error: Error) => void) => Promise<T | undefined>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => {
        this.inFlight.delete(fail);
        reject(error);
      };
      this.inFlight.add(fail);
      void run(fail).then((msg) => {
        this.inFlight.delete(fail);
        if (msg !== undefined) resolve(msg);
      });
    });
  }

  private failInFlight(error: Error): void {
    for (const fail of [...this.inFlight]) fail(error);
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

const TOO_LARGE = Symbol("too large for NATS");
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
