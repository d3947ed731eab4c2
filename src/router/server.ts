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
// Backpressure (load-budget.ts holds the caps): a connection stops reading while its socket has
// unsent bytes, or once it has maxClientInflight requests waiting, or once its request bytes in
// flight, its reply bytes not yet written and its requests in flight times its recent reply size
// reach maxClientBufferedBytes. The parser is held right after the request that reached a cap
// (request-framing.ts hold()): the rest of that read waits, unparsed, in `input`, and is parsed
// once the connection is under its caps again, before the socket is resumed.
//
//   request ─> over the process's budget? ─yes─> SERVER_ERROR overloaded (not routed)
//   reply ───> large, and over the process's budget or (socket stalled) the client's? ─yes─>
//              SERVER_ERROR overloaded in its place (memcached: "out of memory writing get response")
//
// So what a client that never reads costs the router is bounded by its caps, whatever it sends,
// and what every client together costs by the process's.
//
// Half-close: a client that writes its requests and then shuts down its sending side (FIN) still
// gets every reply. The listener allows half-open sockets; on the peer's FIN the session reads
// nothing more, and the socket is ended once every slot read before the FIN has been written.
//
// Binary protocol: a connection whose first byte is 0x80 gets the binary parser, whose requests are
// the meta requests a leaf understands (binary-request-parser.ts), and its replies are encoded in
// binary (binary-reply-encoder.ts); everything between (slots, routing, ordering) is the same.

import type { Socket, TCPSocketListener } from "bun";
import { GravityError, OverloadedError } from "../errors.ts";
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
import { passwordCheck, TextAuthGate } from "../protocol/text-auth.ts";
import { bunTlsOptions, type TlsMaterial } from "../security/tls.ts";
import { quietReply } from "./forward.ts";
import type { GutterCounters } from "./handles/gutter.ts";
import type { RouteHandle } from "./handles/handle.ts";
import type { LoaderCounters } from "./handles/loader.ts";
import type { ReadRepairCounters } from "./handles/read-repair.ts";
import type { WarmUpCounters } from "./handles/warmup.ts";
import { introspect, isIntrospection } from "./introspection.ts";
import { isLeafDump, leafDump } from "./leaf-dumps.ts";
import { DEFAULT_LOAD_LIMITS, LoadBudget, SMALL_REPLY_BYTES } from "./load-budget.ts";
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
  /** What the server's clients hold and how often a cap refused (set by startRouterServer). */
  budget = new LoadBudget(DEFAULT_LOAD_LIMITS);

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
    this.budget.overloaded = 0;
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
  /** What this thread's clients may hold (default: DEFAULT_LOAD_LIMITS); shared with HTTP and gRPC. */
  budget?: LoadBudget;
  /** memcached over TLS with this certificate and key (with a CA: client certificates required). */
  tls?: TlsMaterial | null;
  /** memcached's text authentication (-Y): user -> password; the first command must carry one pair. */
  authPasswords?: SaslPasswords | null;
}

export interface RouterServer {
  readonly host: string;
  readonly port: number;
  readonly counters: RouterCounters;
  /** Stops accepting, answers what was already read, then closes every connection. */
  stop(graceMs?: number): Promise<void>;
}

const LINGER_MS = 1000;
/** Replies of one turn up to this many bytes are copied into one write; beyond, written one by one. */
const COALESCE_MAX_BYTES = 64 * 1024;
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();
const latin1 = new TextDecoder("latin1");
const TOO_MANY_CONNECTIONS = utf8.encode("ERROR Too many open connections\r\n");
/** A request refused for the process's budget (load-budget.ts), and a reply dropped for it (memcached's text). */
const REFUSED = new OverloadedError("overloaded: too many requests or bytes in flight in the router");
const DROPPED = new OverloadedError("out of memory writing get response");

// One request's place in the reply order: bytes once known (EMPTY when nothing is sent back).
class Slot {
  bytes: Uint8Array | null = null;
  close = false; // close the connection after writing this slot
  admitted = 0; // routed requests (keys) counted in the budget until answered
  pinned = 0; // the bytes admit() reserved for them: the request's and its expected reply's
}

