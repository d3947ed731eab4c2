// The NATS subjects and headers Gravity uses: the documented interface between routers, leaves and
// NATS clients. Every subject starts with a configurable prefix (default "gravity"), so several
// deployments can share one NATS server.
//
//   {prefix}.leaf.{pool}.{leafId}    one leaf: a memcached request in, its reply bytes back
//   {prefix}.pool.{pool}.all         every replica of a pool (replicated writes: one publish)
//   {prefix}.ingress.{pool}          ingress, key in the `key` header (any bytes)
//   {prefix}.ingress.{pool}.{key}    ingress, key in the subject (no spaces; dots are fine)
//   {prefix}.invalidate              (by convention) the invalidation bus's deletes
//
// A NATS subject is dot-separated tokens of printable characters without spaces, and `*` and `>`
// are wildcards. Pool names and leaf ids are user data ("127.0.0.1:11211" has dots), so each is
// written as one token by subjectToken(): bytes outside [A-Za-z0-9_:-] become %XX.

/** Headers of the NATS interface (NATS header names are case-insensitive; we send these). */
export const NatsHeader = {
  /** Ingress request: get | set | del. */
  Op: "op",
  /**
   * Ingress request: the key as UTF-8, when the subject does not carry it. NATS trims header
   * values, so a key with leading or trailing whitespace (or bytes that are not UTF-8) goes in
   * `key-b64` instead.
   */
  Key: "key",
  /** Ingress request: the key's bytes in base64 (any key). */
  KeyBase64: "key-b64",
  /** Ingress set: memcached exptime in seconds (0 or absent: never expires). */
  Ttl: "ttl",
  /** Ingress set: client flags (unsigned 32-bit); ingress get hit: the item's flags. */
  Flags: "flags",
  /** Ingress reply: hit | miss | stored | not_stored | deleted | not_found | error. */
  Status: "status",
  /** Ingress reply with status error: what went wrong. */
  Error: "error",
  /**
   * Leaf reply to a pool-wide request (and to every piece of a reply sent in pieces): the id of
   * the leaf that answered (publishToAll tells replicas apart by it).
   */
  Leaf: "leaf",
  /**
   * Leaf reply: present on every piece of a reply but the last, when the replies to a batch are
   * larger than the server's max_payload and travel in several messages to the same reply subject.
   */
  More: "more",
  /** Invalidation bus: the cluster that published the delete (its own bus skips it). */
  Cluster: "cluster",
} as const;

/** Values of the ingress reply's `status` header. */
export const IngressStatus = {
  Hit: "hit",
  Miss: "miss",
  Stored: "stored",
  NotStored: "not_stored",
  Deleted: "deleted",
  NotFound: "not_found",
  Error: "error",
} as const;
export type IngressStatus = (typeof IngressStatus)[keyof typeof IngressStatus];

const utf8 = new TextEncoder();

function isPlain(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x3a) || // 0-9 :
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    byte === 0x5f || // _
    byte === 0x2d // -
  );
}

/** `name` as one subject token: its UTF-8 bytes, those outside [A-Za-z0-9_:-] as %XX. Never empty. */
export function subjectToken(name: string): string {
  if (name.length === 0) throw new RangeError("a subject token cannot be empty");
  let token = "";
  for (const byte of utf8.encode(name)) {
    token += isPlain(byte)
      ? String.fromCharCode(byte)
      : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return token;
}

/** Throws unless `prefix` is a subject without wildcards, spaces or empty tokens ("gravity", "a.b"). */
export function checkPrefix(prefix: string): string {
  const tokens = prefix.split(".");
  for (const token of tokens) {
    if (token.length === 0 || token === "*" || token === ">" || /\s/.test(token)) {
      throw new RangeError(
        `NATS subject prefix ${JSON.stringify(prefix)} must be dot-separated tokens without spaces or wildcards`,
      );
    }
  }
  return prefix;
}

/** One leaf's subject: `{prefix}.leaf.{pool}.{leafId}`. */
export function leafSubject(prefix: string, pool: string, leafId: string): string {
  return `${checkPrefix(prefix)}.leaf.${subjectToken(pool)}.${subjectToken(leafId)}`;
}

/** Every replica of a pool: `{prefix}.pool.{pool}.all`. */
export function poolSubject(prefix: string, pool: string): string {
  return `${checkPrefix(prefix)}.pool.${subjectToken(pool)}.all`;
}

/** The ingress subject of a pool, key in the `key` header: `{prefix}.ingress.{pool}`. */
export function ingressSubject(prefix: string, pool: string): string {
  return `${checkPrefix(prefix)}.ingress.${subjectToken(pool)}`;
}

/**
 * The ingress subject with the key in it, `{prefix}.ingress.{pool}.{key}`, or undefined for a key
 * a subject cannot carry (spaces or control characters, an empty token such as "a..b", a token
 * that is a wildcard): such keys go in the `key` header instead.
 */
export function ingressKeySubject(prefix: string, pool: string, key: string): string | undefined {
  if (!isSubjectKey(key)) return undefined;
  return `${ingressSubject(prefix, pool)}.${key}`;
}

/** Whether `key` survives as the tail of a subject (see ingressKeySubject). */
export function isSubjectKey(key: string): boolean {
  if (key.length === 0) return false;
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i);
    if (code <= 0x20 || code === 0x7f) return false;
  }
  for (const token of key.split(".")) {
    if (token.length === 0 || token === "*" || token === ">") return false;
  }
  return true;
}

/** The pool name back from its subject token (the inverse of subjectToken). */
export function tokenName(token: string): string {
  if (!token.includes("%")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "%" && /^[0-9A-F]{2}$/.test(token.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
