// The router's memcached listener: client bytes -> requests -> route tree -> replies, in order.
//
//   socket data ──> RequestParser ──> request ──> slot (in arrival order) ──> route tree (async)
//                         └─ parse error ──> slot with memcached's error reply (and close)
//   a slot's reply arrives ──> at the end of the turn, write every ready slot from the head, in
//                              order (pipelining), in one write
//
// Replies leave in request order whatever order the leaves answer in. A multi-key get is split
// into one get per key, each routed on its own (keys may live on different leaves or routes),
// and answered as one reply in the client's key order.
//
// Backpressure: at most MAX_PENDING_SLOTS requests wait per connection; past that, or while the
// socket has unsent bytes, the connection stops reading.
//
// Half-close: a client that writes its requests and then shuts down its sending side (FIN) still
// gets every reply. The listener allows half-open sockets; on the peer's FIN the session reads
// nothing more, and the socket is ended once every slot read before the FIN has been written.
//
// Binary protocol: a connection whose first byte is 0x80 gets the binary parser, whose requests are
// the meta requests a leaf understands (binary-request-parser.ts), and its replies are encoded in
// binary (binary-reply-encoder.ts); everything between (slots, routing, ordering) is the same.
import type { Socket, TCPSocketListener } from "bun";
import { GravityError } from "../errors.ts";
import type { RouterMetricsRecorder } from "../metrics/registry.ts";
import { encodeBinaryFailure, encodeBinaryReply } from "../protocol/binary-reply-encoder.ts";
import type { BinaryRequest } from "../protocol/binary-request.ts";
import { BinaryRequestParser } from "../protocol/binary-request-parser.ts";
import { encodeMetaDelete } from "../protocol/encoder.ts";
import { type Item, Reply, ReplyType } from "../protocol/reply.ts";
import { encodeReply } from "../protocol/reply-encoder.ts";
import { Op, OpKind, Request } from "../protocol/request.ts";
import { RequestParser, type RequestSink } from "../protocol/request-parser.ts";
import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import { quietReply } from "./forward.ts";
import type { GutterCounters } from "./handles/gutter.ts";
import type { RouteHandle } from "./handles/handle.ts";
import type { LoaderCounters } from "./handles/loader.ts";
import type { ReadRepairCounters } from "./handles/read-repair.ts";
import type { WarmUpCounters } from "./handles/warmup.ts";
import { introspect, isIntrospection } from "./introspection.ts";
import { isLeafDump, leafDump } from "./leaf-dumps.ts";
import type { Origin } from "./loader/origin.ts";
import type { Pool } from "./pool.ts";
import { opLabel, resultLabel } from "./request-labels.ts";
import { leafTotals, MERGED_GROUPS, mergedGroup, serversReply } from "./router-stats.ts";

/** What the server routes with; a reload replaces it between requests. */
export interface RouterState {
  readonly root: RouteHandle;
  readonly pools: ReadonlyMap<string, Pool>;
  /** The loaders' origins (closed when a reload replaces them). */
  readonly origins?: ReadonlyMap<string, Origin>;
}

/** Counters of the router's own `stats` reply (memcached's names where they exist). */
export class RouterCounters {
  currConnections = 0;
  totalConnections = 0;
  cmdGet = 0;
  cmdSet = 0;
  getHits = 0;
  getMisses = 0;
  routeErrors = 0;
  hedges = { sent: 0, won: 0 };
  /** What route handles count (exported in /metrics as gravity_router_route_events_total). */
  loader: LoaderCounters = { loads: 0, notFound: 0, failed: 0, notStored: 0 };
  gutter: GutterCounters = { diverted: 0, gutterDeleteFailures: 0 };
  warmup: WarmUpCounters = { warmHits: 0, fills: 0, fillFailures: 0, warmDeleteFailures: 0 };
  /** Replicated writes answered before every replica did (all-async, all-initial): how the rest ended. */
  backgroundWrites = { ok: 0, failed: 0 };
  readRepair: ReadRepairCounters = { lookups: 0, hits: 0, fills: 0, fillFailures: 0, refused: 0 };

