// The members of a pool and where they come from: a fixed list (static-membership.ts) or etcd
// (etcd-membership.ts). A router builds a pool's servers from `current()` and rebuilds the pool
// whenever a listener is told the list changed.

/** One leaf of a pool, as discovery reports it. */
export interface Member {
  /** Unique within the pool (the leaf's id; for a static list, its "host:port"). */
  id: string;
  /** "host:port"; an IPv6 host is written in brackets ("[::1]:11211"). */
  addr: string;
  /** A positive integer: a member's share of keys grows with it. */
  weight: number;
  zone?: string;
  /** The leaf's software version, for operators; routing ignores it. */
  version?: string;
}

/** Called with the whole new member list each time it changes. */
export type MembershipListener = (members: readonly Member[]) => void;

/** Where discovery writes its few lines (an outage, a recovery, a value it ignored). */
export type DiscoveryLog = (line: string) => void;

/** A source of a pool's members. */
export interface Membership {
  /**
   * Loads the first member list. Resolves once `current()` reflects the source; a source that
   * cannot be reached keeps trying in the background (the caller may race it with a deadline).
   */
  start(): Promise<void>;
  /** Stops watching; no listener is called after it resolves. */
  stop(): Promise<void>;
  /** The members now, in the source's order (etcd: sorted by id); empty before the first load. */
  current(): readonly Member[];
  /** Registers a listener for changes; returns a function that removes it. */
  onChange(listener: MembershipListener): () => void;
}

/** Members sorted by id, so equal sets compare equal and modula pools see a stable order. */
export function sortMembers(members: Iterable<Member>): Member[] {
  return [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** True if two sorted lists hold the same members with the same fields. */
export function sameMembers(a: readonly Member[], b: readonly Member[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((member, index) => {
    const other = b[index] as Member;
    return (
      member.id === other.id &&
      member.addr === other.addr &&
      member.weight === other.weight &&
      member.zone === other.zone &&
      member.version === other.version
    );
  });
}

/** Splits "host:port" (IPv6 in brackets) into its parts; undefined if it is not one. */
export function parseAddr(addr: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(addr);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] ?? match[2]) as string, port };
}
