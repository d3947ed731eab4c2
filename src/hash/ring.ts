// The shape every key distribution shares, like twemproxy's `<dist>_update` / `<dist>_dispatch`
// pairs: build once per membership change, then pick per key without allocating.

/** A destination on a ring. `name` is what gets hashed into points (e.g. "host:port" or a twemproxy server name). */
export interface RingNode {
  readonly name: string;
  /** A positive integer; a node's share of keys grows with it. */
  readonly weight: number;
}

/** Maps a key hash to one of the nodes it was built with. */
export interface Ring {
  /** Replaces the nodes; later picks return indices into this array. Throws RangeError on a bad node. */
  build(nodes: readonly RingNode[]): void;
  /** The index of the node that owns `hash` (an unsigned 32-bit key hash), or -1 with no nodes. */
  pick(hash: number): number;
  /** The number of nodes of the last build. */
  readonly size: number;
}

/** Throws RangeError naming the first node with an empty name or a weight that is not a positive integer. */
export function checkNodes(nodes: readonly RingNode[], maxWeight = 0xffffffff): void {
  nodes.forEach((node, index) => {
    if (typeof node.name !== "string" || node.name.length === 0) {
      throw new RangeError(`ring node ${index}: name must be a non-empty string`);
    }
    if (!Number.isInteger(node.weight) || node.weight < 1 || node.weight > maxWeight) {
      throw new RangeError(
        `ring node ${index} (${node.name}): weight must be an integer from 1 to ${maxWeight}, got ${node.weight}`,
      );
    }
  });
}
