// The protobuf wire format, just what proto/gravity.proto and proto/groupcache.proto need
// (protobuf.dev/programming-guides/encoding): a field is a varint tag `number << 3 | wire type`
// followed by its value, a varint (int32, bool), 8 little-endian bytes (double) or a varint length
// and that many bytes (strings, bytes, embedded messages, map entries).
//
//   tag ─ value        08 96 01        field 1, varint 150
//                      12 03 61 62 63  field 2, length 3, "abc"
//
// A reader skips fields it does not know, as protobuf requires, so a newer client's extra fields do
// no harm. Malformed input throws MalformedMessageError; nothing here allocates per field beyond
// the values it returns.

/** Protobuf wire types. Groups (3, 4) are deprecated but must still be skipped. */
export const WireType = {
  Varint: 0,
  Fixed64: 1,
  LengthDelimited: 2,
  StartGroup: 3,
  EndGroup: 4,
  Fixed32: 5,
} as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** Bytes that are not a valid encoding of the expected message. */
export class MalformedMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedMessageError";
  }
}

const MAX_FIELD_NUMBER = 0x1fff_ffff; // 2^29 - 1
const MAX_GROUP_DEPTH = 64;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder(); // invalid UTF-8 becomes U+FFFD rather than an error

/** Encodes one message into a buffer that grows as needed. */
export class ProtoWriter {
  private buffer = new Uint8Array(64);
  private view = new DataView(this.buffer.buffer);
  private at = 0;

  /** Starts a new message, dropping what was written. */
  reset(): this {
    this.at = 0;
    return this;
  }

  /** The encoded bytes (a view of this writer's buffer: finish with it before writing more). */
  finish(): Uint8Array {
    return this.buffer.subarray(0, this.at);
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.at + bytes) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.at));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  /** A varint of an unsigned 32-bit number (tags, lengths). */
  private uint32(value: number): void {
    this.reserve(5);
    let rest = value >>> 0;
    while (rest > 0x7f) {
      this.buffer[this.at++] = (rest & 0x7f) | 0x80;
      rest >>>= 7;
    }
    this.buffer[this.at++] = rest;
  }

  private tag(field: number, wireType: WireType): void {
    this.uint32(field * 8 + wireType);
  }

  /** An int32 field. Negative numbers take 10 bytes: they are sign-extended to 64 bits, as protobuf requires. */
  int32(field: number, value: number): void {
    this.tag(field, WireType.Varint);
    if (value >= 0) {
      this.uint32(value);
      return;
    }
    this.reserve(10);
    let low = value >>> 0;
    for (let i = 0; i < 4; i++) {
      this.buffer[this.at++] = (low & 0x7f) | 0x80;
      low >>>= 7;
    }
    // Byte 5 holds the top 4 bits of the low word and the first 3 bits of the (all ones) high word.
    this.buffer[this.at++] = (low & 0x0f) | 0x70 | 0x80;
    for (let i = 0; i < 4; i++) this.buffer[this.at++] = 0xff;
    this.buffer[this.at++] = 0x01;
  }

  bool(field: number, value: boolean): void {
    this.tag(field, WireType.Varint);
    this.uint32(value ? 1 : 0);
  }

  double(field: number, value: number): void {
    this.tag(field, WireType.Fixed64);
    this.reserve(8);
    this.view.setFloat64(this.at, value, true);
    this.at += 8;
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WireType.LengthDelimited);
    this.uint32(value.length);
    this.reserve(value.length);
    this.buffer.set(value, this.at);
    this.at += value.length;
  }

  /** A string field: the text as UTF-8, or bytes written as they are. */
  string(field: number, value: string | Uint8Array): void {
    if (typeof value !== "string") {
      this.bytes(field, value);
      return;
    }
    this.tag(field, WireType.LengthDelimited);
    // Reserve the worst case (3 bytes per UTF-16 unit) and a 5-byte length, then write the length
    // in the bytes it needs and move the text down if it was shorter than reserved.
    const most = value.length * 3;
    this.reserve(5 + most);
    const lengthAt = this.at;
    const textAt = lengthAt + varintSize(most);
    const { written } = utf8Encoder.encodeInto(value, this.buffer.subarray(textAt));
    this.uint32(written);
    if (this.at !== textAt) this.buffer.copyWithin(this.at, textAt, textAt + written);
    this.at += written;
  }

  /** An embedded message (or map entry): `body` writes its fields into `scratch`, reset first. */
  message(field: number, scratch: ProtoWriter, body: (writer: ProtoWriter) => void): void {
    body(scratch.reset());
    this.bytes(field, scratch.finish());
  }
}

function varintSize(value: number): number {
  let size = 1;
  for (let rest = value >>> 7; rest > 0; rest >>>= 7) size++;
  return size;
}

