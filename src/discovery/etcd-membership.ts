// A pool's members from etcd: the registrations under {prefix}/pools/{pool}/ (etcd-keys.ts).
//
//   sync: get prefix (snapshot at revision R) -> watch prefix from R+1 -> put/delete events
//           ^                                                                   |
//           |   backoff (capped); the last list stays in force meanwhile        | stream lost
//           +--------------------- outage (logged once) <-----------------------+
//
// Every sync starts over from a fresh snapshot rather than trusting etcd3's own watch
// reconnection: that replays from its last revision and fails if etcd compacted past it (or lost
// its data), whereas a snapshot is right whatever happened during the outage. A generation
// number marks which watcher and which in-flight get are current; events from older ones are
// dropped, so a late event from a watcher being cancelled cannot undo a newer snapshot.
import type { Etcd3, IKeyValue, Watcher } from "etcd3";
import type { EtcdAccess } from "./etcd-access.ts";
import { createEtcdClient, ETCD_CALL_TIMEOUT_MS } from "./etcd-client.ts";
import { decodeMember, poolKeyPrefix } from "./etcd-keys.ts";
import {
  type DiscoveryLog,
  type Member,
  type Membership,
  type MembershipListener,
  sameMembers,
  sortMembers,
} from "./membership.ts";
import { Backoff, describeError, OutageReporter } from "./retry.ts";

/** Where etcd is and how to authenticate (EtcdAccess), and: */
export interface EtcdMembershipOptions extends EtcdAccess {
  /** The key prefix shared with the leaves, e.g. "/gravity". */
  prefix: string;
  pool: string;
  /** Where lines go, without a prefix (the caller adds its own); default console.error with "gravity: etcd: ". */
  log?: DiscoveryLog;
  /** Changes arriving within this window are reported as one, ms (default 20). */
  debounceMs?: number;
  /** First and longest wait between reconnection attempts, ms (defaults 100 and 2000). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Deadline of each unary etcd call, ms (default 2000). */
  callTimeoutMs?: number;
}

/** The members etcd lists for one pool, kept current by a watch. */
export class EtcdMembership implements Membership {
  private readonly keyPrefix: string;
  private client: Etcd3 | undefined; // set once start() has loaded it
  private readonly log: DiscoveryLog;
  private readonly backoff: Backoff;
  private readonly outage: OutageReporter;
  private readonly debounceMs: number;
  private readonly listeners = new Set<MembershipListener>();
  private readonly entries = new Map<string, Member>(); // etcd key -> member, valid values only
  private readonly reported = new Map<string, string>(); // etcd key -> mod_revision of an invalid value already logged
  private members: readonly Member[] = [];
  private generation = 0; // bumped by every sync and every failure; see the file comment
  private watcher: Watcher | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private publishTimer: ReturnType<typeof setTimeout> | undefined;
  private started = false;
  private stopped = false;
  private loaded = false; // set by the first snapshot
  private readonly firstLoad: Promise<void>;
  private resolveFirstLoad: () => void = () => {};
  private rejectFirstLoad: (error: unknown) => void = () => {};

  constructor(private readonly options: EtcdMembershipOptions) {
    this.keyPrefix = poolKeyPrefix(options.prefix, options.pool);
    this.log = options.log ?? ((line) => console.error(`gravity: etcd: ${line}`));
    this.backoff = new Backoff(options.retryInitialMs ?? 100, options.retryMaxMs ?? 2000);
    this.outage = new OutageReporter(this.log);
    this.debounceMs = options.debounceMs ?? 20;
    this.firstLoad = new Promise((resolve, reject) => {
      this.resolveFirstLoad = resolve;
      this.rejectFirstLoad = reject;
    });
  }

  /** Also rejects if the etcd client library cannot be loaded (never for etcd being down). */
  start(): Promise<void> {
    if (!this.started && !this.stopped) {
      this.started = true;
      createEtcdClient(this.options, this.options.callTimeoutMs ?? ETCD_CALL_TIMEOUT_MS).then(
        (client) => {
          this.client = client;
          if (this.stopped) client.close();
          else void this.sync();
        },
        (error: unknown) => this.rejectFirstLoad(error),
      );
    }
    return this.firstLoad;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.generation++;
    clearTimeout(this.retryTimer);
    clearTimeout(this.publishTimer);
    this.listeners.clear();
    this.resolveFirstLoad();
    this.dropWatcher();
    this.client?.close();
  }

