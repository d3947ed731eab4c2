// A pool of leaves at run time: its destinations, the ring that maps a key to one of them, and
// the pool's recent latencies (for adaptive hedging). Built from a pool's configuration; a reload
// builds a new Pool and hands it the destinations that did not change (no reconnect).
import { type HashFunction, HashFunctions, type HashName } from "../hash/hash-functions.ts";
import { KetamaRing, ketamaServerName } from "../hash/ketama.ts";
import { ModulaRing } from "../hash/modula.ts";
import type { Ring } from "../hash/ring.ts";
import type { ClientTls } from "../security/tls.ts";
import { NatsDestination } from "../transport/nats-destination.ts";
import type { NatsLink } from "../transport/nats-link.ts";
import { TcpDestination } from "../transport/tcp-destination.ts";
import type { TkoOptions } from "../transport/tko.ts";
import type { Sender, SenderHooks } from "../transport/transport.ts";
import type { DeleteSpool } from "./spool.ts";
import { SpoolingSender } from "./spooling-sender.ts";

/** What pools with transport: nats share: the router's NATS link and subject prefix. */
export interface NatsContext {
  link: NatsLink;
  prefix: string;
}

import { LatencyWindow } from "./latency.ts";

export interface ServerSpec {
  host: string;
  port: number;
  weight: number;
  name?: string;
}

/** What a pool needs from the configuration (src/router/config.ts validates it). */
export interface PoolSpec {
  servers: readonly ServerSpec[];
  /** "tcp" (default) or "nats" (needs a NatsContext). */
  transport?: "tcp" | "nats";
  hash: HashName;
  distribution: "ketama" | "modula";
  connections: number;
  maxConnections: number;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxInFlight: number;
  maxQueued: number;
  tko: TkoOptions;
  /** TLS to every leaf of a tcp pool; absent: plaintext. */
  tls?: ClientTls;
}

/**
 * The percentiles a pool's latency window keeps: hedging uses one of them. The window holds the
 * latency of reads as the client sees it (the first good reply, hedge or not), recorded by the
 * replicated route, so a replica's stalled replies that a hedge beat do not push the delay up.
 */
export const TRACKED_PERCENTILES: readonly number[] = [50, 90, 95, 99];

export class Pool {
  readonly destinations: readonly Sender[];
  readonly latency = new LatencyWindow(TRACKED_PERCENTILES);
  private readonly ring: Ring;
  private readonly hash: HashFunction;

  /**
   * `reuse` returns an existing destination for a server whose connection settings are unchanged
   * (a reload), or undefined to open a new one.
   */
  constructor(
    readonly name: string,
    readonly spec: PoolSpec,
    reuse: (key: string) => Sender | undefined = () => undefined,
    hooks: SenderHooks = {},
    nats?: NatsContext,
    spool?: DeleteSpool,
  ) {
    this.hash = HashFunctions[spec.hash];
    this.destinations = spec.servers.map((server) => {
      const reused = reuse(destinationKey(server, spec));
      if (reused !== undefined) return reused;
      if (spec.transport === "nats") {
        if (nats === undefined)
          throw new Error(`pool ${name} has transport: nats but the router has no NATS link`);
        return new NatsDestination({
          link: nats.link,
          prefix: nats.prefix,
          pool: name,
          leafId: server.name ?? `${server.host}:${server.port}`,
          timeoutMs: spec.timeoutMs,
          tko: spec.tko,
          ...hooks,
        });
      }
      const destination = new TcpDestination({
        host: server.host,
        port: server.port,
        connections: spec.connections,
        maxConnections: spec.maxConnections,
        timeoutMs: spec.timeoutMs,
        connectTimeoutMs: spec.connectTimeoutMs,
        maxInFlight: spec.maxInFlight,
        maxQueued: spec.maxQueued,
        tko: spec.tko,
        ...(spec.tls === undefined ? {} : { tls: spec.tls }),
        ...hooks,
      });
      return spool === undefined ? destination : new SpoolingSender(destination, spool);
    });
    this.ring = spec.distribution === "modula" ? new ModulaRing() : new KetamaRing();
    this.ring.build(
      spec.servers.map((server) => ({
        name: ketamaServerName(server.host, server.port, server.name),
        weight: server.weight,
      })),
    );
  }

  /** The index of the destination that owns `key` (its bytes, decoded if sent base64). */
  pick(key: Uint8Array): number {
    return this.ring.pick(this.hash(key));
  }

  /** The keys of this pool's destinations, for reuse by the next configuration. */
  destinationKeys(): Map<string, Sender> {
    const keys = new Map<string, Sender>();
    this.spec.servers.forEach((server, index) => {
      keys.set(destinationKey(server, this.spec), this.destinations[index] as Sender);
    });
    return keys;
  }

  /** Destinations not marked down. */
  get healthyCount(): number {
    let count = 0;
    for (const destination of this.destinations) if (!destination.down) count++;
    return count;
  }
}

// A destination is reused across configurations only if everything its connections were opened
// with is the same.
export function destinationKey(server: ServerSpec, spec: PoolSpec): string {
  return JSON.stringify([
    spec.transport ?? "tcp",
    server.name ?? "",
    server.host,
    server.port,
    spec.connections,
    spec.maxConnections,
    spec.timeoutMs,
    spec.connectTimeoutMs,
    spec.maxInFlight,
    spec.maxQueued,
    spec.tko,
    spec.tls ?? null, // PEM text: a reload that finds renewed certificates reconnects
  ]);
}
