// Raw memcached binary frames for tests: building requests, a conversation covering the opcodes
// whose replies do not depend on the server's identity, frames memcached answers with a close, and
// an exchange that reads reply frames (CAS zeroed) for byte-for-byte comparison between servers.
import { BinaryOp } from "../../src/protocol/binary-request.ts";
import { McClient } from "./mc-client.ts";
import { HOST, type ServerProcess } from "./servers.ts";

export const REPLY_DEADLINE_MS = 10_000;

/** The binary opcodes: the router's own table (memcached protocol_binary_command). */
export const Op = BinaryOp;

export interface FrameSpec {
  opcode: number;
  key?: string;
  extras?: Uint8Array | readonly number[];
  value?: string;
  opaque?: number;
  cas?: bigint;
}

export function frame(spec: FrameSpec): Uint8Array {
  const key = Buffer.from(spec.key ?? "", "latin1");
  const extras = Uint8Array.from(spec.extras ?? []);
  const value = Buffer.from(spec.value ?? "", "latin1");
  const out = Buffer.alloc(24 + extras.length + key.length + value.length);
  out[0] = 0x80;
  out[1] = spec.opcode;
  out.writeUInt16BE(key.length, 2);
  out[4] = extras.length;
  out.writeUInt32BE(extras.length + key.length + value.length, 8);
  out.writeUInt32BE(spec.opaque ?? 0, 12);
  out.writeBigUInt64BE(spec.cas ?? 0n, 16);
  out.set(extras, 24);
  out.set(key, 24 + extras.length);
  out.set(value, 24 + extras.length + key.length);
  return out;
}

export function u32s(...values: number[]): Uint8Array {
  const out = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) out.writeUInt32BE(v, 4 * i);
  return out;
}

export function deltaExtras(delta: bigint, initial: bigint, expiration: number): Uint8Array {
  const out = Buffer.alloc(20);
  out.writeBigUInt64BE(delta, 0);
  out.writeBigUInt64BE(initial, 8);
  out.writeUInt32BE(expiration, 16);
  return out;
}

export function concat(frames: Uint8Array[]): Uint8Array {
  return Buffer.concat(frames);
}

export interface Exchange {
  /** Reply frames, CAS bytes zeroed, as hex (one string per frame: easy to diff). */
  frames: string[];
  /** CAS of each reply frame. */
  cas: bigint[];
  closed: boolean;
}

// Sends `bytes` on a fresh connection and reads reply frames until one with `untilOpaque` (or, with
// `expectClose`, until the server closes the connection).
export async function exchange(
  server: ServerProcess,
  bytes: Uint8Array,
  options: { untilOpaque?: number; expectClose?: boolean; byteByByte?: boolean },
): Promise<Exchange> {
  const client = await McClient.connect(server.port, HOST);
  const result: Exchange = { frames: [], cas: [], closed: false };
  try {
    if (options.byteByByte) await client.sendChunks([...bytes].map((byte) => Uint8Array.of(byte)));
    else await client.send(bytes);
    for (;;) {
      if (options.expectClose && client.closed && client.buffered().length === 0) break;
      let header: Buffer;
      try {
        header = Buffer.from(await client.readBytes(24, REPLY_DEADLINE_MS));
      } catch (error) {
        if (options.expectClose && client.closed) break;
        throw error;
      }
      const body = Buffer.from(await client.readBytes(header.readUInt32BE(8), REPLY_DEADLINE_MS));
      result.cas.push(header.readBigUInt64BE(16));
      header.fill(0, 16, 24);
      result.frames.push(Buffer.concat([header, body]).toString("hex"));
      if (options.untilOpaque !== undefined && header.readUInt32BE(12) === options.untilOpaque) break;
    }
    if (options.expectClose) {
      await client.waitClosed(REPLY_DEADLINE_MS);
      result.closed = true;
    }
  } finally {
    client.close();
  }
  return result;
}

export const SENTINEL = 0x5e17;

