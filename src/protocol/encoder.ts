// Requests of the memcached text and meta protocol, encoded to bytes (memcached protocol.txt).
// Every argument is checked before anything is written, so a request that encodes is one the
// server parses as one command with one reply (unless it says noreply, or a meta q flag):
// a bad key sent to memcached would get CLIENT_ERROR and then its data block read as a command.
//
// Each function returns a new Uint8Array holding exactly one request, CRLFs included. Headers are
// built in a reused scratch buffer; keys and values are written as bytes (strings as UTF-8).
import { InvalidRequestError } from "../errors.ts";

/** A key as bytes, or a string sent as UTF-8. */
export type Key = string | Uint8Array;
/** A value as bytes, or a string sent as UTF-8. */
export type Value = string | Uint8Array;

/** memcached's KEY_MAX_LENGTH. */
export const MAX_KEY_BYTES = 250;
/** memcached's largest relative exptime (30 days); a larger one is a Unix time. */
export const MAX_RELATIVE_EXPTIME_SECONDS = 60 * 60 * 24 * 30;
const MAX_UINT32 = 0xffff_ffff;
const MAX_UINT64 = 0xffff_ffff_ffff_ffffn;
const MIN_INT32 = -0x8000_0000;
const MAX_INT32 = 0x7fff_ffff;

export type StorageCommand = "set" | "add" | "replace" | "append" | "prepend";
export type RetrievalCommand = "get" | "gets";
export type TouchRetrievalCommand = "gat" | "gats";
export type ArithmeticCommand = "incr" | "decr";

export interface StoreOptions {
  /** Client flags stored with the item: an unsigned 32-bit integer (default 0). */
  flags?: number;
  /**
   * memcached's exptime (default 0, never): seconds from now up to 30 days (2592000), a Unix time
   * above that, negative to expire at once. A signed 32-bit integer.
   */
  exptime?: number;
  /** Ask the server not to reply. Errors are still answered, so a FIFO of replies loses step. */
  noreply?: boolean;
}

export interface NoreplyOption {
  noreply?: boolean;
}

const utf8 = new TextEncoder();
const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;

// The scratch buffer headers are built in; grows when a long multi-get needs it. Single-threaded
// use only: each encode function finishes with it before returning.
let scratch = new Uint8Array(4096);
let at = 0;

function reserve(bytes: number): void {
  if (at + bytes <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < at + bytes) size *= 2;
  const grown = new Uint8Array(size);
  grown.set(scratch.subarray(0, at));
  scratch = grown;
}

// Writes ASCII text (command names, numbers, meta flags already checked to be ASCII).
function ascii(text: string): void {
  reserve(text.length);
  for (let i = 0; i < text.length; i++) scratch[at++] = text.charCodeAt(i);
}

function space(): void {
  reserve(1);
  scratch[at++] = SPACE;
}

function crlf(): void {
  reserve(2);
  scratch[at++] = CR;
  scratch[at++] = LF;
}

function bytes(data: Uint8Array): void {
  reserve(data.length);
  scratch.set(data, at);
  at += data.length;
}

/** Throws InvalidRequestError unless `key` is 1..250 bytes with no space or control byte (memcached's rules). */
export function validateKey(key: Uint8Array): void {
  if (key.length === 0) throw new InvalidRequestError("key is empty");
  if (key.length > MAX_KEY_BYTES) {
    throw new InvalidRequestError(`key is ${key.length} bytes; the limit is ${MAX_KEY_BYTES}`);
  }
  for (let i = 0; i < key.length; i++) {
    const byte = key[i] as number;
    if (byte <= SPACE || byte === 0x7f) {
      throw new InvalidRequestError(
        `key has a space or control byte 0x${byte.toString(16).padStart(2, "0")} at ${i}`,
      );
    }
  }
}

// Writes a checked key at `at`; strings are encoded as UTF-8 straight into the scratch buffer.
function key(value: Key): void {
  if (typeof value !== "string") {
    validateKey(value);
    bytes(value);
    return;
  }
  // Each UTF-16 unit is at least one UTF-8 byte, at most three.
  if (value.length > MAX_KEY_BYTES) {
    throw new InvalidRequestError(`key is at least ${value.length} bytes; the limit is ${MAX_KEY_BYTES}`);
  }
  reserve(value.length * 3);
  const { written } = utf8.encodeInto(value, scratch.subarray(at));
  validateKey(scratch.subarray(at, at + written));
  at += written;
}

