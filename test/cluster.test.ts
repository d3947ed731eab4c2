// `gravity cluster`: what `npm start` runs. A router and six leaves come up on loopback, route as
// the README says (sharded pool, replicated pool for "rep:" keys), and all stop on Ctrl-C.
import { afterAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { createClient } from "../src/client/index.ts";
import { gravityCommand, HOST, SERVER_TEST_MS, stopAll } from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

afterAll(stopAll);

async function holds(address: string, key: string): Promise<boolean> {
  const client = createClient({ servers: [address], timeoutMs: 2000 });
  try {
    return (await client.get(key)) !== null;
  } finally {
    await client.close();
  }
}

async function accepts(address: string): Promise<boolean> {
  const [host, port] = address.split(":");
  try {
    const socket = await Bun.connect({ hostname: host as string, port: Number(port), socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

test(
  "gravity cluster serves a sharded and a replicated pool and stops everything on SIGINT",
  async () => {
    const proc = Bun.spawn(gravityCommand(["cluster", "--port", "0"]), {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    let out = "";
    const decoder = new TextDecoder();
    const reader = (async () => {
      for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true });
    })();
    const ready = async () => {
      while (!/Ctrl-C stops the cluster/.test(out)) {
        if (proc.exitCode !== null) throw new Error(`cluster exited ${proc.exitCode}: ${out}`);
        await Bun.sleep(20);
      }
    };
    try {
      await withDeadline(ready(), 20_000, "the cluster to print where to connect");
      const router = (/router listening on (\S+)/.exec(out) as RegExpExecArray)[1] as string;
      const main = ((/pool main.*?\):\s+(.+)/.exec(out) as RegExpExecArray)[1] as string).trim().split(" ");
      const replicas = ((/pool replicas.*?\):\s+(.+)/.exec(out) as RegExpExecArray)[1] as string)
        .trim()
        .split(" ");
      expect(main).toHaveLength(3);
      expect(replicas).toHaveLength(3);
      expect(router.startsWith(`${HOST}:`)).toBe(true);

      const client = createClient({ servers: [router], timeoutMs: 5000 });
      await client.set("rep:user", "everywhere");
      await client.set("plain", "somewhere");
      expect(await client.getString("rep:user")).toBe("everywhere");
      expect(await client.getString("plain")).toBe("somewhere");
      await client.close();
      for (const leaf of replicas) expect(await holds(leaf, "rep:user")).toBe(true);
      const owners = [];
      for (const leaf of main) if (await holds(leaf, "plain")) owners.push(leaf);
      expect(owners).toHaveLength(1);
      for (const leaf of main) expect(await holds(leaf, "rep:user")).toBe(false);

      proc.kill("SIGINT");
      expect(await withDeadline(proc.exited, 15_000, "the cluster to exit")).toBe(0);
      await reader;
      for (const address of [router, ...main, ...replicas]) expect(await accepts(address)).toBe(false);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
  },
  SERVER_TEST_MS,
);

test(
  "leaves of a cluster killed with SIGKILL exit on their own (--exit-with-parent)",
  async () => {
    const proc = Bun.spawn(gravityCommand(["cluster", "--port", "0"]), {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    let out = "";
    const decoder = new TextDecoder();
    void (async () => {
      for await (const chunk of proc.stdout) out += decoder.decode(chunk, { stream: true });
    })();
    try {
      await withDeadline(
        (async () => {
          while (!/Ctrl-C stops the cluster/.test(out)) {
            if (proc.exitCode !== null) throw new Error(`cluster exited ${proc.exitCode}: ${out}`);
            await Bun.sleep(20);
          }
        })(),
        20_000,
        "the cluster to print where to connect",
      );
      const leaves = [...out.matchAll(/127\.0\.0\.1:\d+/g)].map((match) => match[0]).slice(1, 7); // after the router, before "connect ... to"
      expect(leaves).toHaveLength(6);
      for (const address of leaves) expect(await accepts(address)).toBe(true);
      proc.kill("SIGKILL");
      await proc.exited;
      await pollUntil(
        async () => {
          for (const address of leaves) if (await accepts(address)) return undefined;
          return true;
        },
        { deadlineMs: 15_000, what: "every leaf of the killed cluster to exit" },
      );
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
  },
  SERVER_TEST_MS,
);

// The leaves a cluster process started: every gravity process whose environment names it as parent.
function leavesOf(clusterPid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, "latin1").split("\0");
      if (environ.includes(`GRAVITY_PARENT_PID=${clusterPid}`)) found.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

for (const [signal, afterMs] of [
  ["SIGTERM", 150],
  ["SIGKILL", 300],
] as const) {
  test(
    `a cluster stopped by ${signal} while it is still starting leaves no leaf running`,
    async () => {
      const proc = Bun.spawn(gravityCommand(["cluster", "--port", "0"]), {
        stdout: "ignore",
        stderr: "ignore",
        stdin: "ignore",
      });
      // Wait until leaves exist (spawned, not yet all listening), then stop the cluster.
      await pollUntil(() => (leavesOf(proc.pid).length > 0 ? true : undefined), {
        deadlineMs: 10_000,
        intervalMs: 5,
        what: "the cluster to spawn its first leaf",
      });
      await Bun.sleep(afterMs); // a point in the leaves' start-up, not a synchronisation
      proc.kill(signal);
      await withDeadline(proc.exited, 10_000, "the cluster to exit");
      await pollUntil(() => (leavesOf(proc.pid).length === 0 ? true : undefined), {
        deadlineMs: 10_000,
        intervalMs: 20,
        what: `every leaf of the cluster to exit after its ${signal}`,
      });
    },
    SERVER_TEST_MS,
  );
}
