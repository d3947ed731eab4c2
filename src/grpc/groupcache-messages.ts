// The messages of proto/groupcache.proto (groupcache's groupcachepb), encoded and decoded by hand.
// GetResponse's fields have explicit presence (proto2 `optional`, proto3 `optional`): a field is
// written when it is defined, even when empty, so an empty value is told apart from no value.
import type { KeyText } from "./cache-messages.ts";
import { ProtoReader, ProtoWriter, WireType } from "./protobuf.ts";

export interface GroupCacheGetRequest {
  group: string;
  key: KeyText;
}

export interface GroupCacheGetResponse {
  value?: Uint8Array;
  minuteQps?: number;
}

const writer = new ProtoWriter();

export function encodeGroupCacheGetRequest(message: GroupCacheGetRequest): Uint8Array {
  // groupcache's original proto2 file made both fields `required`: always write them.
  writer.reset().string(1, message.group);
  writer.string(2, message.key);
  return writer.finish().slice();
}

export function decodeGroupCacheGetRequest(bytes: Uint8Array): GroupCacheGetRequest & { key: Uint8Array } {
  const message = { group: "", key: new Uint8Array(0) };
  const r = new ProtoReader(bytes, "groupcachepb.GetRequest");
  while (r.next()) {
    if (r.is(1, WireType.LengthDelimited)) message.group = r.string();
    else if (r.is(2, WireType.LengthDelimited)) message.key = r.bytes();
    else r.skip();
  }
  return message;
}

export function encodeGroupCacheGetResponse(message: GroupCacheGetResponse): Uint8Array {
  writer.reset();
  if (message.value !== undefined) writer.bytes(1, message.value);
  if (message.minuteQps !== undefined) writer.double(2, message.minuteQps);
  return writer.finish().slice();
}

export function decodeGroupCacheGetResponse(bytes: Uint8Array): GroupCacheGetResponse {
  const message: GroupCacheGetResponse = {};
  const r = new ProtoReader(bytes, "groupcachepb.GetResponse");
  while (r.next()) {
    if (r.is(1, WireType.LengthDelimited)) message.value = r.bytes();
    else if (r.is(2, WireType.Fixed64)) message.minuteQps = r.double();
    else r.skip();
  }
  return message;
}