interface Session {
  id: number; // Request.affinity of its requests
  sink: RequestSink; // where the parser sends requests and errors
  parser: RequestParser | BinaryRequestParser | null; // chosen by the first byte the client sends
  binary: boolean; // the client speaks the binary protocol: replies are encoded in binary
  slots: Slot[];
  head: number; // index in slots of the first unwritten slot
  unsent: Uint8Array | null; // reply bytes the socket did not take
  input: Uint8Array | null; // bytes read but not parsed: the parser was held (over a cap)
  feeding: boolean; // inside parser.feed(): replies written meanwhile must not feed `input`
  inFlight: number; // requests routed and not yet answered
  requestBytes: number; // their bytes (a set's value stays pinned until its leaf answers)
  replyBytes: number; // reply bytes in slots and unsent, not yet taken by the socket; counted in the budget
  replyEstimate: number; // caps its requests in flight: starts at its cap, then follows its replies
  expectedReply: number; // what each request reserves in the budget: its replies only, 0 before one

  open: boolean; // false once the socket closed: replies that arrive later are dropped uncounted
  paused: boolean;
  closing: boolean; // a slot asked to close, the peer sent FIN, or the server stops: read nothing more
  linger: ReturnType<typeof setTimeout> | null;
  queued: boolean; // in the list of sockets to flush at the end of this turn
  gate: TextAuthGate | null; // -Y: sees every byte until the connection authenticates, then null
}

type ClientSocket = Socket<Session>;

