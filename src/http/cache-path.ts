// The cache resource of the HTTP API: `/v1/cache/{group}/{key}` names the item `{group}:{key}`,
// both segments percent-decoded to bytes (so any key memcached accepts can be named, UTF-8 or not),
// and its TTL from the X-Gravity-TTL header or the `ttl` query parameter.
import { MAX_RELATIVE_EXPTIME_SECONDS, validateKey } from "../protocol/encoder.ts";

/** The path prefix of the cache resource. */
export const CACHE_PREFIX = "/v1/cache/";

/** memcached's longest relative exptime (30 days); longer values would be read as a Unix time. */

/** A request the API refuses before it reaches the cache: the status and the reason. */
export interface Refusal {
  readonly status: number;
  readonly error: string;
}

/** An item named by a cache path. */
export interface CacheItem {
  readonly group: string;
  /** `{group}:{key}` as bytes: the key the cache stores the item under. */
  readonly itemKey: Uint8Array;
}

const COLON = 0x3a;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Whether a parse result is a refusal. */
export function isRefusal<T extends object>(value: T | Refusal): value is Refusal {
  return "status" in value;
}

/**
 * The item a path after CACHE_PREFIX names (`{group}/{key}`, still percent-encoded), or a refusal:
 * 400 for a malformed group or key (with memcached's key rule as the reason), 404 for a group
 * not in `groups` (when given).
 */
export function parseCachePath(rest: string, groups?: ReadonlySet<string>): CacheItem | Refusal {
  const slash = rest.indexOf("/");
  if (slash < 0) return { status: 400, error: "expected /v1/cache/{group}/{key}" };
  const group = percentDecode(rest.slice(0, slash));
  const key = percentDecode(rest.slice(slash + 1));
  if (group === null || key === null) return { status: 400, error: "bad percent-encoding in the path" };
  if (group.length === 0) return { status: 400, error: "group is empty" };
  if (group.includes(COLON)) return { status: 400, error: "group must not contain ':'" };
  if (key.length === 0) return { status: 400, error: "key is empty" };
  let groupName: string;
  try {
    groupName = strictUtf8.decode(group);
  } catch {
    return { status: 400, error: "group is not UTF-8" };
  }
  const itemKey = new Uint8Array(group.length + 1 + key.length);
  itemKey.set(group);
  itemKey[group.length] = COLON;
  itemKey.set(key, group.length + 1);
  try {
    validateKey(itemKey);
  } catch (error) {
    return { status: 400, error: `item key {group}:{key}: ${(error as Error).message}` };
  }
  if (groups !== undefined && !groups.has(groupName)) return { status: 404, error: "unknown group" };
  return { group: groupName, itemKey };
}

/** Bytes of a percent-encoded path segment (RFC 3986 2.1), or null for a bad escape. */
export function percentDecode(segment: string): Uint8Array | null {
  // A URL's pathname is ASCII (the URL parser percent-encodes the rest), so chars are bytes.
  const out = new Uint8Array(segment.length);
  let length = 0;
  for (let i = 0; i < segment.length; i++) {
    const code = segment.charCodeAt(i);
    if (code > 0x7f) return null;
    if (code !== 0x25) {
      out[length++] = code;
      continue;
    }
    const high = hexValue(segment.charCodeAt(i + 1));
    const low = hexValue(segment.charCodeAt(i + 2));
    if (high < 0 || low < 0) return null;
    out[length++] = high * 16 + low;
    i += 2;
  }
  return out.subarray(0, length);
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

/**
 * The TTL of a PUT in seconds (0, the default, never expires): from the header or the query
 * parameter (they must agree when both are given), an integer 0..MAX_RELATIVE_EXPTIME_SECONDS.
 */
export function parseTtl(header: string | null, query: string | null): number | Refusal {
  if (header !== null && query !== null && header.trim() !== query.trim()) {
    return { status: 400, error: "X-Gravity-TTL and ?ttl= disagree" };
  }
  const text = (header ?? query)?.trim();
  if (text === undefined) return 0;
  if (!/^[0-9]{1,10}$/.test(text) || Number(text) > MAX_RELATIVE_EXPTIME_SECONDS) {
    return {
      status: 400,
      error: `ttl must be an integer number of seconds in 0..${MAX_RELATIVE_EXPTIME_SECONDS}`,
    };
  }
  return Number(text);
}