  /** `stats reset`: zeroes the totals (not the gauges). */
  reset(): void {
    this.totalConnections = 0;
    this.cmdGet = 0;
    this.cmdSet = 0;
    this.getHits = 0;
    this.getMisses = 0;
    this.routeErrors = 0;
    this.hedges.sent = 0;
    this.hedges.won = 0;
    for (const group of [
      this.loader,
      this.gutter,
      this.warmup,
      this.backgroundWrites,
      this.readRepair,
    ] as Record<string, number>[])
      for (const name of Object.keys(group)) group[name] = 0;
  }
}

export interface RouterServerOptions {
  host: string;
  port: number;
  maxConnections: number;
  maxItemBytes: number;
  version: string;
  /** The current route tree and pools (read per request, so a reload takes effect at once). */
  state: () => RouterState;
  counters?: RouterCounters;
  /** Per-request metrics (optional). */
  metrics?: RouterMetricsRecorder;
  /**
   * What the router logs, memcached's -v levels: 1 route errors (at most one line a second, with
   * how many were left out), 2 also every client connection. `verbosity N` sets it at run time.
   */
  verbosity?: { level: number };
  /** Called with the key of every delete a client sends (the invalidation bus publishes it). */
  onDelete?: (key: Uint8Array) => void;
  /** Share the port with other listeners (SO_REUSEPORT): `gravity router --threads N`. */
  reusePort?: boolean;
  /**
   * memcached -S: these users must authenticate with SASL PLAIN before anything else; every
   * connection speaks binary (a text command closes it without a reply, as memcached's).
   */
  sasl?: SaslPasswords;
  /** Lines appended to the `stats` reply (the thread that serves this connection). */
  extraStats?: readonly (readonly [string, string])[];
}

export interface RouterServer {
  readonly host: string;
  readonly port: number;
  readonly counters: RouterCounters;
  /** Stops accepting, answers what was already read, then closes every connection. */
  stop(graceMs?: number): Promise<void>;
}

const MAX_PENDING_SLOTS = 1024;
const LINGER_MS = 1000;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const TOO_MANY_CONNECTIONS = utf8.encode("ERROR Too many open connections\r\n");

// One request's place in the reply order: bytes once known (EMPTY when nothing is sent back).
class Slot {
  bytes: Uint8Array | null = null;
  close = false; // close the connection after writing this slot
}

interface Session {
  id: number; // Request.affinity of its requests
  sink: RequestSink; // where the parser sends requests and errors
  parser: RequestParser | BinaryRequestParser | null; // chosen by the first byte the client sends
  binary: boolean; // the client speaks the binary protocol: replies are encoded in binary
  slots: Slot[];
  head: number; // index in slots of the first unwritten slot
  unsent: Uint8Array | null; // reply bytes the socket did not take
  paused: boolean;
  closing: boolean; // a slot asked to close, the peer sent FIN, or the server stops: read nothing more
  linger: ReturnType<typeof setTimeout> | null;
  queued: boolean; // in the list of sockets to flush at the end of this turn
}

type ClientSocket = Socket<Session>;

