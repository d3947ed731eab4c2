// Read-through loading (a loader route): a read the child misses is answered from an origin (an
// HTTP endpoint, SQLite, PostgreSQL, MySQL), and the value is stored through the child so the next
// read hits. Concurrent misses for one key share one origin load (singleflight).
//
//   get k ──> child ── hit ──────────────────────────────> VALUE (as the leaf sent it)
//               │ └─── negative entry ───────────────────> miss (END / EN)
//               └ miss ─> singleflight(k) ─ waiter ───────> the leader's outcome, or TimeoutError
//                             │ leader
//                             ├ mg k v f c t (read again) ─ hit ─> that item
//                             └ origin.load(k) ── value ─> ms k ME T<ttl> F0 c ──> VALUE (CAS from ms)
//                                              ├─ null ──> ms k ME T<negative ttl> F<NEGATIVE_FLAGS> ──> miss
//                                              └─ error ─> reject (SERVER_ERROR <reason>), nothing stored
//
// The leader reads the child once more before it loads, as groupcache's load does: a miss that
// reaches the singleflight just after the previous flight for its key landed (its value stored,
// the flight removed) then finds the stored value instead of loading it again.
//
// Stores use `ms` in add mode (ME) rather than `set`: a client's write that lands between the miss
// and the store is not overwritten by an older origin value, and the `c` flag returns the stored
// item's CAS, which gets and `mg c` need, in the same round trip.
//
// Negative entries: an empty value with client flags NEGATIVE_FLAGS (4294967295). Every read
// through this route treats such an item as a miss (get, gets, gat, gats: no VALUE; mg: EN). A
// client that itself stores an empty value with those flags through this route sees a miss too.
//
// Which requests load: get, gets, and mg with v (and without N: vivify-on-miss is the client's own
// lease protocol). gat, gats and mg without v never load but still see a negative entry as a miss.
// Writes, deletes and everything else pass through unchanged.
//
// A loaded value answering mg carries, in the order the client gave them, the return flags this
// route can honour: k (with b for a base64 key), O, f (the stored flags, 0), s, c (the stored CAS,
// 0 if the store did not take), t (ttlSeconds, -1 for 0), h0 and l0 (the item is new). T, N, R, E,
// I and u act on an item the leaf holds, so a loaded answer has nothing to apply them to.
import { TimeoutError } from "../../errors.ts";
import { MAX_RELATIVE_EXPTIME_SECONDS } from "../../protocol/encoder.ts";
import { Item, Reply, ReplyType } from "../../protocol/reply.ts";
import { Op, type Request } from "../../protocol/request.ts";
import { loadWithTimeout, type Origin } from "../loader/origin.ts";
import { Singleflight } from "../singleflight.ts";
import type { RouteHandle, RouteVisitor } from "./handle.ts";

/** The client flags that mark a negative entry (an origin's not-found), with an empty value. */
export const NEGATIVE_FLAGS = 0xffff_ffff;

/** memcached reads an exptime above 30 days as a Unix time; loader TTLs are relative. */

export interface LoaderOptions {
  /** The exptime of loaded values: seconds, 0 for no expiry, at most 30 days. */
  ttlSeconds: number;
  /** The exptime of negative entries: seconds, at most 30 days; 0 caches no negative entries. */
  negativeTtlSeconds: number;
  /** The longest one origin load may take; past it the load fails with "timed out after N ms". */
  timeoutMs: number;
  /** The longest a miss waits for a load of its key already in flight before it fails on its own. */
  waitMs: number;
  /** The most keys with a load in flight (default 10,000); past it a load is not shared. */
  maxInFlightKeys?: number;
  /** Counted as loads happen (e.g. for metrics). */
  counters?: LoaderCounters;
  /**
   * Leases ("Scaling Memcache at Facebook" §3.2.1) on behalf of plain get clients: a miss asks
   * the leaf for the lease (mg N); only the winner loads from the origin and fills the item (ms C
   * with the lease's CAS), every other router told to wait (Z) polls the leaf until the value is
   * there. Singleflight joins the misses of one router; leases join those of every router.
   */
  leases?: boolean;
}

