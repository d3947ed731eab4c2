// The flags of a meta command (memcached protocol.txt, "Meta Commands"), checked as memcached's
// _meta_flag_preparse checks them before it runs the command: which flags are known, which take a
// number, which may appear once. The request parser keeps one MetaFlags per connection.
import { decodeBase64, parseI32, parseU32, parseU64 } from "./request-bytes.ts";
import {
  BAD_FORMAT,
  BAD_TOKEN,
  DECODING_KEY,
  DUPLICATE_FLAG,
  INVALID_DELTA_VALUE,
  INVALID_FLAG,
  INVALID_INITIAL,
  M_TOKEN_LENGTH,
} from "./request-error-replies.ts";

/** memcached MFLAG_MAX_OPAQUE_LENGTH. */
const META_MAX_OPAQUE = 32;

/** What the last preparse() found: reset by each call. */
export class MetaFlags {
  private readonly seen = new Int32Array(128); // stamp of the command that saw each flag
  private stamp = 0;
  /** The reply for a failed pass. */
  error: Uint8Array = BAD_FORMAT;
  /** q: noreply semantics. */
  quiet = false;
  /** M: the mode byte, or 0. */
  mode = 0;
  /** F: client flags. */
  clientFlags = 0;
  /** T: exptime. */
  exptime = 0;
  /** C: the CAS to compare. */
  cas = 0n;
  /** D: the delta (default 1). */
  delta = 1n;
  /** b: the decoded key, or null. */
  key: Uint8Array | null = null;

  /**
   * memcached _meta_flag_preparse over tokens firstFlag..count-1 ([starts[i], ends[i]) in `buf`;
   * token 1 is the key): an unknown or repeated flag stops at once; a bad token records its error
   * and the pass goes on (a later error replaces the message). False with `error` set on failure.
   */
  preparse(buf: Uint8Array, starts: Int32Array, ends: Int32Array, firstFlag: number, count: number): boolean {
    const seen = this.seen;
    const stamp = ++this.stamp;
    let failed = false;
    this.error = BAD_FORMAT;
    this.quiet = false;
    this.mode = 0;
    this.clientFlags = 0;
    this.exptime = 0;
    this.cas = 0n;
    this.delta = 1n;
    this.key = null;
    for (let i = firstFlag; i < count; i++) {
      const start = starts[i] as number;
      const end = ends[i] as number;
      const flag = buf[start] as number;
      if (flag >= 127 || seen[flag] === stamp) {
        this.error = DUPLICATE_FLAG;
        return false;
      }
      seen[flag] = stamp;
      switch (flag) {
        case 0x62 /* b */:
          {
            // The key is at most 250 bytes of base64, so the binary key is at most 187 bytes.
            this.key = decodeBase64(buf, starts[1] as number, ends[1] as number);
            if (this.key === null) {
              this.error = DECODING_KEY;
              failed = true;
            }
            break;
          }
        case 0x4e /* N */:
        case 0x52 /* R */:
          if (Number.isNaN(parseI32(buf, start + 1, end))) {
            this.error = BAD_TOKEN;
            failed = true;
          }
          break;
        case 0x54 /* T */:
          {
            const seconds = parseI32(buf, start + 1, end);
            if (Number.isNaN(seconds)) {
              this.error = BAD_TOKEN;
              failed = true;
            } else {
              this.exptime = seconds;
            }
            break;
          }
        case 0x6c /* l */:
        case 0x68 /* h */:
        case 0x4f /* O */:
        case 0x50 /* P */:
        case 0x4c /* L */:
        case 0x6b /* k */:
        case 0x73 /* s */:
        case 0x74 /* t */:
        case 0x63 /* c */:
        case 0x66 /* f */:
        case 0x76 /* v */:
        case 0x75 /* u */:
        case 0x49 /* I */:
        case 0x78 /* x: md, memcached >= 1.6.21 */:
          break;
        case 0x71 /* q */:
          this.quiet = true;
          break;
        case 0x46 /* F */:
          {
            const flags = parseU32(buf, start + 1, end);
            if (flags < 0) {
              failed = true; // the message so far stands
            } else {
              this.clientFlags = flags;
            }
            break;
          }
        case 0x43 /* C */:
        case 0x45 /* E: memcached >= 1.6.21 */:
          {
            const value = parseU64(buf, start + 1, end);
            if (value === undefined) {
              this.error = BAD_TOKEN;
              failed = true;
            } else if (flag === 0x43) {
              this.cas = value;
            }
            break;
          }
        case 0x4d /* M */:
          if (end - start !== 2) {
            this.error = M_TOKEN_LENGTH;
            failed = true;
          } else {
            this.mode = buf[start + 1] as number;
          }
          break;
        case 0x4a /* J */:
          if (parseU64(buf, start + 1, end) === undefined) {
            this.error = INVALID_INITIAL;
            failed = true;
          }
          break;
        case 0x44 /* D */:
          {
            const delta = parseU64(buf, start + 1, end);
            if (delta === undefined) {
              this.error = INVALID_DELTA_VALUE;
              failed = true;
            } else {
              this.delta = delta;
            }
            break;
          }
        default:
          this.error = INVALID_FLAG;
          return false;
      }
    }
    return !failed;
  }
}

/** Whether an O(paque) token among tokens firstFlag..count-1 is longer than memcached allows. */
export function opaqueTooLong(
  buf: Uint8Array,
  starts: Int32Array,
  ends: Int32Array,
  firstFlag: number,
  count: number,
): boolean {
  for (let i = firstFlag; i < count; i++) {
    const start = starts[i] as number;
    if (buf[start] === 0x4f /* O */ && (ends[i] as number) - start > META_MAX_OPAQUE) return true;
  }
  return false;
}