  current(): readonly Member[] {
    return this.members;
  }

  /**
   * True while current() follows etcd: the first list is loaded and no outage (etcd unreachable,
   * or its member without a leader) began since the watch last connected. While false, the last
   * list stays in force.
   */
  following(): boolean {
    return this.loaded && !this.outage.inOutage;
  }

  onChange(listener: MembershipListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async sync(): Promise<void> {
    this.retryTimer = undefined;
    const client = this.client;
    if (client === undefined || this.stopped) return;
    const generation = ++this.generation;
    this.dropWatcher();
    let kvs: IKeyValue[];
    let revision: bigint;
    try {
      const response = await client.getAll().prefix(this.keyPrefix).exec();
      kvs = response.kvs;
      revision = BigInt(response.header.revision);
    } catch (error) {
      this.failed(generation, error);
      return;
    }
    if (generation !== this.generation) return; // stopped, or superseded meanwhile
    this.entries.clear();
    const seen = new Set<string>();
    for (const kv of kvs) seen.add(this.put(kv));
    for (const key of this.reported.keys()) if (!seen.has(key)) this.reported.delete(key);
    this.publish();
    this.loaded = true;
    this.resolveFirstLoad();

    const watcher = client
      .watch()
      .prefix(this.keyPrefix)
      .startRevision((revision + 1n).toString())
      .watcher();
    this.watcher = watcher;
    watcher.on("put", (kv) => {
      if (generation !== this.generation) return;
      this.put(kv);
      this.schedulePublish();
    });
    watcher.on("delete", (kv) => {
      if (generation !== this.generation) return;
      const key = kv.key.toString();
      this.entries.delete(key);
      this.reported.delete(key);
      this.schedulePublish();
    });
    watcher.on("connected", () => {
      if (generation !== this.generation) return;
      this.backoff.reset();
      this.outage.recovered(
        `pool ${this.options.pool} reconnected and resynced: ${this.members.length} members`,
      );
    });
    // "disconnected": the stream broke; "error": etcd cancelled the watch (e.g. compacted revision).
    watcher.on("disconnected", (error) => this.failed(generation, error));
    watcher.on("error", (error) => this.failed(generation, error));
  }

  // Records a put event or snapshot entry; returns its key.
  private put(kv: IKeyValue): string {
    const key = kv.key.toString();
    const member = decodeMember(key.slice(this.keyPrefix.length), kv.value.toString());
    if (typeof member === "string") {
      this.entries.delete(key);
      if (this.reported.get(key) !== kv.mod_revision) {
        this.reported.set(key, kv.mod_revision);
        this.log(`ignoring ${key}: ${member}`);
      }
    } else {
      this.entries.set(key, member);
      this.reported.delete(key);
    }
    return key;
  }

  private failed(generation: number, error: unknown): void {
    if (generation !== this.generation) return; // an old watcher or get, already handled
    this.generation++;
    this.dropWatcher();
    this.outage.failed(
      `pool ${this.options.pool} unreachable (${describeError(error)}); ` +
        `keeping its last ${this.members.length} members and reconnecting`,
    );
    this.retryTimer = setTimeout(() => void this.sync(), this.backoff.next());
  }

  private dropWatcher(): void {
    const watcher = this.watcher;
    this.watcher = undefined;
    // Its listeners stay (an EventEmitter without an "error" listener throws); the generation
    // check makes them inert.
    if (watcher !== undefined) void watcher.cancel().catch(() => {});
  }

  private schedulePublish(): void {
    if (this.publishTimer !== undefined) return;
    this.publishTimer = setTimeout(() => this.publish(), this.debounceMs);
  }

  // Tells the listeners if the list differs from the last one they saw.
  private publish(): void {
    clearTimeout(this.publishTimer);
    this.publishTimer = undefined;
    const next = sortMembers(this.entries.values());
    if (sameMembers(next, this.members)) return;
    this.members = next;
    for (const listener of this.listeners) {
      try {
        listener(next);
      } catch (error) {
        this.log(`a membership listener for pool ${this.options.pool} threw: ${describeError(error)}`);
      }
    }
  }
}