/** Starts listening; resolves once the port is bound. */
export function startRouterServer(options: RouterServerOptions): RouterServer {
  const counters = options.counters ?? new RouterCounters();
  const sockets = new Set<ClientSocket>();
  const started = Date.now();
  let nextSessionId = 0;
  const verbosity = options.verbosity ?? { level: 0 };
  // Route errors, at most one line a second: a dead pool must not flood the log.
  let errorWindowStart = 0;
  let errorsLeftOut = 0;
  const logRouteError = (request: Request, error: unknown): void => {
    const now = Date.now();
    if (now - errorWindowStart < 1000) {
      errorsLeftOut++;
      return;
    }
    const more = errorsLeftOut > 0 ? ` (and ${errorsLeftOut} more in the last second)` : "";
    errorWindowStart = now;
    errorsLeftOut = 0;
    const message = error instanceof Error ? error.message : String(error);
    console.error(
      `gravity router: ${opLabel(request.op)} ${latin1.decode(request.itemKey)}: ${message}${more}`,
    );
  };
  let stopping = false;

  const flush = (socket: ClientSocket): void => {
    const session = socket.data;
    if (session.unsent !== null) return; // drain() continues
    const parts: Uint8Array[] = [];
    let length = 0;
    let close = false;
    while (session.head < session.slots.length) {
      const slot = session.slots[session.head] as Slot;
      if (slot.bytes === null) break;
      if (slot.bytes.length > 0) {
        parts.push(slot.bytes);
        length += slot.bytes.length;
      }
      session.head++;
      if (slot.close) {
        close = true;
        break;
      }
    }
    if (session.head > 64 && session.head * 2 > session.slots.length) {
      session.slots = session.slots.slice(session.head);
      session.head = 0;
    }
    if (length > 0) write(socket, parts.length === 1 ? (parts[0] as Uint8Array) : concat(parts, length));
    if (close) {
      session.closing = true;
      finish(socket);
      return;
    }
    if ((stopping || session.closing) && pendingSlots(session) === 0 && session.unsent === null) {
      finish(socket);
      return;
    }
    maybeResume(socket);
  };

  const write = (socket: ClientSocket, bytes: Uint8Array): void => {
    const sent = socket.write(bytes);
    if (sent < 0) return;
    if (sent < bytes.length) {
      socket.data.unsent = bytes.subarray(sent);
      pause(socket);
    }
  };

  const pause = (socket: ClientSocket): void => {
    if (socket.data.paused) return;
    socket.data.paused = true;
    socket.pause();
  };

  const maybeResume = (socket: ClientSocket): void => {
    const session = socket.data;
    if (!session.paused || session.unsent !== null || session.closing) return;
    if (pendingSlots(session) >= MAX_PENDING_SLOTS) return;
    session.paused = false;
    socket.resume();
  };

  const finish = (socket: ClientSocket): void => {
    const session = socket.data;
    if (session.linger !== null) return;
    if (session.unsent !== null) return; // drain() finishes once the bytes are out
    socket.end();
    session.linger = setTimeout(() => socket.terminate(), LINGER_MS);
  };

  // Replies that arrive during one event-loop turn (one leaf read can answer many requests of one
  // client) are written together at the end of the turn: one write per client socket per turn.
  let ready: ClientSocket[] = [];
  let flushScheduled = false;
  const flushReady = (): void => {
    flushScheduled = false;
    const sockets = ready;
    ready = [];
    for (const socket of sockets) {
      socket.data.queued = false;
      flush(socket);
    }
  };
  const complete = (socket: ClientSocket, slot: Slot, bytes: Uint8Array): void => {
    slot.bytes = bytes;
    if (socket.data.queued) return;
    socket.data.queued = true;
    ready.push(socket);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushReady);
    }
  };

  const handle = (socket: ClientSocket, request: Request): void => {
    const session = socket.data;
    request.affinity = session.id;
    const slot = new Slot();
    session.slots.push(slot);
    if (pendingSlots(session) >= MAX_PENDING_SLOTS) pause(socket);
    // A leaf's reply goes back as the bytes it came in; a reply the router made is encoded.
    const metrics = options.metrics;
    const start = metrics === undefined ? 0 : performance.now();
    const answer = (reply: Reply) => {
      metrics?.observeRequest(
        opLabel(request.op),
        resultLabel(request.op, reply),
        (performance.now() - start) / 1000,
      );
      complete(socket, slot, encodeFor(session, request, reply));
    };
    const fail = (error: unknown) => {
      metrics?.observeRequest(opLabel(request.op), "failed", (performance.now() - start) / 1000);
      counters.routeErrors++;
      if (verbosity.level >= 1) logRouteError(request, error);
      complete(socket, slot, failureFor(session, request, error));
    };
    switch (request.op) {
      case Op.Version:
        slot.bytes = encodeFor(session, request, versionReply(options.version));
        break;
      case Op.Verbosity: {
        // memcached: `verbosity N` sets the level; anything else leaves it (and still says OK).
        const level = Number(request.args[0]);
        if (Number.isInteger(level) && level >= 0) verbosity.level = level;
        slot.bytes = encodeFor(session, request, new Reply(ReplyType.Ok));
        break;
      }
      case Op.MetaNoop:
        slot.bytes = encodeFor(session, request, new Reply(ReplyType.MetaNoop));
        break;
      case Op.Quit:
        slot.bytes = session.binary ? encodeFor(session, request, new Reply(ReplyType.Ok)) : EMPTY;
        slot.close = true;
        session.closing = true;
        break;
      case Op.Stats:
        // The router's own counters and the leaves' totals (router-stats.ts); `stats servers` per
        // leaf; items, slabs and sizes merged over the leaves. Other groups (settings, conns...)
        // describe one server and are asked of the leaves. An unknown group is ERROR, as memcached.
        if (request.args.length === 0) {
          leafTotals(options.state().pools, session.id).then(
            (totals) =>
              answer(
                statsReply(counters, started, options.version, [...(options.extraStats ?? []), ...totals]),
              ),
            fail,
          );
          return;
        }
        if (isLeafDump(request) && !session.binary) {
          leafDump(options.state().pools, request).then(answer, fail);
          return;
        }
        if (request.args.length === 1 && MERGED_GROUPS.has(request.args[0] as string)) {
          mergedGroup(options.state().pools, request.args[0] as string, session.id).then(answer, fail);
          return;
        }
        if (request.args.length === 1 && request.args[0] === "servers")
          slot.bytes = encodeFor(session, request, serversReply(options.state().pools));
        else if (request.args.length === 1 && request.args[0] === "reset") {
          counters.reset();
          slot.bytes = session.binary
            ? encodeFor(session, request, new Reply(ReplyType.Stats))
            : utf8.encode("RESET\r\n");
        } else slot.bytes = encodeFor(session, request, new Reply(ReplyType.Error));
        break;
      case Op.FlushAll:
        flushAll(options.state(), request).then(answer, fail);
        return;
      case Op.LruCrawler: // item dumps merged over the leaves (leaf-dumps.ts)
        leafDump(options.state().pools, request).then(answer, fail);
        return;
      case Op.Get:
        if (request.keys.length === 1 && isIntrospection(request.key)) {
          slot.bytes = encodeReply(introspect(request.key, options.state().root));
          break;
        }
        counters.cmdGet += request.keys.length;
        routeGet(options.state().root, request, counters).then(answer, fail);
        return;
      case Op.Gets:
      case Op.Gat:
      case Op.Gats:
        counters.cmdGet += request.keys.length;
        routeGet(options.state().root, request, counters).then(answer, fail);
        return;
      default:
        if (request.kind === OpKind.Write) counters.cmdSet++;
        if (request.kind === OpKind.Delete) options.onDelete?.(request.itemKey);
        options.state().root.route(request).then(answer, fail);
        return;
    }
    flush(socket);
  };

  const listener: TCPSocketListener<Session> = Bun.listen<Session>({
    hostname: options.host,
    port: options.port,
    // Bun.listen honours reusePort (SO_REUSEPORT) though its listen types only declare it for connect.
    ...{ reusePort: options.reusePort ?? false },
    allowHalfOpen: true, // the replies to what was read before the peer's FIN are still sent
    socket: {
      open(socket) {
        socket.setNoDelay(true);
        const session: Session = {
          id: nextSessionId++,
          sink: {
            onRequest: (request: Request) => handle(socket, request),
            // memcached drops the stored value of a key whose new value (set, ms) is refused as
            // too large; so does the router, with a delete routed ahead of the error reply on the
            // connection's affinity. The client sees none of its replies (md q would show NF).
            onTooLarge: (request: Request) => {
              const remove = quietDeleteOf(request);
              remove.affinity = socket.data.id;
              options.onDelete?.(remove.itemKey);
              const { root } = options.state();
              root.route(remove).catch(() => {}); // as memcached's unlink: best effort
            },
            onError: (bytes: Uint8Array, close: boolean) => {
              const slot = new Slot();
              slot.bytes = bytes;
              slot.close = close;
              if (close) socket.data.closing = true;
              socket.data.slots.push(slot);
              flush(socket);
            },
          },
          parser: null,
          binary: false,
          slots: [],
          head: 0,
          unsent: null,
          paused: false,
          closing: false,
          linger: null,
          queued: false,
        };
        socket.data = session;
        sockets.add(socket);
        counters.totalConnections++;
        counters.currConnections++;
        if (verbosity.level >= 2)
          console.log(`gravity router: connection from ${socket.remoteAddress} (${sockets.size} open)`);
        if (sockets.size > options.maxConnections) {
          socket.write(TOO_MANY_CONNECTIONS);
          session.closing = true;
          finish(socket);
        }
      },
      data(socket, data) {
        const session = socket.data;
        if (session.closing) return;
        if (session.parser === null) {
          // memcached try_read_command_negotiate: 0x80 first is binary, anything else text.
          const parserOptions = { maxItemBytes: options.maxItemBytes, sasl: options.sasl };
          session.binary = data[0] === 0x80 || options.sasl !== undefined;
          session.parser = session.binary
            ? new BinaryRequestParser(session.sink, parserOptions)
            : new RequestParser(session.sink, parserOptions);
        }
        session.parser.feed(data);
      },
      end(socket) {
        // The peer sent FIN: answer what was read, then close.
        const session = socket.data;
        session.closing = true;
        if (pendingSlots(session) === 0 && session.unsent === null) finish(socket);
      },
      drain(socket) {
        const session = socket.data;
        if (session.unsent === null) return;
        const bytes = session.unsent;
        session.unsent = null;
        write(socket, bytes);
        if (session.unsent === null) {
          if (session.closing && pendingSlots(session) === 0) finish(socket);
          else flush(socket);
        }
      },
      close(socket) {
        const session = socket.data;
        if (session.linger !== null) clearTimeout(session.linger);
        if (sockets.delete(socket)) {
          counters.currConnections--;
          if (verbosity.level >= 2)
            console.log(`gravity router: connection from ${socket.remoteAddress} closed`);
        }
      },
      error(socket) {
        socket.terminate();
      },
    },
  });

  return {
    host: options.host,
    port: listener.port,
    counters,
    async stop(graceMs = 5000) {
      stopping = true;
      listener.stop(false);
      for (const socket of sockets) {
        socket.data.closing = true; // read nothing more; answer what was read
        if (pendingSlots(socket.data) === 0 && socket.data.unsent === null) finish(socket);
      }
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) await Bun.sleep(10);
      for (const socket of sockets) socket.terminate();
      listener.stop(true);
    },
  };
}

