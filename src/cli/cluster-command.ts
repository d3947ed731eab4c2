// `gravity cluster`: the embedded default that `npm start` runs. A router on one port plus six
// leaves on ephemeral loopback ports, no external services:
//
//   clients ──> router 127.0.0.1:11211 ── prefix "rep:" ──> replicated pool "replicas" (3 leaves,
//                                      │                     all-sync writes, hedged reads)
//                                      └─ "*" ────────────> sharded pool "main" (3 leaves, ketama)
//
// The leaves are child processes of this same executable (one native store per process). Ctrl-C
// (SIGINT) or SIGTERM stops the router, then the leaves, and exits.
import type { Subprocess } from "bun";
import { GravityError } from "../errors.ts";
import { ConfigFormat, parseConfig } from "../router/config.ts";
import { Router } from "../router/router.ts";
import { RouterCounters, startRouterServer } from "../router/server.ts";
import { MEMCACHED_VERSION } from "../version.ts";
import { FlagKind, type FlagSpec, flagHelp, parseFlags } from "./args.ts";
import { PARENT_PID_ENV } from "./leaf-command.ts";

export const CLUSTER_FLAGS: readonly FlagSpec[] = [
  { name: "listen", kind: FlagKind.String, default: "127.0.0.1", help: "address of the router" },
  { name: "port", kind: FlagKind.Integer, default: 11211, min: 0, max: 65535, help: "router port (0 = any)" },
  {
    name: "leaf-memory",
    kind: FlagKind.Bytes,
    default: "64mb",
    min: 2 * 1024 * 1024,
    max: 2 ** 50,
    help: "memory of each of the six leaves",
  },
  { name: "help", kind: FlagKind.Boolean, default: false, help: "show this help" },
];

export const CLUSTER_USAGE = `usage: gravity cluster [flags]

Runs a local cluster: a router plus six leaves on loopback (a sharded pool of three and a
replicated pool of three for keys starting with "rep:"). Ctrl-C stops everything.

flags:
${flagHelp(CLUSTER_FLAGS)}`;

const LEAVES_PER_POOL = 3;
const LEAF_START_MS = 15_000;
const STOP_GRACE_MS = 5000;
const LEAF_LISTENING = /gravity leaf listening on (\S+):(\d+)/;

interface ChildLeaf {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  address: string;
}

// The argv that runs this same gravity: the compiled executable itself, or Bun with the entry script.
function selfCommand(args: readonly string[]): string[] {
  const compiled = import.meta.url.includes("/$bunfs/");
  return compiled ? [process.execPath, ...args] : [process.execPath, Bun.main, ...args];
}

// Every leaf process spawned, from the spawn on: a signal during startup stops them too.
const children = new Set<Subprocess>();

async function startChildLeaf(memory: number): Promise<ChildLeaf> {
  const proc = Bun.spawn(
    selfCommand([
      "leaf",
      "--listen",
      "127.0.0.1",
      "--port",
      "0",
      "--memory",
      String(memory),
      "--exit-with-parent",
    ]),
    // The leaf compares its parent with this pid, so a cluster killed before the leaf has even
    // started (it would then see init as its parent) is still noticed.
    {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "inherit",
      env: { ...process.env, [PARENT_PID_ENV]: String(process.pid) },
    },
  );
  children.add(proc);
  void proc.exited.then(() => children.delete(proc));
  const decoder = new TextDecoder();
  let text = "";
  const deadline = setTimeout(() => proc.kill("SIGKILL"), LEAF_START_MS);
  try {
    for await (const chunk of proc.stdout) {
      text += decoder.decode(chunk, { stream: true });
      const match = LEAF_LISTENING.exec(text);
      if (match !== null) {
        // Keep draining its stdout so the leaf never blocks on a full pipe.
        void (async () => {
          for await (const _ of proc.stdout) {
          }
        })().catch(() => {});
        return { proc, address: `${match[1]}:${match[2]}` };
      }
    }
  } finally {
    clearTimeout(deadline);
  }
  throw new GravityError(
    "ELEAF",
    `a leaf exited before listening (exit ${await proc.exited}): ${text.trim()}`,
  );
}

