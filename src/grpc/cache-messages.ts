// The messages of proto/gravity.proto (package gravity.v1), encoded and decoded by hand. Fields at
// their proto3 default (0, false, empty) are not written; decoders start from the defaults, keep the
// last value of a repeated scalar field, and skip unknown fields.
//
// Keys are `string` in the .proto, but the server treats them as bytes: decoders return them as
// Uint8Array (so a key that is not UTF-8 survives), and encoders take a string (sent as UTF-8) or bytes.
import { ProtoReader, ProtoWriter, WireType } from "./protobuf.ts";

/** A key as bytes, or a string sent as UTF-8. */
export type KeyText = string | Uint8Array;

export interface GetRequest {
  group: string;
  key: KeyText;
}

export interface GetResponse {
  found: boolean;
  value: Uint8Array;
}

export interface SetRequest {
  group: string;
  key: KeyText;
  value: Uint8Array;
  /** memcached's exptime, a signed 32-bit integer (0: never expires). */
  ttlSeconds: number;
}

export type SetResponse = Record<string, never>;

export interface DeleteRequest {
  group: string;
  key: KeyText;
}

export interface DeleteResponse {
  deleted: boolean;
}

export interface GetMultiRequest {
  group: string;
  keys: KeyText[];
}

export interface GetMultiResponse {
  /** One per requested key, in request order. */
  items: GetResponse[];
}

export interface TouchRequest {
  group: string;
  key: KeyText;
  ttlSeconds: number;
}

export interface TouchResponse {
  touched: boolean;
}

export interface StatsRequest {
  /** Empty: the process's counters; else that group's call counters. */
  group: string;
}

export interface StatsResponse {
  stats: Map<string, string>;
}

const NO_BYTES = new Uint8Array(0);
const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;

// One writer for the message and one for its embedded messages; each encode finishes with both
// before returning (single-threaded), and the result is copied out.
const writer = new ProtoWriter();
const inner = new ProtoWriter();

function done(): Uint8Array {
  return writer.finish().slice();
}

function isEmpty(text: KeyText): boolean {
  return text.length === 0;
}

function reset(): ProtoWriter {
  return writer.reset();
}

export function encodeGetRequest(message: GetRequest): Uint8Array {
  return encodeGroupKey(message.group, message.key);
}

export function decodeGetRequest(bytes: Uint8Array): GetRequest {
  return decodeGroupKey(bytes, "gravity.v1.GetRequest");
}

export function encodeDeleteRequest(message: DeleteRequest): Uint8Array {
  return encodeGroupKey(message.group, message.key);
}

export function decodeDeleteRequest(bytes: Uint8Array): DeleteRequest {
  return decodeGroupKey(bytes, "gravity.v1.DeleteRequest");
}

// GetRequest and DeleteRequest: group = 1, key = 2.
function encodeGroupKey(group: string, key: KeyText): Uint8Array {
  const w = reset();
  if (group !== "") w.string(1, group);
  if (!isEmpty(key)) w.string(2, key);
  return done();
}

function decodeGroupKey(bytes: Uint8Array, name: string): { group: string; key: Uint8Array } {
  const message = { group: "", key: NO_BYTES };
  const r = new ProtoReader(bytes, name);
  while (r.next()) {
    if (r.is(1, LEN)) message.group = r.string();
    else if (r.is(2, LEN)) message.key = r.bytes();
    else r.skip();
  }
  return message;
}

function writeGetResponse(w: ProtoWriter, message: GetResponse): void {
  if (message.found) w.bool(1, true);
  if (message.value.length > 0) w.bytes(2, message.value);
}

function readGetResponse(r: ProtoReader): GetResponse {
  const message: GetResponse = { found: false, value: NO_BYTES };
  while (r.next()) {
    if (r.is(1, VARINT)) message.found = r.bool();
    else if (r.is(2, LEN)) message.value = r.bytes();
    else r.skip();
  }
  return message;
}

export function encodeGetResponse(message: GetResponse): Uint8Array {
  writeGetResponse(reset(), message);
  return done();
}

export function decodeGetResponse(bytes: Uint8Array): GetResponse {
  return readGetResponse(new ProtoReader(bytes, "gravity.v1.GetResponse"));
}

export function encodeSetRequest(message: SetRequest): Uint8Array {
  const w = reset();
  if (message.group !== "") w.string(1, message.group);
  if (!isEmpty(message.key)) w.string(2, message.key);
  if (message.value.length > 0) w.bytes(3, message.value);
  if (message.ttlSeconds !== 0) w.int32(4, message.ttlSeconds);
  return done();
}

export function decodeSetRequest(bytes: Uint8Array): SetRequest & { key: Uint8Array } {
  const message = { group: "", key: NO_BYTES, value: NO_BYTES, ttlSeconds: 0 };
  const r = new ProtoReader(bytes, "gravity.v1.SetRequest");
  while (r.next()) {
    if (r.is(1, LEN)) message.group = r.string();
    else if (r.is(2, LEN)) message.key = r.bytes();
    else if (r.is(3, LEN)) message.value = r.bytes();
    else if (r.is(4, VARINT)) message.ttlSeconds = r.int32();
    else r.skip();
  }
  return message;
}