// One stream covering the opcodes whose replies do not depend on the server's identity (version
// and stats do), ending in a noop that flushes the quiet ones.
export function conversation(prefix: string): Uint8Array {
  const k = (name: string) => `${prefix}${name}`;
  const setExtras = (flags: number, exptime: number) => u32s(flags, exptime);
  return concat([
    frame({ opcode: Op.Get, key: k("a"), opaque: 1 }),
    frame({ opcode: Op.GetK, key: k("a"), opaque: 2 }),
    frame({ opcode: Op.GetQ, key: k("a"), opaque: 3 }),
    frame({ opcode: Op.Set, key: k("a"), extras: setExtras(0xbeef, 0), value: "alpha", opaque: 4 }),
    frame({ opcode: Op.Get, key: k("a"), opaque: 5 }),
    frame({ opcode: Op.GetK, key: k("a"), opaque: 6 }),
    frame({ opcode: Op.GetKQ, key: k("a"), opaque: 7 }),
    frame({ opcode: Op.Add, key: k("a"), extras: setExtras(0, 0), value: "x", opaque: 8 }),
    frame({ opcode: Op.Replace, key: k("none"), extras: setExtras(0, 0), value: "x", opaque: 9 }),
    frame({ opcode: Op.Append, key: k("a"), value: "!", opaque: 10 }),
    frame({ opcode: Op.Prepend, key: k("none"), value: "x", opaque: 11 }),
    frame({ opcode: Op.SetQ, key: k("b"), extras: setExtras(1, 0), value: "beta", opaque: 12 }),
    frame({ opcode: Op.Get, key: k("b"), opaque: 13 }),
    frame({ opcode: Op.Set, key: k("c"), extras: setExtras(0, 0), value: "x", cas: 1n, opaque: 14 }),
    frame({ opcode: Op.Increment, key: k("n"), extras: deltaExtras(1n, 10n, 0), opaque: 15 }),
    frame({ opcode: Op.Increment, key: k("n"), extras: deltaExtras(5n, 10n, 0), opaque: 16 }),
    frame({ opcode: Op.Decrement, key: k("n"), extras: deltaExtras(100n, 0n, 0), opaque: 17 }),
    frame({ opcode: Op.Decrement, key: k("m"), extras: deltaExtras(1n, 0n, 0xffffffff), opaque: 18 }),
    frame({ opcode: Op.Increment, key: k("a"), extras: deltaExtras(1n, 0n, 0), opaque: 19 }),
    frame({ opcode: Op.IncrementQ, key: k("n"), extras: deltaExtras(1n, 0n, 0), opaque: 20 }),
    frame({ opcode: Op.Touch, key: k("a"), extras: u32s(100), opaque: 21 }),
    frame({ opcode: Op.Touch, key: k("none"), extras: u32s(100), opaque: 22 }),
    frame({ opcode: Op.Gat, key: k("a"), extras: u32s(100), opaque: 23 }),
    frame({ opcode: Op.GatK, key: k("none"), extras: u32s(100), opaque: 24 }),
    frame({ opcode: Op.GatQ, key: k("none"), extras: u32s(100), opaque: 25 }),
    frame({ opcode: Op.Delete, key: k("b"), opaque: 26 }),
    frame({ opcode: Op.Delete, key: k("b"), opaque: 27 }),
    frame({ opcode: Op.DeleteQ, key: k("a"), opaque: 28 }),
    frame({ opcode: Op.Stat, key: "bogus", opaque: 29 }),
    frame({ opcode: 0x30, opaque: 30 }),
    frame({ opcode: Op.Get, key: k("n"), opaque: 31 }),
    frame({ opcode: Op.Noop, opaque: SENTINEL }),
  ]);
}

// Frames memcached answers with an error and a close (or a silent close), each on its own connection.
export const badFrames: Record<string, Uint8Array> = {
  "key longer than 250 bytes": frame({ opcode: Op.Get, key: "k".repeat(251), opaque: 1 }),
  "get with extras": frame({ opcode: Op.Get, key: "k", extras: u32s(0), opaque: 2 }),
  "set without extras": frame({ opcode: Op.Set, key: "k", value: "v", opaque: 3 }),
  "noop with a body": frame({ opcode: Op.Noop, value: "x", opaque: 4 }),
  "key past the body": (() => {
    const f = frame({ opcode: Op.Get, key: "abc", opaque: 5 });
    f[11] = 1;
    return f;
  })(),
  "bad magic after a good frame": concat([frame({ opcode: Op.Noop, opaque: 6 }), new Uint8Array(24).fill(7)]),
  quit: concat([frame({ opcode: Op.Quit, opaque: 7 }), frame({ opcode: Op.Noop, opaque: 8 })]),
  quitq: concat([frame({ opcode: 0x17, opaque: 9 }), frame({ opcode: Op.Noop, opaque: 10 })]),
};