// A meta delete of `refused`'s item, key base64 so any bytes go through; its reply is dropped.
function quietDeleteOf(refused: Request): Request {
  const key = refused.itemKey;
  const remove = new Request(Op.MetaDelete);
  remove.keys = [utf8.encode(Buffer.from(key).toString("base64"))];
  remove.decodedKey = key;
  remove.base64Key = true;
  remove.metaFlags = ["b", "q"];
  remove.noreply = true;
  remove.raw = encodeMetaDelete(remove.key, ["b"]);
  return remove;
}

// A reply's bytes for the session's protocol: text (what noreply and q leave of it) or binary.
function encodeFor(session: Session, request: Request, reply: Reply): Uint8Array {
  if (session.binary) return encodeBinaryReply(request as BinaryRequest, reply);
  return quietReply(request, reply) ? EMPTY : (reply.raw ?? encodeReply(reply));
}

// What the client reads when a request could not be routed.
function failureFor(session: Session, request: Request, error: unknown): Uint8Array {
  if (session.binary) return encodeBinaryFailure(request as BinaryRequest, errorMessage(error));
  return request.noreply ? EMPTY : serverError(error);
}

function versionReply(version: string): Reply {
  const reply = new Reply(ReplyType.Version);
  reply.rest = utf8.encode(version);
  return reply;
}

