// Ketama consistent hashing with the points twemproxy computes (nc_ketama.c), so a pool maps each
// key to the server twemproxy (and libmemcached's weighted ketama) would pick.
//
//   build: node i ──> floor(weight_i / total * 40 * n) digests ──> md5("<name>-<j>") ──> 4 points each
//          all points, sorted by value ──> values: Uint32Array, owners: Uint32Array (node index per point)
//   pick:  key hash ──> first point >= hash (binary search; past the last point wraps to the first) ──> owner
//
// libmemcached, weighted (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, or any server weight > 1): the same
// points. It names a server "host" when the port is 11211 and "host:port" otherwise (twemproxy
// does the same for servers without a name; see ketamaServerName), computes the count with the
// same float arithmetic (`floor` of a float instead of `floorf`, and `0.0000000001F`: the same
// numbers), and orders equal point values by server index where twemproxy's qsort leaves them in
// no defined order; this ring orders them by node index too. (twemproxy also sorts its servers by
// name when it loads the config; under ketama that changes nothing but those ties.)
// libmemcached, unweighted (MEMCACHED_BEHAVIOR_KETAMA with every weight <= 1): differs and is not
// implemented here: 100 points per server, one per name, each the configured key hash of "<name>-<j>".

import { md5Words } from "./hash-functions.ts";
import { checkNodes, type Ring, type RingNode } from "./ring.ts";

/** Points per server when all weights are equal (KETAMA_POINTS_PER_SERVER). */
export const KETAMA_POINTS_PER_SERVER = 160;
/** Points taken from each md5 digest (its four little-endian words). */
const POINTS_PER_DIGEST = 4;
/** The port libmemcached and twemproxy leave out of a server's ketama name. */
export const KETAMA_DEFAULT_PORT = 11211;

// Points are sorted as value * 2^20 + owner in a Float64Array (exact below 2^52): one numeric sort
// orders by value, then by node index.
const OWNER_BITS = 20;
const OWNER_SCALE = 2 ** OWNER_BITS;
/** The most nodes a KetamaRing takes. */
export const KETAMA_MAX_NODES = OWNER_SCALE;

/**
 * The name twemproxy hashes into a server's points: the `name` given after the weight in its
 * config line if any, else "host" when the port is 11211 and "host:port" otherwise (kept from
 * libmemcached for compatibility). Keep names under 80 bytes: twemproxy formats "<name>-<j>" into
 * an 86-byte buffer (KETAMA_MAX_HOSTLEN) and hashes the untruncated length, reading past the buffer.
 */
export function ketamaServerName(host: string, port: number, name?: string): string {
  if (name !== undefined) return name;
  return port === KETAMA_DEFAULT_PORT ? host : `${host}:${port}`;
}

/**
 * Points per node for these weights, as twemproxy computes them in single-precision float:
 * `floorf((float)(pct * 160 / 4 * (float)n + 0.0000000001)) * 4` with `pct = (float)w / (float)total`.
 * Float rounding makes some counts 4 lower than exact arithmetic would (weights 1/6/6/6/6 give
 * 28/188/188/188/188, not 32/192/...); the epsilon is too small to change a float. A weight
 * below 1/(40 n) of the total gets no points, so no keys.
 */
export function ketamaPointCounts(weights: readonly number[]): number[] {
  const f = Math.fround;
  const total = f(weights.reduce((sum, weight) => sum + weight, 0));
  const n = f(weights.length);
  return weights.map((weight) => {
    const pct = f(f(weight) / total);
    const perDigest = f(f(f(f(pct * KETAMA_POINTS_PER_SERVER) / POINTS_PER_DIGEST) * n) + 0.0000000001);
    return Math.floor(perDigest) * POINTS_PER_DIGEST;
  });
}

/** A ketama continuum compatible with twemproxy's `distribution: ketama`. */
export class KetamaRing implements Ring {
  private values = new Uint32Array(0); // point values, ascending
  private owners = new Uint32Array(0); // owners[i]: index of the node that owns values[i]
  private nodeCount = 0;

  constructor(nodes: readonly RingNode[] = []) {
    this.build(nodes);
  }

  get size(): number {
    return this.nodeCount;
  }

  build(nodes: readonly RingNode[]): void {
    checkNodes(nodes);
    if (nodes.length > KETAMA_MAX_NODES) {
      throw new RangeError(`ketama ring: at most ${KETAMA_MAX_NODES} nodes, got ${nodes.length}`);
    }
    const counts = ketamaPointCounts(nodes.map((node) => node.weight));
    const packed = new Float64Array(counts.reduce((sum, count) => sum + count, 0));
    const encoder = new TextEncoder();
    const words = new Uint32Array(POINTS_PER_DIGEST);
    let next = 0;
    nodes.forEach((node, owner) => {
      const name = encoder.encode(node.name);
      const pointName = new Uint8Array(name.length + 12); // "<name>-<j>", j < 2^32
      pointName.set(name);
      pointName[name.length] = 0x2d; // '-'
      const digests = (counts[owner] as number) / POINTS_PER_DIGEST;
      for (let j = 0; j < digests; j++) {
        const { written } = encoder.encodeInto(String(j), pointName.subarray(name.length + 1));
        md5Words(pointName.subarray(0, name.length + 1 + written), words);
        for (const value of words) packed[next++] = value * OWNER_SCALE + owner;
      }
    });
    packed.sort();
    this.values = new Uint32Array(packed.length);
    this.owners = new Uint32Array(packed.length);
    for (let i = 0; i < packed.length; i++) {
      const point = packed[i] as number;
      const value = Math.floor(point / OWNER_SCALE);
      this.values[i] = value;
      this.owners[i] = point - value * OWNER_SCALE;
    }
    this.nodeCount = nodes.length;
  }

  pick(hash: number): number {
    const values = this.values;
    const count = values.length;
    if (count === 0) return -1;
    const target = hash >>> 0; // an int32 from `| 0` arithmetic means the same uint32
    // Lower bound: the first point >= target, as ketama_dispatch does.
    let low = 0;
    let high = count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((values[middle] as number) < target) low = middle + 1;
      else high = middle;
    }
    return this.owners[low === count ? 0 : low] as number;
  }

  /** The continuum, for tests and diagnostics: point values ascending and each point's node index. Do not modify. */
  continuum(): { readonly values: Uint32Array; readonly owners: Uint32Array } {
    return { values: this.values, owners: this.owners };
  }
}
