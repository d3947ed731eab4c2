import { expect, test } from "bun:test";
import { totalmem } from "node:os";
import { cgroupMemoryLimit, memoryForShares, type ReadText } from "./cgroup-memory.ts";

/** A file system of the given files; any other path cannot be read. */
function files(contents: Record<string, string>): ReadText {
  return (path) => contents[path];
}

test("cgroup v2: memory.max of the process's cgroup; 'max' is no limit", () => {
  const inContainer = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "536870912\n" });
  expect(cgroupMemoryLimit(inContainer)).toBe(536870912);
  const nested = files({
    "/proc/self/cgroup": "0::/kubepods/pod1/c1\n",
    "/sys/fs/cgroup/kubepods/pod1/c1/memory.max": "1073741824\n",
  });
  expect(cgroupMemoryLimit(nested)).toBe(1073741824);
  expect(
    cgroupMemoryLimit(files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max\n" })),
  ).toBe(undefined);
});

test("cgroup v1: memory.limit_in_bytes of the memory controller's cgroup; the huge sentinel is no limit", () => {
  const v1 = files({
    "/proc/self/cgroup": "5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n",
    "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "268435456\n",
  });
  expect(cgroupMemoryLimit(v1)).toBe(268435456);
  const unlimited = files({
    "/proc/self/cgroup": "4:memory:/\n",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
  });
  expect(cgroupMemoryLimit(unlimited)).toBe(undefined);
});

test("with no limit, or no cgroup at all, a share is of the machine's memory", () => {
  expect(memoryForShares(files({}))).toBe(totalmem());
  const limited = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "4096\n" });
  expect(memoryForShares(limited)).toBe(4096);
});