export async function clusterCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, CLUSTER_FLAGS);
  if (flags.help === true) {
    console.log(CLUSTER_USAGE);
    return 0;
  }
  const memory = flags["leaf-memory"] as number;
  // Until the cluster is up, a signal stops whatever leaves have been spawned and exits.
  const early = (signal: NodeJS.Signals) => {
    console.log(`gravity cluster: ${signal} while starting, stopping ${children.size} leaves`);
    for (const child of children) child.kill("SIGTERM");
    process.exit(1);
  };
  process.on("SIGTERM", early);
  process.on("SIGINT", early);
  const leaves: ChildLeaf[] = [];
  const stopLeaves = async () => {
    for (const leaf of leaves) leaf.proc.kill("SIGTERM");
    const timer = setTimeout(() => {
      for (const leaf of leaves) leaf.proc.kill("SIGKILL");
    }, STOP_GRACE_MS);
    await Promise.all(leaves.map((leaf) => leaf.proc.exited));
    clearTimeout(timer);
  };
  let router: Router | undefined;
  let server: ReturnType<typeof startRouterServer> | undefined;
  try {
    const started = await Promise.allSettled(
      Array.from({ length: 2 * LEAVES_PER_POOL }, () => startChildLeaf(memory)),
    );
    for (const result of started) if (result.status === "fulfilled") leaves.push(result.value);
    const failed = started.find((result) => result.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const addresses = leaves.map((leaf) => leaf.address);
    const config = parseConfig(
      JSON.stringify({
        pools: {
          main: { servers: addresses.slice(0, LEAVES_PER_POOL) },
          replicas: { servers: addresses.slice(LEAVES_PER_POOL) },
        },
        route: {
          type: "prefix",
          routes: {
            "rep:": { type: "replicated", pool: "replicas", writes: "all-sync", reads: "hedged" },
            "*": { type: "sharded", pool: "main" },
          },
        },
      }),
      "<gravity cluster>",
      ConfigFormat.Json,
    );
    const counters = new RouterCounters();
    router = new Router(config, counters, {
      onHealthChange: (destination, down) =>
        console.log(`gravity cluster: leaf ${destination.name} ${down ? "marked down" : "is back up"}`),
    });
    const current = router;
    const host = flags.listen as string;
    const port = flags.port as number;
    try {
      server = startRouterServer({
        host,
        port,
        maxConnections: 1024,
        maxItemBytes: 1024 * 1024,
        version: MEMCACHED_VERSION,
        state: () => current.current(),
        counters,
      });
    } catch (error) {
      throw new GravityError(
        "ELISTEN",
        `cannot listen on ${host}:${port} (--listen, --port): ${(error as Error).message}`,
      );
    }
    console.log(`gravity cluster: router listening on ${host}:${server.port}`);
    console.log(`  pool main (sharded, ketama):       ${addresses.slice(0, LEAVES_PER_POOL).join(" ")}`);
    console.log(`  pool replicas (keys "rep:*"):      ${addresses.slice(LEAVES_PER_POOL).join(" ")}`);
    console.log(`connect any memcached client to ${host}:${server.port}; Ctrl-C stops the cluster`);
  } catch (error) {
    await router?.close();
    await stopLeaves();
    throw error;
  }
  let stopping = false;
  for (const leaf of leaves) {
    void leaf.proc.exited.then((code) => {
      if (!stopping) console.error(`gravity cluster: leaf ${leaf.address} exited with code ${code}`);
    });
  }
  const running = server;
  const routing = router;
  return await new Promise<number>((resolve) => {
    const stop = (reason: string) => {
      if (stopping) {
        console.error(`gravity cluster: ${reason} again, exiting now`);
        for (const leaf of leaves) leaf.proc.kill("SIGKILL");
        resolve(1);
        return;
      }
      stopping = true;
      console.log(`gravity cluster: ${reason}, stopping the router and ${leaves.length} leaves`);
      running
        .stop(STOP_GRACE_MS)
        .then(() => routing.close())
        .then(stopLeaves)
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.off("SIGTERM", early);
    process.off("SIGINT", early);
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