// How often a router told to wait (Z) looks again for the lease holder's value.
const LEASE_POLL_MS = 10;

/** What a loader route did, counted as it happens. */
export interface LoaderCounters {
  /** Origin loads started. */
  loads: number;
  /** Loads that found nothing. */
  notFound: number;
  /** Loads that failed (origin error or timeout). */
  failed: number;
  /** Loaded values or negative entries the child did not store (it failed, or a client's write won). */
  notStored: number;
}

/** An item a flight found: loaded from the origin, or in the cache when the leader read again. */
interface Found {
  value: Uint8Array;
  flags: number;
  /** The stored item's CAS; 0 when the store did not take. */
  cas: bigint;
  /** Seconds left, -1 for no expiry (what mg t reports). */
  ttlSeconds: number;
}

const latin1 = new TextDecoder("latin1");
const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
const EMPTY = new Uint8Array(0);

export class LoaderRoute implements RouteHandle {
  readonly routeName: string;
  readonly children: readonly RouteHandle[];
  private readonly flights: Singleflight<string, Found | null>;
  private readonly ttlSeconds: number;
  private readonly negativeTtlSeconds: number;
  private readonly timeoutMs: number;
  private readonly counters: LoaderCounters | undefined;
  private readonly leases: boolean;
  private readonly waitMs: number;

  constructor(
    private readonly child: RouteHandle,
    private readonly origin: Origin,
    options: LoaderOptions,
  ) {
    this.routeName = `loader(origin=${origin.name}, leases=${options.leases === true})`;
    this.children = [child];
    this.ttlSeconds = checkTtl("ttlSeconds", options.ttlSeconds);
    this.negativeTtlSeconds = checkTtl("negativeTtlSeconds", options.negativeTtlSeconds);
    if (!(options.timeoutMs > 0))
      throw new RangeError(`timeoutMs must be positive, got ${options.timeoutMs}`);
    this.timeoutMs = options.timeoutMs;
    this.flights = new Singleflight({ waitMs: options.waitMs, maxKeys: options.maxInFlightKeys });
    this.counters = options.counters;
    this.leases = options.leases === true;
    this.waitMs = options.waitMs;
  }

  // The cache below; a miss also reaches the origin, which is not a leaf.
  traverse(request: Request, visit: RouteVisitor): void {
    this.child.traverse(request, visit);
  }

  /** Keys with an origin load in flight. */
  get loadsInFlight(): number {
    return this.flights.size;
  }

  route(request: Request): Promise<Reply> {
    switch (request.op) {
      case Op.Get:
      case Op.Gets:
        return this.get(request, true);
      case Op.Gat:
      case Op.Gats:
        return this.get(request, false);
      case Op.MetaGet:
        return this.metaGet(request);
      default:
        return this.child.route(request);
    }
  }

  private async get(request: Request, load: boolean): Promise<Reply> {
    // With leases the first read is the lease request itself (mg N): a plain get would see
    // another router's lease placeholder as an empty value.
    if (this.leases && load) return this.found(request, await this.fetch(request));
    const reply = await this.child.route(request);
    if (reply.type !== ReplyType.Values) return reply; // an error reply
    const item = reply.items?.[0];
    if (item !== undefined) return isNegative(item.flags, item.value.length) ? valuesReply([]) : reply;
    if (!load) return reply;
    return this.found(request, await this.fetch(request));
  }

  // The get reply for what a load (or a lease read) found.
  private found(request: Request, found: Found | null): Reply {
    if (found === null) return valuesReply([]);
    const cas = request.op === Op.Gets ? found.cas : undefined;
    return valuesReply([new Item(request.key, found.flags, cas, found.value)]);
  }

