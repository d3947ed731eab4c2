// The memory this process may use: its cgroup's limit (a container's memory limit), for sizes given
// as a share of it (`--memory 70%`). cgroup v2 reads memory.max of the process's cgroup, v1
// memory.limit_in_bytes of its memory controller's; with no limit (v2 "max", v1's huge sentinel, or
// no cgroup file at all) it is the machine's memory.
import { readFileSync } from "node:fs";
import { totalmem } from "node:os";

/** Reads a file as text, or undefined when it cannot be read (the tests pass their own). */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
};

// cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value; anything at or above
// 2^60 bytes is taken as no limit.
const NO_LIMIT_BYTES = 2 ** 60;

function limitIn(text: string | undefined): number | undefined {
  const value = text?.trim();
  if (value === undefined || value === "" || value === "max" || !/^\d+$/.test(value)) return undefined;
  const bytes = Number(value);
  return bytes >= NO_LIMIT_BYTES ? undefined : bytes;
}

/**
 * The cgroup memory limit of this process in bytes, or undefined when it has none. `/proc/self/cgroup`
 * names the cgroup: a v2 line "0::/path", v1 lines "N:memory:/path" (in a container both are
 * usually "/", the container's own cgroup).
 */
export function cgroupMemoryLimit(read: ReadText = readText): number | undefined {
  const lines = (read("/proc/self/cgroup") ?? "").split("\n");
  const v1 = lines.map((line) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/.exec(line)?.[1]).find((p) => p);
  if (v1 !== undefined) {
    return (
      limitIn(read(`/sys/fs/cgroup/memory${v1 === "/" ? "" : v1}/memory.limit_in_bytes`)) ??
      limitIn(read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
    );
  }
  const v2 = lines.map((line) => /^0::(.*)$/.exec(line)?.[1]).find((p) => p !== undefined);
  if (v2 === undefined) return undefined;
  return (
    limitIn(read(`/sys/fs/cgroup${v2 === "/" ? "" : v2}/memory.max`)) ??
    limitIn(read("/sys/fs/cgroup/memory.max"))
  );
}

/** What a percentage of memory is a share of: the cgroup's limit, else the machine's memory. */
export function memoryForShares(read: ReadText = readText): number {
  return cgroupMemoryLimit(read) ?? totalmem();
}
