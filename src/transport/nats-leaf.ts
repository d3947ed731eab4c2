// A leaf served over NATS request/reply: the leaf side of `transport: nats`.
//
//   router ──request──> {prefix}.leaf.{pool}.{leafId}  ──┐
//   router ──publish──> {prefix}.pool.{pool}.all  ───────┤  (every replica receives it)
//                                                        v
//                                   handle(request bytes) -> memcached reply bytes
//                                                        │
//   router <──reply (payload: reply bytes, header leaf: leafId)──┘   (none if nothing asked)
//
// Payloads are memcached protocol bytes both ways, exactly what the TCP path carries: one
// complete request in (its data block included), its complete reply out. Both subscriptions use
// the queue group {leafId} (as a subject token), so when several workers of one leaf subscribe (--threads) each
// message is handled by one of them, while every leaf still gets its own copy of a pool-wide
// publish. A publish without a reply subject (fire-and-forget replication) is applied and not
// answered.
//
// Order: NATS delivers one publisher's messages to one subscriber connection in the order sent,
// and handle() runs synchronously per message, so one router's requests to one leaf are applied
// in order (a set then a get sees the value), as on one TCP connection.
import { headers, type Msg, type NatsConnection, type Subscription } from "nats";
import type { NatsLink } from "./nats-link.ts";
import { leafSubject, NatsHeader, poolSubject, subjectToken } from "./nats-subjects.ts";

export interface LeafOverNatsOptions {
  link: NatsLink;
  /** Subject prefix (default "gravity"). */
  prefix?: string;
  /** The pool this leaf belongs to, as the router's configuration names it. */
  pool: string;
  /** This leaf's id within the pool, as the router's configuration names it (e.g. "host:port"). */
  leafId: string;
  /** One complete memcached request in, its reply bytes out (NativeRequestHandler.handle on a leaf). */
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

/** Subscribes the leaf to its subjects, now or as soon as the link connects. */
export function serveLeafOverNats(options: LeafOverNatsOptions): LeafOverNats {
  const prefix = options.prefix ?? "gravity";
  const subjects = [leafSubject(prefix, options.pool, options.leafId), poolSubject(prefix, options.pool)];
  let subscriptions: Subscription[] = [];
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
    const h = headers();
    h.set(NatsHeader.Leaf, options.leafId);
    // Not msg.respond(): the connection of the link, which may be a newer one than msg's.
    nc.publish(msg.reply, reply, { headers: h });
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