/** `key` as bytes after the checks of validateKey (strings encoded as UTF-8). */
export function encodeKey(value: Key): Uint8Array {
  at = 0;
  key(value);
  return scratch.slice(0, at);
}

function valueBytes(value: Value): Uint8Array {
  if (typeof value === "string") return utf8.encode(value);
  if (value instanceof Uint8Array) return value;
  throw new InvalidRequestError("value must be a string or a Uint8Array");
}

function uint32(name: string, value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > MAX_UINT32) {
    throw new InvalidRequestError(`${name} must be an integer in 0..${MAX_UINT32}, got ${value}`);
  }
  return String(value);
}

function int32(name: string, value: number): string {
  if (!Number.isInteger(value) || value < MIN_INT32 || value > MAX_INT32) {
    throw new InvalidRequestError(`${name} must be an integer in ${MIN_INT32}..${MAX_INT32}, got ${value}`);
  }
  return String(value);
}

function uint64(name: string, value: bigint | number): string {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidRequestError(`${name} must be a non-negative safe integer or a bigint, got ${value}`);
    }
    return String(value);
  }
  if (typeof value !== "bigint" || value < 0n || value > MAX_UINT64) {
    throw new InvalidRequestError(`${name} must be in 0..${MAX_UINT64}, got ${String(value)}`);
  }
  return value.toString();
}

function noreply(options: NoreplyOption | undefined): void {
  if (options?.noreply === true) ascii(" noreply");
}

// The request so far, plus `data` and CRLF when given (a storage command's data block).
function finish(data?: Uint8Array): Uint8Array {
  if (data === undefined) return scratch.slice(0, at);
  const out = new Uint8Array(at + data.length + 2);
  out.set(scratch.subarray(0, at));
  out.set(data, at);
  out[out.length - 2] = CR;
  out[out.length - 1] = LF;
  return out;
}

function keys(list: readonly Key[]): void {
  if (list.length === 0) throw new InvalidRequestError("a retrieval needs at least one key");
  for (const item of list) {
    space();
    key(item);
  }
}

/** `get|gets <key>*`: replies Expect.Values. */
export function encodeGet(keyList: readonly Key[], command: RetrievalCommand = "get"): Uint8Array {
  at = 0;
  ascii(command);
  keys(keyList);
  crlf();
  return finish();
}

/** `gat|gats <exptime> <key>*`: get and touch; replies Expect.Values. */
export function encodeGat(
  exptime: number,
  keyList: readonly Key[],
  command: TouchRetrievalCommand = "gat",
): Uint8Array {
  at = 0;
  const time = int32("exptime", exptime);
  ascii(command);
  space();
  ascii(time);
  keys(keyList);
  crlf();
  return finish();
}

function storageHeader(command: string, itemKey: Key, data: Uint8Array, options: StoreOptions | undefined) {
  const flags = uint32("flags", options?.flags ?? 0);
  const exptime = int32("exptime", options?.exptime ?? 0);
  ascii(command);
  space();
  key(itemKey);
  ascii(` ${flags} ${exptime} ${data.length}`);
}

/** `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]` and the data; replies Expect.Line. */
export function encodeStore(
  command: StorageCommand,
  itemKey: Key,
  value: Value,
  options?: StoreOptions,
): Uint8Array {
  at = 0;
  const data = valueBytes(value);
  storageHeader(command, itemKey, data, options);
  noreply(options);
  crlf();
  return finish(data);
}

/** `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]` and the data; replies Expect.Line. */
export function encodeCas(itemKey: Key, value: Value, cas: bigint, options?: StoreOptions): Uint8Array {
  at = 0;
  const data = valueBytes(value);
  const unique = uint64("cas", cas);
  storageHeader("cas", itemKey, data, options);
  space();
  ascii(unique);
  noreply(options);
  crlf();
  return finish(data);
}

/** `delete <key> [noreply]`: replies Expect.Line. */
export function encodeDelete(itemKey: Key, options?: NoreplyOption): Uint8Array {
  at = 0;
  ascii("delete ");
  key(itemKey);
  noreply(options);
  crlf();
  return finish();
}

