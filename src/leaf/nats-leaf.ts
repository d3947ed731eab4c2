// A leaf served over NATS request/reply: the leaf side of `transport: nats`.
//
//   router ──request──> {prefix}.leaf.{pool}.{leafId}  ──┐
//   router ──publish──> {prefix}.pool.{pool}.all  ───────┤  (every replica receives it)
//                                                        v
//                                   handle(request bytes) -> memcached reply bytes
//                                                        │
//   router <──reply (payload: reply bytes; header leaf: leafId on a pool-wide request's)──┘
//                                                                   (none if nothing asked)
//
// Payloads are memcached protocol bytes both ways, exactly what the TCP path carries: one or more
// complete requests in (a router batches the requests of one event-loop turn; data blocks
// included), run through handle() in one call, their complete replies out in the same order. Replies
// larger than the server's max_payload go out in pieces to the same reply subject, each piece but
// the last with the header `more` (NATS keeps their order: one publisher, one subscriber). Both subscriptions use
// the queue group {leafId} (as a subject token), so when several workers of one leaf subscribe (--threads) each
// message is handled by one of them, while every leaf still gets its own copy of a pool-wide
// publish. A publish without a reply subject (fire-and-forget replication) is applied and not
// answered.
//
// Order: NATS delivers one publisher's messages to one subscriber connection in the order sent,
// and handle() runs synchronously per message, so one router's requests to one leaf are applied
// in order (a set then a get sees the value), as on one TCP connection.
import { headers, type Msg, type NatsConnection, type Subscription } from "nats";
import { maxPayloadBytes, type NatsLink } from "../transport/nats-link.ts";
import { leafSubject, NatsHeader, poolSubject, subjectToken } from "../transport/nats-subjects.ts";

export interface LeafOverNatsOptions {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  /** The pool this leaf belongs to, as the router's configuration names it. */
  pool: string;
  /** This leaf's id within the pool, as the router's configuration names it (e.g. "host:port"). */
  leafId: string;
  /** Complete memcached requests in, their reply bytes out (NativeRequestHandler.handle on a leaf). */
  handle: (request: Uint8Array) => Uint8Array;
  /** Called when handle() throws (the request is answered with SERVER_ERROR). */
  onError?: (error: unknown) => void;
}

/** A running NATS leaf service. */
export interface LeafOverNats {
  /** The subjects served: the leaf's own and its pool's. */
  readonly subjects: readonly string[];
  /** Resolves once the subscriptions are registered with a NATS server (the first time). */
  readonly ready: Promise<void>;
  /** Unsubscribes (the link stays open: it is the caller's). */
  close(): Promise<void>;
}

const utf8 = new TextEncoder();
/** Room left in each reply piece for its headers (a leaf id and `more`). */
const HEADER_ROOM_BYTES = 1024;

/** Subscribes the leaf to its subjects, now or as soon as the link connects. */
export function serveLeafOverNats(options: LeafOverNatsOptions): LeafOverNats {
  const prefix = options.prefix ?? "gravity";
  const poolWide = poolSubject(prefix, options.pool);
  const subjects = [leafSubject(prefix, options.pool, options.leafId), poolWide];
  let subscriptions: Subscription[] = [];
  const leafHeaders = headers();
  leafHeaders.set(NatsHeader.Leaf, options.leafId);
  const moreHeaders = headers();
  moreHeaders.set(NatsHeader.Leaf, options.leafId);
  moreHeaders.set(NatsHeader.More, "1");
  let closed = false;

  const onMessage = (nc: NatsConnection, msg: Msg) => {
    let reply: Uint8Array;
    try {
      reply = options.handle(msg.data);
    } catch (error) {
      options.onError?.(error);
      reply = utf8.encode(`SERVER_ERROR ${error instanceof Error ? error.message : String(error)}\r\n`);
    }
    if (msg.reply === undefined || msg.reply === "") return;
    // Not msg.respond(): the connection of the link, which may be a newer one than msg's.
    const pieceBytes = maxPayloadBytes(nc) - HEADER_ROOM_BYTES;
    // The leaf header only where a reply needs it: a pool-wide request's (replicas are told apart
    // by it) and pieces followed by more; a leaf's own replies travel without headers.
    const lastHeaders = msg.subject === poolWide ? leafHeaders : undefined;
    for (let at = 0; ; at += pieceBytes) {
      if (reply.length - at <= pieceBytes) {
        const piece = at === 0 ? reply : reply.subarray(at);
        nc.publish(msg.reply, piece, lastHeaders === undefined ? undefined : { headers: lastHeaders });
        return;
      }
      nc.publish(msg.reply, reply.subarray(at, at + pieceBytes), { headers: moreHeaders });
    }
  };

  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  const stopListening = options.link.onConnection((nc) => {
    if (closed) return;
    subscriptions = subjects.map((subject) =>
      nc.subscribe(subject, {
        queue: subjectToken(options.leafId),
        callback: (error, msg) => {
          if (error === null) onMessage(nc, msg);
        },
      }),
    );
    nc.flush().then(markReady, () => {});
  });

  return {
    subjects,
    ready,
    async close() {
      closed = true;
      stopListening();
      for (const subscription of subscriptions) if (!subscription.isClosed()) subscription.unsubscribe();
      subscriptions = [];
    },
  };
}
