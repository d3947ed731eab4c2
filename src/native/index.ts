// The only module that loads the C++ addon. The literal path lets `bun build --compile` embed the
// .node file in the executable.
import type { NativeAddon, NativeKey } from "./types.ts";

export type { NativeConfig, NativeConnection, NativeKey, NativeStats } from "./types.ts";
export { StoreStatus } from "./types.ts";

export const native: NativeAddon = require("../../build/Release/gravity.node");

/** Room for a typical value; getValue() reads a longer one again into a buffer of its exact size. */
const scratch = new Uint8Array(4096);

/**
 * The key's value as a fresh Uint8Array, or undefined on a miss: the convenient get for callers off
 * the hot path (hot loops call native.get() with a buffer they reuse).
 */
export function getValue(key: NativeKey): Uint8Array | undefined {
  let length = native.get(key, scratch);
  if (length < 0) return undefined;
  if (length <= scratch.length) return scratch.slice(0, length);
  // Too long for scratch: nothing was copied or counted. The value may change before the second
  // read, so read until one fits.
  for (;;) {
    const value = new Uint8Array(length);
    const actual = native.get(key, value);
    if (actual < 0) return undefined;
    if (actual <= length) return value.subarray(0, actual);
    length = actual;
  }
}

/** Bytes feed() wrote into `out`. */
export function fedBytes(result: number): number {
  return Math.floor(result / 4);
}

/** Whether reply bytes are still held in C++ after feed() (the caller must flush and feed again). */
export function fedPending(result: number): boolean {
  return (result & 2) !== 0;
}

/** Whether the connection must close once the written bytes are sent. */
export function fedClose(result: number): boolean {
  return (result & 1) !== 0;
}
