// The only module that loads the C++ addon. The literal path lets `bun build --compile` embed the
// .node file in the executable.
import type { NativeAddon } from "./types.ts";

export type { NativeConfig, NativeConnection, NativeStats } from "./types.ts";

export const native: NativeAddon = require("../../build/Release/gravity.node");

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
