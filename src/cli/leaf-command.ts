// `gravity leaf`: a memcached-compatible cache node.

import { nativeBackend } from "../cache/backend.ts";
import { UsageError } from "../errors.ts";
import { leafReady } from "../http/readiness.ts";
import { EVICTION_POLICIES, startLeaf } from "../leaf/leaf.ts";
import type { InjectedLatency } from "../leaf/listener.ts";
import { createRegistry, grpcMetrics, leafMetrics, type Registry } from "../metrics/registry.ts";
import { native } from "../native/index.ts";
import { MEMCACHED_VERSION, VERSION } from "../version.ts";
import { FlagKind, type FlagSpec, flagHelp, parseFlags } from "./args.ts";
import { memoryForShares } from "./cgroup-memory.ts";
import { checkEtcdFlags, ETCD_FLAGS, registerFromFlags } from "./etcd-flags.ts";
import { GRPC_FLAGS, startGrpcFromFlags } from "./grpc-flags.ts";
import { HTTP_FLAGS, startHttpFromFlags } from "./http-flags.ts";
import { checkNatsFlags, NATS_FLAGS, serveNatsFromFlags } from "./nats-flags.ts";
import { readSaslFile, SASL_FLAG } from "./sasl-flag.ts";
import { announceMemcachedPort, SECURITY_FLAGS, securityFromFlags } from "./security-flags.ts";

export const LEAF_FLAGS: readonly FlagSpec[] = [
  { name: "listen", kind: FlagKind.String, default: "127.0.0.1", short: "l", help: "address to listen on" },
  {
    name: "port",
    kind: FlagKind.Integer,
    default: 11211,
    min: 0,
    max: 65535,
    short: "p",
    help: "TCP port (0 = any free port)",
  },
  {
    name: "memory",
    kind: FlagKind.Bytes,
    default: "64mb",
    min: 1024 * 1024,
    max: 2 ** 50,
    short: "m",
    shortUnitBytes: 1024 * 1024,
    percentOf: () => memoryForShares(),
    help: "memory limit for items, overhead included (-m: megabytes, as memcached; 70% = of the container's memory limit)",
  },
  {
    name: "max-item-size",
    kind: FlagKind.Bytes,
    default: "1m",
    min: 1024,
    max: 1024 ** 3,
    short: "I",
    help: "largest item (key + value + header), as memcached -I",
  },
  {
    name: "threads",
    kind: FlagKind.Integer,
    default: 1,
    min: 1,
    max: 64,
    short: "t",
    help: "listener threads sharing the store",
  },
  {
    name: "max-connections",
    kind: FlagKind.Integer,
    default: 1024,
    min: 1,
    max: 1_000_000,
    short: "c",
    help: "open connections allowed, as memcached -c",
  },
  {
    name: "udp-port",
    kind: FlagKind.Integer,
    default: 0,
    min: 0,
    max: 0,
    short: "U",
    help: "UDP port: 0 only, UDP is not served (memcached 1.6's default)",
  },
  {
    name: "verbose",
    kind: FlagKind.Count,
    default: 0,
    min: 0,
    max: 3,
    short: "v",
    help: "log more: -v evictions (per second) and refused connections, -vv every connection",
  },
  {
    name: "policy",
    kind: FlagKind.String,
    default: "tinylfu",
    choices: EVICTION_POLICIES,
    help: "eviction policy: tinylfu (W-TinyLFU admission) or lru (exact LRU)",
  },
  SASL_FLAG,
  {
    name: "exit-with-parent",
    kind: FlagKind.Boolean,
    default: false,
    help: "stop when the process that started this leaf exits (gravity cluster's leaves)",
  },
  {
    name: "inject-latency",
    kind: FlagKind.String,
    default: "",
    help: "delay a share of replies, e.g. 1%:50ms (tests and benchmarks; off by default)",
  },
  ...HTTP_FLAGS,
  ...GRPC_FLAGS,
  ...SECURITY_FLAGS,
  ...ETCD_FLAGS,
  ...NATS_FLAGS,
  { name: "help", kind: FlagKind.Boolean, default: false, help: "show this help" },
];

/** Parses --inject-latency `P%:Nms` (P in [0, 100], N in [1, 60000]); "" is off. */
export function parseInjectLatency(text: string): InjectedLatency | null {
  if (text === "") return null;
  const match = /^(\d+(?:\.\d+)?)%:(\d+)ms$/.exec(text);
  const percent = match === null ? Number.NaN : Number(match[1]);
  const delayMs = match === null ? Number.NaN : Number(match[2]);
  if (!(percent >= 0 && percent <= 100) || !(delayMs >= 1 && delayMs <= 60_000)) {
    throw new UsageError(
      `--inject-latency: expected PERCENT%:MILLISECONDSms with a percent in [0, 100] and 1-60000 ms (e.g. 1%:50ms), got ${JSON.stringify(text)}`,
    );
  }
  return { share: percent / 100, delayMs };
}

export const LEAF_USAGE = `usage: gravity leaf [flags]

Runs a cache node that speaks the memcached text, meta and binary protocols.

flags:
${flagHelp(LEAF_FLAGS)}`;

/** After leaving the etcd pool on SIGTERM: how long routers get to drop this leaf before it closes. */
const DEREGISTER_GRACE_MS = 1000;

/** How often --exit-with-parent checks that the parent process is still there. */
const PARENT_CHECK_MS = 500;

/** Set by a parent (gravity cluster) to its pid, for --exit-with-parent to compare with. */
export const PARENT_PID_ENV = "GRAVITY_PARENT_PID";

/** Grace period for in-flight replies when stopping. */
const STOP_GRACE_MS = 5000;

