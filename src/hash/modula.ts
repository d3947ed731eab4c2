// Modula distribution as twemproxy computes it (nc_modula.c): each node fills `weight` consecutive
// slots and a key goes to slot `hash % total weight`. The slots follow twemproxy's server order,
// which is not the config order: conf_validate_server sorts a pool's servers by name (shorter
// names first, then bytewise) to reject duplicates, and the pool keeps that order. Adding or removing a node
// remaps almost every key; use it only to match an existing twemproxy `distribution: modula` pool.
// libmemcached's MEMCACHED_DISTRIBUTION_MODULA differs: `hash % server count`, weights ignored
// (the same as this ring when every weight is 1).

import { checkNodes, type Ring, type RingNode } from "./ring.ts";

/** The largest total weight a ModulaRing takes (one Uint32Array slot per unit of weight). */
export const MODULA_MAX_TOTAL_WEIGHT = 1 << 24;

/**
 * Node indices in the order twemproxy keeps a pool's servers: by name, shorter first, then by
 * UTF-8 bytes (string_compare). Equal names keep their order (twemproxy refuses them).
 */
export function twemproxyServerOrder(nodes: readonly RingNode[]): number[] {
  const encoder = new TextEncoder();
  const names = nodes.map((node) => encoder.encode(node.name));
  return nodes
    .map((_, index) => index)
    .sort((a, b) => {
      const left = names[a] as Uint8Array;
      const right = names[b] as Uint8Array;
      if (left.length !== right.length) return left.length - right.length;
      for (let i = 0; i < left.length; i++) {
        if (left[i] !== right[i]) return (left[i] as number) - (right[i] as number);
      }
      return a - b;
    });
}

/** twemproxy's `distribution: modula`. */
export class ModulaRing implements Ring {
  private slots = new Uint32Array(0); // slots[s]: index of the node owning slot s
  private nodeCount = 0;

  constructor(nodes: readonly RingNode[] = []) {
    this.build(nodes);
  }

  get size(): number {
    return this.nodeCount;
  }

  build(nodes: readonly RingNode[]): void {
    checkNodes(nodes, MODULA_MAX_TOTAL_WEIGHT);
    const total = nodes.reduce((sum, node) => sum + node.weight, 0);
    if (total > MODULA_MAX_TOTAL_WEIGHT) {
      throw new RangeError(`modula ring: total weight ${total} is over ${MODULA_MAX_TOTAL_WEIGHT}`);
    }
    const slots = new Uint32Array(total);
    let next = 0;
    for (const index of twemproxyServerOrder(nodes)) {
      const weight = (nodes[index] as RingNode).weight;
      slots.fill(index, next, next + weight);
      next += weight;
    }
    this.slots = slots;
    this.nodeCount = nodes.length;
  }

  pick(hash: number): number {
    const count = this.slots.length;
    return count === 0 ? -1 : (this.slots[(hash >>> 0) % count] as number);
  }
}
