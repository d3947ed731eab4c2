// Pools whose members come from etcd (`discovery: etcd`): one EtcdMembership per such pool, and
// the router's configuration recomposed whenever a member list changes.
//
//   config file ──base──> PoolDiscovery ──compose(base + members)──> router.reload(config)
//   etcd watch (per pool) ──members──┘
//
// A reload keeps every destination whose address did not change (router.ts), and ketama moves
// only the keys of the servers that came or went.
import { checkEtcdAccess, ETCD_CALL_TIMEOUT_MS } from "../discovery/etcd-client.ts";
import { poolKeyPrefix } from "../discovery/etcd-keys.ts";
import { EtcdMembership } from "../discovery/etcd-membership.ts";
import { type DiscoveryLog, type Member, parseAddr } from "../discovery/membership.ts";
import type { PoolConfig, RouterConfig } from "./config.ts";

export class PoolDiscovery {
  private base: RouterConfig | undefined;
  private readonly watchers = new Map<string, { key: string; membership: EtcdMembership }>();
  private readonly members = new Map<string, readonly Member[]>();

  /** `apply` receives every composed configuration (the first one from update()). */
  constructor(
    private readonly apply: (config: RouterConfig) => void,
    private readonly log: DiscoveryLog,
  ) {}

  /** Whether `config` has any pool with discovery: etcd. */
  static needed(config: RouterConfig): boolean {
    for (const spec of config.pools.values()) if (spec.discovery === "etcd") return true;
    return false;
  }

  /**
   * At start: throws GravityError (EETCDACCESS) with etcd's reason if `config` has etcd pools
   * and etcd refuses its certificate or user; an etcd that cannot be reached is no error (the
   * watches wait for it).
   */
  static async checkAccess(config: RouterConfig): Promise<void> {
    const discovered = [...config.pools].find(([, spec]) => spec.discovery === "etcd");
    if (config.etcd === undefined || discovered === undefined) return;
    // A key the watch reads, so that a user without read access there is refused too.
    const key = poolKeyPrefix(config.etcd.prefix, discovered[0]);
    await checkEtcdAccess(config.etcd, key, ETCD_CALL_TIMEOUT_MS);
  }

  /**
   * Takes a new base configuration (at start and on every reload): starts watching the etcd
   * pools it names, stops watching those it no longer names, and applies the composition.
   */
  update(base: RouterConfig): void {
    this.base = base;
    const wanted = new Map<string, string>();
    if (base.etcd !== undefined) {
      for (const [name, spec] of base.pools) {
        if (spec.discovery === "etcd")
          // The whole section, credentials included: new files mean a new client. Never logged.
          wanted.set(name, JSON.stringify(base.etcd));
      }
    }
    for (const [name, watcher] of this.watchers) {
      if (wanted.get(name) === watcher.key) continue;
      this.watchers.delete(name);
      this.members.delete(name);
      void watcher.membership.stop();
    }
    for (const [name, key] of wanted) {
      if (this.watchers.has(name) || base.etcd === undefined) continue;
      const membership = new EtcdMembership({
        ...base.etcd,
        pool: name,
        log: this.log, // its lines name the pool
      });
      this.watchers.set(name, { key, membership });
      membership.onChange((members) => {
        this.members.set(name, members);
        this.applyComposed();
      });
      void membership.start();
    }
    this.applyComposed();
  }

  /** The base configuration with every etcd pool's servers filled from its current members. */
  compose(): RouterConfig | undefined {
    const base = this.base;
    if (base === undefined) return undefined;
    const pools = new Map<string, PoolConfig>();
    for (const [name, spec] of base.pools) {
      if (spec.discovery !== "etcd") {
        pools.set(name, spec);
        continue;
      }
      const servers = [];
      for (const member of this.members.get(name) ?? []) {
        const address = parseAddr(member.addr);
        if (address !== undefined) servers.push({ ...address, weight: member.weight });
      }
      pools.set(name, { ...spec, servers });
    }
    return { ...base, pools };
  }

  /**
   * Each etcd pool and whether its members follow etcd now (false: etcd unreachable or without
   * quorum, the pool keeps its last members); what gravity_router_discovery_following exports.
   */
  *following(): Iterable<readonly [string, boolean]> {
    for (const [name, watcher] of this.watchers) yield [name, watcher.membership.following()];
  }

  async stop(): Promise<void> {
    const watchers = [...this.watchers.values()];
    this.watchers.clear();
    await Promise.all(watchers.map((watcher) => watcher.membership.stop()));
  }

  private applyComposed(): void {
    const config = this.compose();
    if (config !== undefined) this.apply(config);
  }
}