/** Starts listening; resolves once the port is bound. */
export function startRouterServer(options: RouterServerOptions): RouterServer {
  const counters = options.counters ?? new RouterCounters();
  const budget = options.budget ?? new LoadBudget(DEFAULT_LOAD_LIMITS);
  counters.budget = budget;
  const maxClientInflight = budget.limits.maxClientInflight;
  const maxClientBufferedBytes = budget.limits.maxClientBufferedBytes;
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
        slot.bytes = EMPTY; // written slots stay in `slots` until the next compaction
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
    if (parts.length === 1) write(socket, parts[0] as Uint8Array);
    else if (length <= COALESCE_MAX_BYTES) {
      if (length > 0) write(socket, concat(parts, length));
    } else writeEach(socket, parts);
    if (close) {
      session.closing = true;
      finish(socket);
      return;
    }
    if ((stopping || session.closing) && idle(session)) {
      finish(socket);
      return;
    }
    maybeResume(socket);
  };

  const write = (socket: ClientSocket, bytes: Uint8Array): void => {
    const sent = socket.write(bytes);
    release(socket.data, sent < 0 ? bytes.length : sent);
    if (sent < 0) return;
    if (sent < bytes.length) {
      socket.data.unsent = bytes.subarray(sent);
      pause(socket);
    }
  };

  // Large replies are written as they are, not copied into one buffer; what the socket does not
  // take becomes `unsent` (one copy, only then).
  const writeEach = (socket: ClientSocket, parts: readonly Uint8Array[]): void => {
    for (let i = 0; i < parts.length; i++) {
      write(socket, parts[i] as Uint8Array);
      const unsent = socket.data.unsent;
      if (unsent === null) continue;
      const rest = [unsent, ...parts.slice(i + 1)];
      let length = 0;
      for (const part of rest) length += part.length;
      socket.data.unsent = concat(rest, length);
      return;
    }
  };

  // Reply bytes the socket took (or that will never be written): no longer held.
  const release = (session: Session, bytes: number): void => {
    if (!session.open) return;
    session.replyBytes -= bytes;
    budget.bufferedBytes -= bytes;
  };

  // A slot's reply is known: it waits in the slot, counted, until flush() writes it.
  const fill = (session: Session, slot: Slot, bytes: Uint8Array): void => {
    slot.bytes = bytes;
    if (!session.open) return;
    session.replyBytes += bytes.length;
    budget.bufferedBytes += bytes.length;
  };

  // Counts `count` routed requests (keys) in the budget, or answers SERVER_ERROR overloaded at once.
  const admit = (session: Session, slot: Slot, request: Request, count: number): boolean => {
    // A client with no reply yet is held to one request by its own cap, not by the process's.
    const pinned = request.raw.length + session.expectedReply;
    if (!budget.admit(count, pinned)) {
      fill(session, slot, failureFor(session, request, REFUSED));
      return false;
    }
    slot.admitted = count;
    slot.pinned = pinned;
    session.inFlight++;
    session.requestBytes += request.raw.length;
    return true;
  };

  // An admitted request was answered or failed: its bytes and place in flight are free.
  const settle = (session: Session, slot: Slot, request: Request): void => {
    if (slot.admitted === 0) return;
    budget.settle(slot.admitted, slot.pinned);
    session.inFlight--;
    session.requestBytes -= request.raw.length;
  };

  // A reply's bytes, or memcached's out-of-memory error in their place when holding them would
  // pass the process's budget, or the client's while its socket takes nothing (see the header).
  const holdable = (session: Session, request: Request, bytes: Uint8Array): Uint8Array => {
    const length = bytes.length;
    learn(session, length);
    if (length <= SMALL_REPLY_BYTES || !session.open) return bytes;
    budget.sawReply(length);
    const overClient = session.unsent !== null && session.replyBytes + length > maxClientBufferedBytes;
    if (!overClient && budget.canHold(length)) return bytes;
    budget.overloaded++;
    return failureFor(session, request, DROPPED);
  };

  // A reply of `length` bytes came for the session (an error reply too): its estimate follows.
  const learn = (session: Session, length: number): void => {
    session.replyEstimate = follow(session.replyEstimate, length);
    session.expectedReply = follow(session.expectedReply, length);
  };

  // Whether the client has reached a cap: it reads (and parses) nothing more until under them again.
  const overCaps = (session: Session): boolean =>
    pendingSlots(session) >= maxClientInflight ||
    session.requestBytes + session.replyBytes + session.inFlight * session.replyEstimate >=
      maxClientBufferedBytes;

  // Parses `bytes`; what the parser did not take (it was held) waits in `input`, reading paused.
  const feedInput = (socket: ClientSocket, bytes: Uint8Array): void => {
    const session = socket.data;
    const parser = session.parser as RequestParser | BinaryRequestParser;
    session.feeding = true;
    const taken = parser.feed(bytes);
    session.feeding = false;
    if (taken < bytes.length) {
      session.input = bytes.slice(taken);
      pause(socket);
    }
  };

  // Past a cap: the parser stops after the request it is handing over.
  const holdIfOver = (socket: ClientSocket): void => {
    const session = socket.data;
    if (!overCaps(session)) return;
    session.parser?.hold();
    pause(socket);
  };

  const pause = (socket: ClientSocket): void => {
    if (socket.data.paused) return;
    socket.data.paused = true;
    socket.pause();
  };

  // Under every cap again: parse what was held (read before a FIN or a stop too), then read on.
  const maybeResume = (socket: ClientSocket): void => {
    const session = socket.data;
    if (!session.paused || session.unsent !== null || session.feeding || overCaps(session)) return;
    if (session.input !== null) {
      const input = session.input;
      session.input = null;
      feedInput(socket, input);
      if (session.input !== null || overCaps(session)) return;
      if ((stopping || session.closing) && idle(session)) {
        finish(socket);
        return;
      }
    }
    if (session.closing || session.unsent !== null) return;
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
    fill(socket.data, slot, bytes);
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
    holdIfOver(socket);
    // A leaf's reply goes back as the bytes it came in; a reply the router made is encoded.
    const metrics = options.metrics;
    const start = metrics === undefined ? 0 : performance.now();
    const answer = (reply: Reply) => {
      settle(session, slot, request);
      metrics?.observeRequest(
        opLabel(request.op),
        resultLabel(request.op, reply),
        (performance.now() - start) / 1000,
      );
      complete(socket, slot, holdable(session, request, encodeFor(session, request, reply)));
    };
    const fail = (error: unknown) => {
      settle(session, slot, request);
      metrics?.observeRequest(opLabel(request.op), "failed", (performance.now() - start) / 1000);
      counters.routeErrors++;
      if (verbosity.level >= 1) logRouteError(request, error);
      const bytes = failureFor(session, request, error);
      learn(session, bytes.length);
      complete(socket, slot, bytes);
    };
    switch (request.op) {
      case Op.Version:
        fill(session, slot, encodeFor(session, request, versionReply(options.version)));
        break;
      case Op.Verbosity: {
        // memcached: `verbosity N` sets the level; anything else leaves it (and still says OK).
        const level = Number(request.args[0]);
        if (Number.isInteger(level) && level >= 0) verbosity.level = level;
        fill(session, slot, encodeFor(session, request, new Reply(ReplyType.Ok)));
        break;
      }
      case Op.MetaNoop:
        fill(session, slot, encodeFor(session, request, new Reply(ReplyType.MetaNoop)));
        break;
      case Op.Quit:
        fill(session, slot, session.binary ? encodeFor(session, request, new Reply(ReplyType.Ok)) : EMPTY);
        slot.close = true;
        session.closing = true;
        break;
      case Op.Stats:
        // The router's own counters and the leaves' totals (router-stats.ts); `stats servers` per
        // leaf; items, slabs and sizes merged over the leaves. Other groups (settings, conns...)
        // describe one server and are asked of the leaves. An unknown group is ERROR, as memcached.
        if (request.args.length === 0) {
          if (!admit(session, slot, request, 1)) break;
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
          if (!admit(session, slot, request, 1)) break;
          mergedGroup(options.state().pools, request.args[0] as string, session.id).then(answer, fail);
          return;
        }
        if (request.args.length === 1 && request.args[0] === "servers")
          fill(session, slot, encodeFor(session, request, serversReply(options.state().pools)));
        else if (request.args.length === 1 && request.args[0] === "reset") {
          counters.reset();
          fill(
            session,
            slot,
            session.binary
              ? encodeFor(session, request, new Reply(ReplyType.Stats))
              : utf8.encode("RESET\r\n"),
          );
        } else fill(session, slot, encodeFor(session, request, new Reply(ReplyType.Error)));
        break;
      case Op.FlushAll:
        if (!admit(session, slot, request, 1)) break;
        flushAll(options.state(), request).then(answer, fail);
        return;
      case Op.LruCrawler: // item dumps merged over the leaves (leaf-dumps.ts)
        leafDump(options.state().pools, request).then(answer, fail);
        return;
      case Op.Get:
        if (request.keys.length === 1 && isIntrospection(request.key)) {
          fill(session, slot, encodeReply(introspect(request.key, options.state().root)));
          break;
        }
        counters.cmdGet += request.keys.length;
        if (!admit(session, slot, request, request.keys.length)) break;
        routeGet(options.state().root, request, counters).then(answer, fail);
        return;
      case Op.Gets:
      case Op.Gat:
      case Op.Gats:
        counters.cmdGet += request.keys.length;
        if (!admit(session, slot, request, request.keys.length)) break;
        routeGet(options.state().root, request, counters).then(answer, fail);
        return;
      default:
        if (request.kind === OpKind.Write) counters.cmdSet++;
        if (!admit(session, slot, request, 1)) break;
        if (request.kind === OpKind.Delete) options.onDelete?.(request.itemKey);
        options.state().root.route(request).then(answer, fail);
        return;
    }
    flush(socket);
  };

  const tls = options.tls ?? null;
  const authenticate = options.authPasswords == null ? null : passwordCheck(options.authPasswords);
  const listener: TCPSocketListener<Session> = Bun.listen<Session>({
    hostname: options.host,
    port: options.port,
    ...(tls === null ? {} : { tls: bunTlsOptions(tls) }),
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
              fill(socket.data, slot, bytes);
              slot.close = close;
              if (close) socket.data.closing = true;
              socket.data.slots.push(slot);
              holdIfOver(socket);
              flush(socket);
            },
          },
          parser: null,
          binary: false,
          slots: [],
          head: 0,
          unsent: null,
          input: null,
          feeding: false,
          inFlight: 0,
          requestBytes: 0,
          replyBytes: 0,
          // Until replies say otherwise, one request in flight; each smaller reply allows more (a
          // slow start, as TCP's): the first requests of a client cannot bring more than its cap.
          replyEstimate: maxClientBufferedBytes,
          expectedReply: 0,
          open: true,
          paused: false,
          closing: false,
          linger: null,
          queued: false,
          gate: authenticate === null ? null : new TextAuthGate(authenticate),
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
      data(socket, read) {
        const session = socket.data;
        if (session.closing) return;
        let data: Uint8Array = read;
        if (session.gate !== null) {
          // Nothing is in flight before authentication: the gate's reply goes out at once.
          const step = session.gate.feed(data);
          if (step.kind === "more") return;
          socket.write(step.reply);
          if (step.kind === "refused") {
            session.closing = true;
            finish(socket);
            return;
          }
          session.gate = null;
          if (step.rest.length === 0) return;
          data = step.rest;
        }
        if (session.parser === null) {
          // memcached try_read_command_negotiate: 0x80 first is binary, anything else text.
          const parserOptions = { maxItemBytes: options.maxItemBytes, sasl: options.sasl };
          session.binary = data[0] === 0x80 || options.sasl !== undefined;
          session.parser = session.binary
            ? new BinaryRequestParser(session.sink, parserOptions)
            : new RequestParser(session.sink, parserOptions);
        }
        // Read before the pause took effect: it waits behind what was held.
        if (session.input !== null)
          session.input = concat([session.input, data], session.input.length + data.length);
        else feedInput(socket, data);
      },
      end(socket) {
        // The peer sent FIN: answer what was read, then close.
        const session = socket.data;
        session.closing = true;
        if (idle(session)) finish(socket);
      },
      drain(socket) {
        const session = socket.data;
        if (session.unsent === null) return;
        const bytes = session.unsent;
        session.unsent = null;
        write(socket, bytes);
        if (session.unsent === null) {
          if (session.closing && idle(session)) finish(socket);
          else flush(socket);
        }
      },
      close(socket) {
        const session = socket.data;
        // Replies still held are never written: they leave the budget now, later ones uncounted.
        release(session, session.replyBytes);
        session.open = false;
        session.input = null;
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
        if (idle(socket.data)) finish(socket);
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

// A reply size estimate after a reply of `length` bytes: up at once to a larger reply, down by a
// quarter of the difference per smaller one.
function follow(estimate: number, length: number): number {
  return length >= estimate ? length : estimate - ((estimate - length) >> 2);
}

function pendingSlots(session: Session): number {
  return session.slots.length - session.head;
}

// Nothing left to answer or write: every slot written, nothing unsent, no held input.
function idle(session: Session): boolean {
  return pendingSlots(session) === 0 && session.unsent === null && session.input === null;
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
// The last error's bytes are kept: a destination that is down, or the budget, refuses every request
// with one shared error, and a fault is no time to encode the same line per request.
let lastError: unknown = null;
let lastErrorBytes = EMPTY;
function serverError(error: unknown): Uint8Array {
  if (error !== lastError) {
    lastError = error;
    lastErrorBytes = utf8.encode(`SERVER_ERROR ${errorMessage(error)}\r\n`);
  }
  return lastErrorBytes;
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
    ["inflight_requests", String(counters.budget.inFlight)],
    ["buffered_bytes", String(counters.budget.bufferedBytes)],
    ["overloaded", String(counters.budget.overloaded)],
    ...extra,
  ]);
  return reply;
}
