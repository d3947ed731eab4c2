// A membership that never changes: the servers listed in the configuration file.
import type { Member, Membership, MembershipListener } from "./membership.ts";

/** A fixed member list, in the order given (modula pools depend on it); listeners are never called. */
export class StaticMembership implements Membership {
  private readonly members: readonly Member[];

  constructor(members: Iterable<Member>) {
    this.members = [...members];
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  current(): readonly Member[] {
    return this.members;
  }

  onChange(_listener: MembershipListener): () => void {
    return () => {};
  }
}
