// Where a leaf's registration lives in etcd and what it holds:
//
//   {prefix}/pools/{pool}/{leafId}  ->  {"addr":"host:port","weight":1,"zone":"a","version":"0.1.0"}
//
// written under the leaf's lease, so it disappears when the leaf stops renewing it.
import { type Member, parseAddr } from "./membership.ts";

/** The prefix every member key of `pool` starts with (ends with "/"). */
export function poolKeyPrefix(prefix: string, pool: string): string {
  return `${prefix.replace(/\/+$/, "")}/pools/${pool}/`;
}

/** The key a leaf registers under. */
export function memberKey(prefix: string, pool: string, leafId: string): string {
  return `${poolKeyPrefix(prefix, pool)}${leafId}`;
}

/** A pool name or leaf id: one key segment, no "/" or whitespace. */
export function isKeySegment(value: string): boolean {
  return /^[^\s/]+$/.test(value);
}

/** The JSON value a leaf registers. */
export function encodeMember(member: Omit<Member, "id">): string {
  const record: Record<string, string | number> = { addr: member.addr, weight: member.weight };
  if (member.zone !== undefined) record.zone = member.zone;
  if (member.version !== undefined) record.version = member.version;
  return JSON.stringify(record);
}

/**
 * Parses a registration value into a member with id `id`, or returns the reason it is not one.
 * `weight` defaults to 1; `zone` and `version` are optional strings.
 */
export function decodeMember(id: string, value: string): Member | string {
  if (!isKeySegment(id)) return `leaf id ${JSON.stringify(id)} is not one key segment`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return "value is not JSON";
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    return "value is not a JSON object";
  const record = parsed as Record<string, unknown>;
  if (typeof record.addr !== "string" || parseAddr(record.addr) === undefined)
    return 'addr: expected "host:port"';
  const weight = record.weight ?? 1;
  if (typeof weight !== "number" || !Number.isInteger(weight) || weight < 1)
    return "weight: expected a positive integer";
  if (record.zone !== undefined && typeof record.zone !== "string") return "zone: expected a string";
  if (record.version !== undefined && typeof record.version !== "string") return "version: expected a string";
  const member: Member = { id, addr: record.addr, weight };
  if (record.zone !== undefined) member.zone = record.zone;
  if (record.version !== undefined) member.version = record.version;
  return member;
}
