// memcached's text-protocol authentication (`-Y`/`--auth-file`, memcached 1.6): a connection's first
// command must be a `set` whose data is "<user> <password>"; memcached answers STORED (even with
// noreply) and the connection is authenticated; the item is not stored. Anything else first is
// answered and the connection closes:
//
//   set <key> <flags> <exptime> <bytes> [noreply]\r\n<user> <password>\r\n
//     credentials match       -> "STORED"                                      (authenticated)
//     no space in the data    -> "CLIENT_ERROR bad authentication token format" (closed)
//     no match, a malformed set, any other command
//                             -> "CLIENT_ERROR unauthenticated"                 (closed)
//
// What memcached 1.6.18 answers, as tried against it: spaces around the password are ignored.
// The gate sees only the bytes before authentication; after it the connection's parser takes the
// rest of the read and everything after, at no cost per request.
import { passwordMatches, type SaslPasswords } from "./sasl-plain.ts";

/** Checks a user's password (memcached's auth file: `user:password` lines). */
export type CredentialCheck = (user: string, password: string) => boolean;

/** A CredentialCheck over memcached's password file (sasl-plain.ts parses it). */
export function passwordCheck(passwords: SaslPasswords): CredentialCheck {
  return (user, password) => passwordMatches(passwords, user, password);
}

/** What the bytes fed so far mean. */
export type AuthStep =
  | { kind: "more" }
  | { kind: "authenticated"; reply: Uint8Array; rest: Uint8Array }
  | { kind: "refused"; reply: Uint8Array };

const encoder = new TextEncoder();
const STORED = encoder.encode("STORED\r\n");
const UNAUTHENTICATED = encoder.encode("CLIENT_ERROR unauthenticated\r\n");
const BAD_FORMAT = encoder.encode("CLIENT_ERROR bad authentication token format\r\n");
/** memcached's 2048-byte read buffer check on a command line. */
const MAX_LINE_BYTES = 2048;
/** Credentials longer than this are not credentials. */
const MAX_TOKEN_BYTES = 4096;
const LF = 0x0a;

/** The authentication of one connection, fed what it reads until it is authenticated or refused. */
export class TextAuthGate {
  private buffered = new Uint8Array(0);

  constructor(private readonly check: CredentialCheck) {}

  feed(chunk: Uint8Array): AuthStep {
    const joined = new Uint8Array(this.buffered.length + chunk.length);
    joined.set(this.buffered);
    joined.set(chunk, this.buffered.length);
    this.buffered = joined;
    const lineEnd = joined.indexOf(LF);
    if (lineEnd === -1) {
      return joined.length > MAX_LINE_BYTES ? refused(UNAUTHENTICATED) : { kind: "more" };
    }
    const line = Buffer.from(joined.buffer, joined.byteOffset, lineEnd).toString("latin1").replace(/\r$/, "");
    const tokens = line.split(" ").filter((token) => token !== "");
    const length = tokens[4] === undefined ? Number.NaN : Number(tokens[4]);
    if (
      tokens[0] !== "set" ||
      tokens.length < 5 ||
      tokens.length > 6 ||
      !/^\d+$/.test(tokens[4] ?? "") ||
      length > MAX_TOKEN_BYTES
    ) {
      return refused(UNAUTHENTICATED);
    }
    const dataStart = lineEnd + 1;
    const dataEnd = dataStart + length;
    if (joined.length < dataEnd + 2) return { kind: "more" };
    if (joined[dataEnd] !== 0x0d || joined[dataEnd + 1] !== LF) return refused(UNAUTHENTICATED);
    const token = Buffer.from(joined.buffer, joined.byteOffset + dataStart, length).toString("utf8");
    const space = token.indexOf(" ");
    if (space === -1) return refused(BAD_FORMAT);
    const user = token.slice(0, space);
    const password = token.slice(space + 1).trim();
    if (!this.check(user, password)) return refused(UNAUTHENTICATED);
    const rest = joined.slice(dataEnd + 2);
    this.buffered = new Uint8Array(0);
    return { kind: "authenticated", reply: STORED, rest };
  }
}

function refused(reply: Uint8Array): AuthStep {
  return { kind: "refused", reply };
}