/** Reads the fields of one encoded message in order. */
export class ProtoReader {
  private at: number;
  private readonly end: number;
  private readonly view: DataView;
  /** Field number of the field just read by next(). */
  field = 0;
  /** Wire type of the field just read by next(). */
  wireType: WireType = WireType.Varint;

  constructor(
    private readonly buffer: Uint8Array,
    /** Message name for error messages. */
    private readonly name: string,
  ) {
    this.at = 0;
    this.end = buffer.length;
    this.view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  private fail(problem: string): never {
    throw new MalformedMessageError(`malformed ${this.name}: ${problem} at byte ${this.at}`);
  }

  /** Moves to the next field (sets `field` and `wireType`); false at the end of the message. */
  next(): boolean {
    if (this.at >= this.end) return false;
    const tag = this.uint32();
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 0 || field > MAX_FIELD_NUMBER) this.fail(`field number ${field}`);
    if (wireType > WireType.Fixed32) this.fail(`wire type ${wireType}`);
    this.field = field;
    this.wireType = wireType as WireType;
    return true;
  }

  /** Whether the current field is `field` with `wireType` (a known field number with another wire type is skipped as unknown, as protobuf-go does). */
  is(field: number, wireType: WireType): boolean {
    return this.field === field && this.wireType === wireType;
  }

  private expect(wireType: WireType): void {
    if (this.wireType !== wireType) {
      this.fail(`field ${this.field} has wire type ${this.wireType}, expected ${wireType}`);
    }
  }

  /**
   * A varint of up to 10 bytes, truncated to its low 32 bits as protobuf's int32/uint32 parsers do.
   * Returns it unsigned.
   */
  private uint32(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) this.fail("truncated varint");
      const byte = this.buffer[this.at++] as number;
      // Bits past 32 are dropped: byte 5 contributes its low 4 bits, later bytes nothing.
      if (i < 5) value += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) return value % 2 ** 32;
    }
    this.fail("varint longer than 10 bytes");
  }

  /** The current int32 field (a negative number arrives sign-extended to 10 bytes). */
  int32(): number {
    this.expect(WireType.Varint);
    return this.uint32() | 0;
  }

  /** The current bool field: any non-zero varint is true. */
  bool(): boolean {
    this.expect(WireType.Varint);
    let any = 0;
    for (let i = 0; i < 10; i++) {
      if (this.at >= this.end) this.fail("truncated varint");
      const byte = this.buffer[this.at++] as number;
      any |= byte & 0x7f;
      if (byte < 0x80) return any !== 0;
    }
    this.fail("varint longer than 10 bytes");
  }

  double(): number {
    this.expect(WireType.Fixed64);
    if (this.end - this.at < 8) this.fail("truncated double");
    const value = this.view.getFloat64(this.at, true);
    this.at += 8;
    return value;
  }

  /** The current length-delimited field as a copy (the caller may keep it past the input buffer). */
  bytes(): Uint8Array<ArrayBuffer> {
    return this.lengthDelimited().slice();
  }

  /** The current length-delimited field as UTF-8 text. */
  string(): string {
    return utf8Decoder.decode(this.lengthDelimited());
  }

  /** The current field as a reader of the embedded message (or map entry) it holds. */
  message(name: string): ProtoReader {
    return new ProtoReader(this.lengthDelimited(), name);
  }

  private lengthDelimited(): Uint8Array {
    this.expect(WireType.LengthDelimited);
    const length = this.uint32();
    if (length > this.end - this.at) this.fail(`length ${length} past the end of the message`);
    const start = this.at;
    this.at += length;
    return this.buffer.subarray(start, this.at);
  }

  /** Skips the current field, whatever its wire type (an unknown field). */
  skip(): void {
    this.skipValue(this.wireType, this.field, 0);
  }

  private skipValue(wireType: WireType, field: number, depth: number): void {
    switch (wireType) {
      case WireType.Varint:
        this.uint32();
        return;
      case WireType.Fixed64:
        this.advance(8);
        return;
      case WireType.Fixed32:
        this.advance(4);
        return;
      case WireType.LengthDelimited:
        this.lengthDelimited();
        return;
      case WireType.StartGroup:
        // A group ends at the END_GROUP tag with its own field number; fields inside may be groups.
        if (depth >= MAX_GROUP_DEPTH) this.fail("groups nested too deeply");
        for (;;) {
          if (!this.next()) this.fail(`group ${field} has no end`);
          if (this.wireType === WireType.EndGroup) {
            if (this.field !== field) this.fail(`group ${field} ended by ${this.field}`);
            return;
          }
          this.skipValue(this.wireType, this.field, depth + 1);
        }
      case WireType.EndGroup:
        this.fail(`end of group ${field} without a start`);
    }
  }

  private advance(bytes: number): void {
    if (this.end - this.at < bytes) this.fail("truncated field");
    this.at += bytes;
  }
}