export async function leafCommand(argv: readonly string[]): Promise<number> {
  const flags = parseFlags(argv, LEAF_FLAGS);
  if (flags.help === true) {
    console.log(LEAF_USAGE);
    return 0;
  }
  const security = securityFromFlags(flags);
  checkEtcdFlags(flags);
  checkNatsFlags(flags);
  // --exit-with-parent watches from the start: a parent that dies while this leaf is still
  // starting must not leave it running. Re-parented (to init or a subreaper): the parent is gone.
  let parentGone: (() => void) | null = null;
  let stopWatchingParent = () => {};
  if (flags["exit-with-parent"] === true) {
    const parent = Number(process.env[PARENT_PID_ENV]) || process.ppid;
    const check = () => {
      if (process.ppid === parent) return;
      stopWatchingParent();
      if (parentGone !== null) parentGone();
      else process.exit(1); // still starting: nothing to flush
    };
    const watch = setInterval(check, PARENT_CHECK_MS);
    stopWatchingParent = () => clearInterval(watch);
    check();
  }
  const memoryBytes = flags.memory as number;
  const maxItemBytes = flags["max-item-size"] as number;
  // A shard must hold a max-size item with its overhead; twice the item size always does.
  if (maxItemBytes * 2 > memoryBytes) {
    throw new UsageError(
      `--max-item-size: must be at most half of --memory (${memoryBytes} bytes), got ${maxItemBytes} bytes`,
    );
  }
  const injectLatency = parseInjectLatency(flags["inject-latency"] as string);
  const saslPasswords = readSaslFile(flags["sasl-file"] as string);
  let fatal: Error | null = null;
  let requestStop: (reason: string) => void = () => {};
  const leaf = await startLeaf(
    {
      hostname: flags.listen as string,
      port: flags.port as number,
      memoryBytes,
      maxItemBytes,
      threads: flags.threads as number,
      version: MEMCACHED_VERSION,
      maxConnections: flags["max-connections"] as number,
      policy: flags.policy as string,
      injectLatency,
      verbosity: flags.verbose as number,
      ...(saslPasswords === undefined ? {} : { saslPasswords }),
      tls: security.tls,
      authPasswords: security.authPasswords,
    },
    (error) => {
      fatal = error;
      requestStop(error.message);
    },
  );
  console.log(
    `gravity leaf listening on ${leaf.hostname}:${leaf.port} (threads ${flags.threads}, memory ${memoryBytes} bytes, max item ${maxItemBytes} bytes)`,
  );
  announceMemcachedPort(
    "leaf",
    leaf.hostname,
    security,
    saslPasswords !== undefined || security.authPasswords !== null,
  );
  const stopEvictionLog = (flags.verbose as number) >= 1 ? logEvictions() : () => {};
  let http: ReturnType<typeof startHttpFromFlags>;
  // Made with the HTTP server (it serves /metrics); the gRPC server's metrics join it.
  let registry: Registry | undefined;
  try {
    http = startHttpFromFlags("leaf", flags, flags.listen as string, () => {
      registry = createRegistry({ role: "leaf", version: VERSION });
      leafMetrics(registry);
      return {
        backend: nativeBackend(),
        ready: leafReady,
        registry,
        maxValueBytes: maxItemBytes,
        ...security,
      };
    });
  } catch (error) {
    await leaf.stop(STOP_GRACE_MS);
    throw error;
  }
  let grpc: Awaited<ReturnType<typeof startGrpcFromFlags>> = null;
  let nats: Awaited<ReturnType<typeof serveNatsFromFlags>> = null;
  let registration: Awaited<ReturnType<typeof registerFromFlags>>;
  try {
    grpc = await startGrpcFromFlags("leaf", flags, flags.listen as string, () => ({
      backend: nativeBackend(),
      ready: leafReady,
      ...security,
    }));
    if (grpc !== null && registry !== undefined) grpcMetrics(registry, grpc);
    nats = await serveNatsFromFlags(flags, leaf.hostname, leaf.port);
    registration = await registerFromFlags(flags, leaf.hostname, leaf.port);
  } catch (error) {
    await Promise.all([leaf.stop(STOP_GRACE_MS), http?.stop(true), grpc?.close(), nats?.close()]);
    throw error;
  }
  return await new Promise<number>((resolve) => {
    let stopping = false;
    requestStop = (reason: string) => {
      if (stopping) {
        console.error(`gravity leaf: ${reason} again, exiting now`);
        resolve(1);
        return;
      }
      stopping = true;
      stopEvictionLog();
      stopWatchingParent();
      console.log(`gravity leaf: ${reason}, stopping`);
      // Leave the pool first and give routers a moment to see it (their watch), so they stop
      // sending here before the listeners close and nothing in flight is cut off.
      (registration === null
        ? Promise.resolve()
        : registration.stop().then(() => Bun.sleep(DEREGISTER_GRACE_MS))
      )
        .then(() => Promise.all([leaf.stop(STOP_GRACE_MS), http?.stop(true), grpc?.close(), nats?.close()]))
        .then(
          () => resolve(fatal === null ? 0 : 1),
          () => resolve(1),
        );
    };
    process.on("SIGTERM", () => requestStop("SIGTERM"));
    process.on("SIGINT", () => requestStop("SIGINT"));
    parentGone = () => requestStop("parent process exited");
  });
}

// -v: once a second, how many items the store evicted, if any (memcached logs each one at -vv;
// a rate is what an operator can read under load).
function logEvictions(): () => void {
  let last = native.stats().evictions;
  const timer = setInterval(() => {
    const now = native.stats().evictions;
    if (now > last)
      console.log(`gravity leaf: evicted ${now - last} items in the last second (${now} in all)`);
    last = now;
  }, 1000);
  timer.unref?.();
  return () => clearInterval(timer);
}
