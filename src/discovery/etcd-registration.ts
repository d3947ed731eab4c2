// A leaf's registration in etcd: its member key under a lease that the client keeps alive.
//
//   registerLeaf() -> grant lease (TTL) -> put key=value under it -> keep-alive every TTL/3
//        ^                                                              |
//        |  backoff (capped)    lease lost: etcd said it expired, or no keep-alive got
//        +---- not registered <-------- through for 2 x TTL (etcd down, partition)
//
//   stop() (SIGTERM) -> delete the key if it is still under our lease -> revoke the lease
import type { Etcd3, Lease } from "etcd3";
import type { EtcdAccess } from "./etcd-access.ts";
import { createEtcdClient, ETCD_CALL_TIMEOUT_MS } from "./etcd-client.ts";
import { encodeMember, isKeySegment, memberKey } from "./etcd-keys.ts";
import { type DiscoveryLog, parseAddr } from "./membership.ts";
import { Backoff, describeError, OutageReporter } from "./retry.ts";

/** Where etcd is and how to authenticate (EtcdAccess), and: */
export interface LeafRegistrationOptions extends EtcdAccess {
  /** The key prefix shared by routers and leaves, e.g. "/gravity". */
  prefix: string;
  pool: string;
  /** Unique within the pool: a second leaf with the same id overwrites the first's key. */
  leafId: string;
  /** Where routers reach this leaf: "host:port". */
  addr: string;
  /** A positive integer. */
  weight: number;
  zone?: string;
  version: string;
  /** The lease's TTL, whole seconds >= 1: a leaf that dies unannounced leaves the pool this long after. */
  leaseTtlSeconds: number;
  /** Where lines go, without a prefix (the caller adds its own); default console.error with "gravity: etcd: ". */
  log?: DiscoveryLog;
  /** First and longest wait between registration attempts, ms (defaults 100 and 5000). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Deadline of each unary etcd call, ms (default 2000). */
  callTimeoutMs?: number;
}

/** A running registration. */
export interface LeafRegistration {
  /** The etcd key this leaf registers under. */
  readonly key: string;
  /** Resolves true at the first successful registration, or false if stop() came first. Never rejects. */
  readonly ready: Promise<boolean>;
  /** The lease the key is registered under now (decimal), undefined while not registered. */
  leaseId(): string | undefined;
  /**
   * Deletes the key (if it is still under this registration's lease) and revokes the lease, giving
   * up after `deadlineMs` (default 2000; the key then goes when the lease expires); closes the client.
   */
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * Registers a leaf and keeps it registered until stop(): re-registers under a new lease whenever
 * the lease is lost, retrying with capped backoff, and logs once per outage. Resolves as soon as
 * the etcd client is loaded, before etcd has answered: await `ready` for the first registration.
 * Rejects with a TypeError for options that can never work.
 */
export async function registerLeaf(options: LeafRegistrationOptions): Promise<LeafRegistration> {
  if (!isKeySegment(options.pool))
    throw new TypeError(`pool ${JSON.stringify(options.pool)}: expected one key segment`);
  if (!isKeySegment(options.leafId))
    throw new TypeError(`leaf id ${JSON.stringify(options.leafId)}: expected one key segment`);
  if (parseAddr(options.addr) === undefined)
    throw new TypeError(`addr ${JSON.stringify(options.addr)}: expected host:port`);
  if (!Number.isInteger(options.weight) || options.weight < 1)
    throw new TypeError("weight: expected a positive integer");
  if (!Number.isInteger(options.leaseTtlSeconds) || options.leaseTtlSeconds < 1)
    throw new TypeError("leaseTtlSeconds: expected an integer >= 1");
  const client = await createEtcdClient(options, options.callTimeoutMs ?? ETCD_CALL_TIMEOUT_MS);
  const registration = new EtcdRegistration(options, client);
  registration.begin();
  return registration;
}

class EtcdRegistration implements LeafRegistration {
  readonly key: string;
  readonly ready: Promise<boolean>;
  private readonly value: string;
  private readonly backoff: Backoff;
  private readonly outage: OutageReporter;
  private readonly log: DiscoveryLog;
  private resolveReady: (registered: boolean) => void = () => {};
  // The lease of the attempt in progress or of the registration in force. An event from any
  // other lease (an abandoned attempt) is stale and ignored.
  private lease: Lease | undefined;
  private registeredLeaseId: string | undefined; // set once the put under `lease` succeeded
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly options: LeafRegistrationOptions,
    private readonly client: Etcd3,
  ) {
    this.key = memberKey(options.prefix, options.pool, options.leafId);
    this.value = encodeMember(options);
    this.backoff = new Backoff(options.retryInitialMs ?? 100, options.retryMaxMs ?? 5000);
    this.log = options.log ?? ((line) => console.error(`gravity: etcd: ${line}`));
    this.outage = new OutageReporter(this.log);
    this.ready = new Promise((resolve) => {
      this.resolveReady = resolve;
    });
  }

  begin(): void {
    void this.attempt();
  }

  leaseId(): string | undefined {
    return this.registeredLeaseId;
  }

  private async attempt(): Promise<void> {
    this.retryTimer = undefined;
    if (this.stopped) return;
    const lease = this.client.lease(this.options.leaseTtlSeconds);
    this.lease = lease;
    // 'lost' also fires when the grant itself fails, before grant() rejects below.
    lease.on("lost", (error) => this.lost(lease, error));
    try {
      const id = await lease.grant();
      await lease.put(this.key).value(this.value).exec();
      if (this.stopped || this.lease !== lease) return; // stop() or a loss took over
      this.registeredLeaseId = id;
      this.backoff.reset();
      this.outage.recovered(`${this.key} registered again (lease ${id})`);
      this.resolveReady(true);
    } catch (error) {
      this.lost(lease, error);
    }
  }

  private lost(lease: Lease, error: unknown): void {
    if (this.stopped || this.lease !== lease) return;
    this.lease = undefined;
    this.registeredLeaseId = undefined;
    lease.release(); // no more keep-alives; a granted lease expires after its TTL
    this.outage.failed(
      `${this.key} is not registered (${describeError(error)}); ` +
        "re-registering with a new lease until etcd answers",
    );
    this.retryTimer = setTimeout(() => void this.attempt(), this.backoff.next());
  }

  async stop(deadlineMs = 2000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.resolveReady(false);
    const lease = this.lease;
    this.lease = undefined;
    this.registeredLeaseId = undefined;
    if (lease !== undefined) {
      const deregister = this.deregister(lease);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<"expired">((resolve) => {
        timer = setTimeout(() => resolve("expired"), deadlineMs);
      });
      const outcome = await Promise.race([deregister, expired]);
      clearTimeout(timer);
      if (outcome !== undefined) {
        lease.release();
        this.log(
          `could not remove ${this.key} (${outcome === "expired" ? `no answer in ${deadlineMs} ms` : outcome}); ` +
            `it goes when its lease expires (${this.options.leaseTtlSeconds} s)`,
        );
      }
    }
    this.client.close();
  }

  // Resolves undefined once the key is gone and the lease revoked, or with the reason it failed.
  private async deregister(lease: Lease): Promise<string | undefined> {
    try {
      const id = await lease.grant();
      // Only our own key: a leaf restarted with the same id may have registered it again.
      await this.client.if(this.key, "Lease", "==", id).then(this.client.delete().key(this.key)).commit();
      await lease.revoke();
      return undefined;
    } catch (error) {
      return describeError(error);
    }
  }
}