/** `touch <key> <exptime> [noreply]`: replies Expect.Line. */
export function encodeTouch(itemKey: Key, exptime: number, options?: NoreplyOption): Uint8Array {
  at = 0;
  const time = int32("exptime", exptime);
  ascii("touch ");
  key(itemKey);
  space();
  ascii(time);
  noreply(options);
  crlf();
  return finish();
}

/** `incr|decr <key> <delta> [noreply]`, delta an unsigned 64-bit integer: replies Expect.Line. */
export function encodeArithmetic(
  command: ArithmeticCommand,
  itemKey: Key,
  delta: bigint | number,
  options?: NoreplyOption,
): Uint8Array {
  at = 0;
  const amount = uint64("delta", delta);
  ascii(command);
  space();
  key(itemKey);
  space();
  ascii(amount);
  noreply(options);
  crlf();
  return finish();
}

/** `version`: replies Expect.Line. */
export function encodeVersion(): Uint8Array {
  at = 0;
  ascii("version\r\n");
  return finish();
}

/** `flush_all [delay] [noreply]`: replies Expect.Line. */
export function encodeFlushAll(options?: { delaySeconds?: number; noreply?: boolean }): Uint8Array {
  at = 0;
  const delay = options?.delaySeconds === undefined ? undefined : int32("delaySeconds", options.delaySeconds);
  ascii("flush_all");
  if (delay !== undefined) ascii(` ${delay}`);
  noreply(options);
  crlf();
  return finish();
}

/** `stats [group]` (e.g. "settings", "slabs"): replies Expect.Stats. */
export function encodeStats(group?: string): Uint8Array {
  at = 0;
  if (group !== undefined) checkToken("stats group", group);
  ascii(group === undefined ? "stats" : `stats ${group}`);
  crlf();
  return finish();
}

// A meta flag or stats group: printable ASCII without spaces.
function checkToken(name: string, token: string): void {
  if (token.length === 0) throw new InvalidRequestError(`${name} is empty`);
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    if (code <= SPACE || code >= 0x7f) {
      throw new InvalidRequestError(
        `${name} ${JSON.stringify(token)} has a space, control or non-ASCII character`,
      );
    }
  }
}

function metaFlags(flags: readonly string[]): void {
  for (const flag of flags) checkToken("meta flag", flag);
  for (const flag of flags) {
    space();
    ascii(flag);
  }
}

/** `mg <key> <flag>*`, flags as written ("v", "f", "T30", "q"...): replies Expect.Meta. */
export function encodeMetaGet(itemKey: Key, flags: readonly string[] = []): Uint8Array {
  at = 0;
  ascii("mg ");
  key(itemKey);
  metaFlags(flags);
  crlf();
  return finish();
}

/** `ms <key> <datalen> <flag>*` and the data: replies Expect.Meta. */
export function encodeMetaSet(itemKey: Key, value: Value, flags: readonly string[] = []): Uint8Array {
  at = 0;
  const data = valueBytes(value);
  ascii("ms ");
  key(itemKey);
  ascii(` ${data.length}`);
  metaFlags(flags);
  crlf();
  return finish(data);
}

/** `md <key> <flag>*`: replies Expect.Meta. */
export function encodeMetaDelete(itemKey: Key, flags: readonly string[] = []): Uint8Array {
  at = 0;
  ascii("md ");
  key(itemKey);
  metaFlags(flags);
  crlf();
  return finish();
}

/** `ma <key> <flag>*` (meta arithmetic): replies Expect.Meta. */
export function encodeMetaArithmetic(itemKey: Key, flags: readonly string[] = []): Uint8Array {
  at = 0;
  ascii("ma ");
  key(itemKey);
  metaFlags(flags);
  crlf();
  return finish();
}

/** `me <key>` (meta debug): replies Expect.Meta (ME or EN). */
export function encodeMetaDebug(itemKey: Key): Uint8Array {
  at = 0;
  ascii("me ");
  key(itemKey);
  crlf();
  return finish();
}

/** `mn`: replies MN, after every reply to what was sent before it (ends a batch of quiet meta commands). */
export function encodeMetaNoop(): Uint8Array {
  at = 0;
  ascii("mn\r\n");
  return finish();
}
