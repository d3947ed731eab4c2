// Groups are namespaces: the item for (group, key) is stored under the memcached key
// "<group>:<key>", so memcached clients, the Cache service and GroupCache.Get all name one item.
// A group is non-empty, without ':' (the separator), spaces or control characters; the joined key
// follows memcached's rules (1 to 250 bytes, no space or control byte).
import { GravityError, InvalidRequestError } from "../errors.ts";
import { MAX_KEY_BYTES } from "../protocol/encoder.ts";

/** Between group and key in the item key. */
export const GROUP_SEPARATOR = ":";
const SEPARATOR_BYTE = 0x3a;
const SPACE = 0x20;
const DELETE = 0x7f;
const utf8 = new TextEncoder();

/** A group that the server was not configured to serve (gRPC NOT_FOUND). */
export class UnknownGroupError extends GravityError {
  readonly group: string;

  constructor(group: string) {
    super("EUNKNOWNGROUP", `unknown group ${JSON.stringify(group)}`);
    this.name = "UnknownGroupError";
    this.group = group;
  }
}

/** The group's problem as a sentence, or undefined if it is a valid group name. */
export function groupProblem(group: string): string | undefined {
  if (group === "") return "group is empty";
  for (let i = 0; i < group.length; i++) {
    const code = group.charCodeAt(i);
    if (code === SEPARATOR_BYTE) {
      return `group ${JSON.stringify(group)} contains '${GROUP_SEPARATOR}', which separates group and key`;
    }
    if (code <= SPACE || code === DELETE) {
      return `group ${JSON.stringify(group)} has a space or control character at ${i}`;
    }
  }
  return undefined;
}

/** Decides which groups a server answers for: every valid group, or only those listed. */
export class GroupFilter {
  private readonly allowed: ReadonlySet<string> | undefined;

  /** `groups` undefined: any valid group. Throws InvalidRequestError for an invalid name in the list. */
  constructor(groups?: readonly string[]) {
    if (groups === undefined) return;
    for (const group of groups) {
      const problem = groupProblem(group);
      if (problem !== undefined) throw new InvalidRequestError(problem);
    }
    this.allowed = new Set(groups);
  }

  /** Throws InvalidRequestError for a malformed group, UnknownGroupError for one not served. */
  check(group: string): void {
    const problem = groupProblem(group);
    if (problem !== undefined) throw new InvalidRequestError(problem);
    if (this.allowed !== undefined && !this.allowed.has(group)) throw new UnknownGroupError(group);
  }

  /** The item key "<group>:<key>" after check(group) and memcached's key rules; throws as check() does. */
  itemKey(group: string, key: string | Uint8Array): Uint8Array {
    this.check(group);
    const keyBytes = typeof key === "string" ? utf8.encode(key) : key;
    if (keyBytes.length === 0) throw new InvalidRequestError("key is empty");
    for (let i = 0; i < keyBytes.length; i++) {
      const byte = keyBytes[i] as number;
      if (byte <= SPACE || byte === DELETE) {
        throw new InvalidRequestError(
          `key has a space or control byte 0x${byte.toString(16).padStart(2, "0")} at ${i}`,
        );
      }
    }
    const groupBytes = utf8.encode(group);
    const length = groupBytes.length + 1 + keyBytes.length;
    if (length > MAX_KEY_BYTES) {
      throw new InvalidRequestError(
        `group and key are ${length} bytes as "group${GROUP_SEPARATOR}key"; memcached's limit is ${MAX_KEY_BYTES}`,
      );
    }
    const item = new Uint8Array(length);
    item.set(groupBytes);
    item[groupBytes.length] = SEPARATOR_BYTE;
    item.set(keyBytes, groupBytes.length + 1);
    return item;
  }
}