  private async metaGet(request: Request): Promise<Reply> {
    const asked = new Set(request.metaFlags.map((flag) => flag[0]));
    // The child is asked for f and s too, to tell a negative entry; the client sees only its own flags.
    const added = ["f", "s"].filter((flag) => !asked.has(flag));
    const flags = request.metaFlags.filter((flag) => flag !== "q").concat(added);
    const reply = await this.child.route(request.derive({ op: Op.MetaGet, metaFlags: flags }));
    if (reply.type === ReplyType.MetaValue || reply.type === ReplyType.MetaHeader) {
      if (isNegative(Number(reply.metaFlag("f")), Number(reply.metaFlag("s")))) return metaMiss(request);
      return added.length === 0 ? reply : withoutFlags(reply, added);
    }
    if (reply.type !== ReplyType.MetaMiss || !asked.has("v") || asked.has("N")) return reply;
    const found = await this.fetch(request);
    return found === null ? reply : metaValue(request, found);
  }

  // The outcome of the one flight for the request's item key.
  private fetch(request: Request): Promise<Found | null> {
    return this.flights.do(latin1.decode(request.itemKey), () => this.readThrough(request));
  }

  // The leader: read again, else load from the origin and store what it says.
  private async readThrough(request: Request): Promise<Found | null> {
    if (this.leases) return this.readThroughWithLease(request);
    const again = await this.child.route(
      request.derive({ op: Op.MetaGet, metaFlags: keyFlags(request, ["v", "f", "c", "t"]) }),
    );
    if (again.type === ReplyType.MetaValue) return foundIn(again);
    // Add mode: a client's write that landed meanwhile is not overwritten.
    return this.load(request, "ME");
  }

  // The leader with leases: win the lease and load, or wait for whoever won it.
  private async readThroughWithLease(request: Request): Promise<Found | null> {
    const leaseSeconds = Math.max(1, Math.ceil(this.timeoutMs / 1000) + 1);
    const ask = request.derive({
      op: Op.MetaGet,
      metaFlags: keyFlags(request, ["v", "f", "c", "t", `N${leaseSeconds}`]),
    });
    const deadline = performance.now() + this.waitMs;
    for (;;) {
      // N every time: a lease that expired (its holder died) is won again by the next look.
      const reply = await this.child.route(ask);
      if (reply.type !== ReplyType.MetaValue) throw new Error(`lease: unexpected reply ${reply.text}`);
      // Won: fill the vivified item only while it still has the lease's CAS (a delete or a newer
      // write in between wins, as the paper's stale-set rule asks).
      if (reply.metaFlag("W") !== undefined) return this.load(request, `C${reply.metaFlag("c") ?? "0"}`);
      if (reply.metaFlag("Z") === undefined) return foundIn(reply);
      // Another router holds the lease: its value arrives soon (or the lease expires and the
      // next look wins it).
      if (performance.now() > deadline)
        throw new TimeoutError("waiting for another router's load", this.waitMs);
      await Bun.sleep(LEASE_POLL_MS);
    }
  }

  // Loads the item from the origin and stores it (`mode`: ms's ME to add, or C<cas> to fill a
  // lease); a not-found is stored as a negative entry when negative caching is on. An origin
  // failure stores nothing.
  private async load(request: Request, mode: string): Promise<Found | null> {
    const counters = this.counters;
    if (counters !== undefined) counters.loads++;
    let value: Uint8Array | null;
    try {
      value = await loadWithTimeout(this.origin, request.itemKey, this.timeoutMs);
    } catch (error) {
      if (counters !== undefined) counters.failed++;
      throw error;
    }
    if (value === null) {
      if (counters !== undefined) counters.notFound++;
      // Without negative caching a lease's empty placeholder is left to expire with the lease
      // (T0 would make a negative entry that never expires).
      if (this.negativeTtlSeconds > 0)
        await this.store(request, EMPTY, NEGATIVE_FLAGS, this.negativeTtlSeconds, mode);
      return null;
    }
    const cas = await this.store(request, value, 0, this.ttlSeconds, mode);
    return { value, flags: 0, cas, ttlSeconds: this.ttlSeconds === 0 ? -1 : this.ttlSeconds };
  }

