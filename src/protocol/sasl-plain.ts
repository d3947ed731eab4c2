// SASL PLAIN (RFC 4616) against memcached's SASL password file, the one mechanism memjs and most
// memcached clients use. The file is parsed here once, for the leaf (which hands the entries to
// the native store's binary protocol) and for the router (whose binary parser checks them); the
// text protocol's authentication (-Y, text-auth.ts) reads the same format and checks passwords here.
import { createHash, timingSafeEqual } from "node:crypto";

/** user -> password, as memcached's SASL password file gives them. */
export type SaslPasswords = ReadonlyMap<string, string>;

/**
 * memcached's SASL password file (sasl_defs.c sasl_server_userdb_checkpass, MEMCACHED_SASL_PWDB):
 * one `user:password[:more fields]` line per user. The first line of a user decides (memcached
 * stops at it); a password ends at ':', CR or the end of the line; a line without ':' names no user.
 */
export function parseSaslPasswords(text: string): SaslPasswords {
  const passwords = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const user = line.slice(0, colon);
    if (passwords.has(user)) continue;
    const rest = line.slice(colon + 1);
    const stop = rest.search(/[:\r]/);
    passwords.set(user, stop < 0 ? rest : rest.slice(0, stop));
  }
  return passwords;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Whether a SASL PLAIN message (`[authzid] NUL authcid NUL passwd`, UTF-8) names a user of
 * `passwords` with its password. An authzid other than the user (acting as someone else) and
 * bytes that are not UTF-8 are refused.
 */
export function plainAuthenticates(passwords: SaslPasswords, message: Uint8Array): boolean {
  const first = message.indexOf(0);
  const second = first < 0 ? -1 : message.indexOf(0, first + 1);
  if (second < 0) return false;
  let authzid: string;
  let user: string;
  let password: string;
  try {
    authzid = utf8.decode(message.subarray(0, first));
    user = utf8.decode(message.subarray(first + 1, second));
    password = utf8.decode(message.subarray(second + 1));
  } catch {
    return false;
  }
  if (user === "" || (authzid !== "" && authzid !== user)) return false;
  return passwordMatches(passwords, user, password);
}

/** Whether `user` is in `passwords` with `password`, compared in constant time (as SHA-256 digests). */
export function passwordMatches(passwords: SaslPasswords, user: string, password: string): boolean {
  const expected = passwords.get(user);
  return expected !== undefined && timingSafeEqual(digest(expected), digest(password));
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