export function encodeSetResponse(_message: SetResponse): Uint8Array {
  return new Uint8Array(0);
}

export function decodeSetResponse(bytes: Uint8Array): SetResponse {
  const r = new ProtoReader(bytes, "gravity.v1.SetResponse");
  while (r.next()) r.skip();
  return {};
}

export function encodeDeleteResponse(message: DeleteResponse): Uint8Array {
  const w = reset();
  if (message.deleted) w.bool(1, true);
  return done();
}

export function decodeDeleteResponse(bytes: Uint8Array): DeleteResponse {
  const message = { deleted: false };
  const r = new ProtoReader(bytes, "gravity.v1.DeleteResponse");
  while (r.next()) {
    if (r.is(1, VARINT)) message.deleted = r.bool();
    else r.skip();
  }
  return message;
}

export function encodeGetMultiRequest(message: GetMultiRequest): Uint8Array {
  const w = reset();
  if (message.group !== "") w.string(1, message.group);
  // A repeated field writes every element, empty ones included: position is meaning here.
  for (const key of message.keys) w.string(2, key);
  return done();
}

export function decodeGetMultiRequest(bytes: Uint8Array): GetMultiRequest & { keys: Uint8Array[] } {
  const message = { group: "", keys: [] as Uint8Array[] };
  const r = new ProtoReader(bytes, "gravity.v1.GetMultiRequest");
  while (r.next()) {
    if (r.is(1, LEN)) message.group = r.string();
    else if (r.is(2, LEN)) message.keys.push(r.bytes());
    else r.skip();
  }
  return message;
}

export function encodeGetMultiResponse(message: GetMultiResponse): Uint8Array {
  const w = reset();
  for (const item of message.items) w.message(1, inner, (body) => writeGetResponse(body, item));
  return done();
}

export function decodeGetMultiResponse(bytes: Uint8Array): GetMultiResponse {
  const message: GetMultiResponse = { items: [] };
  const r = new ProtoReader(bytes, "gravity.v1.GetMultiResponse");
  while (r.next()) {
    if (r.is(1, LEN)) message.items.push(readGetResponse(r.message("gravity.v1.GetResponse")));
    else r.skip();
  }
  return message;
}

export function encodeTouchRequest(message: TouchRequest): Uint8Array {
  const w = reset();
  if (message.group !== "") w.string(1, message.group);
  if (!isEmpty(message.key)) w.string(2, message.key);
  if (message.ttlSeconds !== 0) w.int32(3, message.ttlSeconds);
  return done();
}

export function decodeTouchRequest(bytes: Uint8Array): TouchRequest & { key: Uint8Array } {
  const message = { group: "", key: NO_BYTES, ttlSeconds: 0 };
  const r = new ProtoReader(bytes, "gravity.v1.TouchRequest");
  while (r.next()) {
    if (r.is(1, LEN)) message.group = r.string();
    else if (r.is(2, LEN)) message.key = r.bytes();
    else if (r.is(3, VARINT)) message.ttlSeconds = r.int32();
    else r.skip();
  }
  return message;
}

export function encodeTouchResponse(message: TouchResponse): Uint8Array {
  const w = reset();
  if (message.touched) w.bool(1, true);
  return done();
}

export function decodeTouchResponse(bytes: Uint8Array): TouchResponse {
  const message = { touched: false };
  const r = new ProtoReader(bytes, "gravity.v1.TouchResponse");
  while (r.next()) {
    if (r.is(1, VARINT)) message.touched = r.bool();
    else r.skip();
  }
  return message;
}

export function encodeStatsRequest(message: StatsRequest): Uint8Array {
  const w = reset();
  if (message.group !== "") w.string(1, message.group);
  return done();
}

export function decodeStatsRequest(bytes: Uint8Array): StatsRequest {
  const message = { group: "" };
  const r = new ProtoReader(bytes, "gravity.v1.StatsRequest");
  while (r.next()) {
    if (r.is(1, LEN)) message.group = r.string();
    else r.skip();
  }
  return message;
}

// A map<string, string> is a repeated entry message { string key = 1; string value = 2; }.
export function encodeStatsResponse(message: StatsResponse): Uint8Array {
  const w = reset();
  for (const [name, value] of message.stats) {
    w.message(1, inner, (entry) => {
      if (name !== "") entry.string(1, name);
      if (value !== "") entry.string(2, value);
    });
  }
  return done();
}

export function decodeStatsResponse(bytes: Uint8Array): StatsResponse {
  const message: StatsResponse = { stats: new Map() };
  const r = new ProtoReader(bytes, "gravity.v1.StatsResponse");
  while (r.next()) {
    if (!r.is(1, LEN)) {
      r.skip();
      continue;
    }
    // A map entry's missing key or value is its default; a repeated key keeps the last value.
    const entry = r.message("gravity.v1.StatsResponse.StatsEntry");
    let name = "";
    let value = "";
    while (entry.next()) {
      if (entry.is(1, LEN)) name = entry.string();
      else if (entry.is(2, LEN)) value = entry.string();
      else entry.skip();
    }
    message.stats.set(name, value);
  }
  return message;
}