  // Stores the item with ms in `mode`; the stored item's CAS, or 0 if the child did not store it.
  // A failed store is not the client's failure: the value still answers the read.
  private async store(
    request: Request,
    value: Uint8Array,
    flags: number,
    ttlSeconds: number,
    mode: string,
  ): Promise<bigint> {
    const metaFlags = keyFlags(request, [mode, `T${ttlSeconds}`, `F${flags}`, "c"]);
    const set = request.derive({ op: Op.MetaSet, value, metaFlags });
    set.flags = flags;
    set.exptime = ttlSeconds;
    try {
      const reply = await this.child.route(set);
      if (reply.type === ReplyType.MetaHeader) return BigInt(reply.metaFlag("c") ?? "0");
    } catch {
      // counted below
    }
    if (this.counters !== undefined) this.counters.notStored++;
    return 0n;
  }
}

// What an mg v f c t hit holds (null for a negative entry).
function foundIn(reply: Reply): Found | null {
  const value = reply.value ?? EMPTY;
  const flags = Number(reply.metaFlag("f"));
  if (isNegative(flags, value.length)) return null;
  return { value, flags, cas: BigInt(reply.metaFlag("c") ?? "0"), ttlSeconds: Number(reply.metaFlag("t")) };
}

function checkTtl(name: string, seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 0 || seconds > MAX_RELATIVE_EXPTIME_SECONDS) {
    throw new RangeError(`${name} must be an integer in 0..${MAX_RELATIVE_EXPTIME_SECONDS}, got ${seconds}`);
  }
  return seconds;
}

function isNegative(flags: number, size: number): boolean {
  return flags === NEGATIVE_FLAGS && size === 0;
}

// `flags`, with b when the request's key is base64 (so the child reads the same item).
function keyFlags(request: Request, flags: string[]): string[] {
  return request.base64Key ? ["b", ...flags] : flags;
}

function valuesReply(items: Item[]): Reply {
  const reply = new Reply(ReplyType.Values);
  reply.items = items;
  return reply;
}

// `reply` without the return flags the router added (raw dropped: the bytes are encoded again).
function withoutFlags(reply: Reply, added: string[]): Reply {
  const tokens = latin1.decode(reply.rest).split(" ");
  const kept = tokens.filter((token) => token !== "" && !added.includes(token[0] as string));
  const out = new Reply(reply.type);
  out.value = reply.value;
  out.rest = ascii(kept.join(" "));
  return out;
}

// The key as mg's k flag returns it: as sent, then b for a base64 key.
function keyTokens(request: Request): string[] {
  const key = `k${latin1.decode(request.key)}`;
  return request.base64Key ? [key, "b"] : [key];
}

// EN with the O and k flags echoed, as a leaf answers a miss.
function metaMiss(request: Request): Reply {
  const tokens: string[] = [];
  for (const flag of request.metaFlags) {
    if (flag[0] === "O") tokens.push(flag);
    else if (flag[0] === "k") tokens.push(...keyTokens(request));
  }
  const reply = new Reply(ReplyType.MetaMiss);
  reply.rest = ascii(tokens.join(" "));
  return reply;
}

// VA for a found item with the return flags the client asked for, in its order.
function metaValue(request: Request, found: Found): Reply {
  const tokens: string[] = [];
  for (const flag of request.metaFlags) {
    switch (flag[0]) {
      case "s":
        tokens.push(`s${found.value.length}`);
        break;
      case "t":
        tokens.push(`t${found.ttlSeconds}`);
        break;
      case "c":
        tokens.push(`c${found.cas}`);
        break;
      case "f":
        tokens.push(`f${found.flags}`);
        break;
      case "l":
        tokens.push("l0");
        break;
      case "h":
        tokens.push("h0");
        break;
      case "O":
        tokens.push(flag);
        break;
      case "k":
        tokens.push(...keyTokens(request));
        break;
    }
  }
  const reply = new Reply(ReplyType.MetaValue);
  reply.value = found.value;
  reply.rest = ascii(tokens.join(" "));
  return reply;
}