function pendingSlots(session: Session): number {
  return session.slots.length - session.head;
}

function concat(parts: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

// What the client reads when no destination could answer: memcached's SERVER_ERROR with the reason.
function serverError(error: unknown): Uint8Array {
  return utf8.encode(`SERVER_ERROR ${errorMessage(error)}\r\n`);
}

function errorMessage(error: unknown): string {
  const message = error instanceof GravityError || error instanceof Error ? error.message : String(error);
  return message.replace(/[\r\n]+/g, " ");
}

// A get of N keys: N single-key gets routed independently, merged in the client's key order.
// Any key that fails fails the whole reply (as twemproxy does), so a client never mistakes a
// failure for a miss.
// (A single key is the common case: one promise, no async frame.)
function routeGet(root: RouteHandle, request: Request, counters: RouterCounters): Promise<Reply> {
  if (request.keys.length === 1)
    return root.route(request).then((reply) => {
      countHits(reply, counters);
      return reply;
    });
  return routeMultiGet(root, request, counters);
}

async function routeMultiGet(root: RouteHandle, request: Request, counters: RouterCounters): Promise<Reply> {
  const keys = request.keys;
  const replies = await Promise.all(keys.map((key) => root.route(request.derive({ keys: [key] }))));
  const merged = new Reply(ReplyType.Values);
  const items: Item[] = [];
  for (const reply of replies) {
    if (reply.type !== ReplyType.Values) return reply; // an error reply from a leaf
    for (const item of reply.items ?? []) items.push(item);
  }
  merged.items = items;
  countHits(merged, counters, keys.length);
  return merged;
}

function countHits(reply: Reply, counters: RouterCounters, keys = 1): void {
  if (reply.type !== ReplyType.Values) return;
  const hits = reply.items?.length ?? 0;
  counters.getHits += hits;
  counters.getMisses += keys - hits;
}

// flush_all goes to every leaf of every pool; OK only if every leaf said OK.
async function flushAll(state: RouterState, request: Request): Promise<Reply> {
  const sends: Promise<Reply>[] = [];
  for (const pool of state.pools.values()) {
    for (const destination of pool.destinations) {
      sends.push(destination.send(request));
    }
  }
  const replies = await Promise.all(sends);
  return replies.find((reply) => reply.type !== ReplyType.Ok) ?? new Reply(ReplyType.Ok);
}

function statsReply(
  counters: RouterCounters,
  started: number,
  version: string,
  extra: readonly (readonly [string, string])[] = [],
): Reply {
  const reply = new Reply(ReplyType.Stats);
  const now = Date.now();
  reply.stats = new Map([
    ["pid", String(process.pid)],
    ["uptime", String(Math.floor((now - started) / 1000))],
    ["time", String(Math.floor(now / 1000))],
    ["version", version],
    ["curr_connections", String(counters.currConnections)],
    ["total_connections", String(counters.totalConnections)],
    ["cmd_get", String(counters.cmdGet)],
    ["cmd_set", String(counters.cmdSet)],
    ["get_hits", String(counters.getHits)],
    ["get_misses", String(counters.getMisses)],
    ["route_errors", String(counters.routeErrors)],
    ["hedges_sent", String(counters.hedges.sent)],
    ["hedges_won", String(counters.hedges.won)],
    ...extra,
  ]);
  return reply;
}
