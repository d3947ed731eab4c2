// etcd from the distribution (Debian etcd-server, v3.4) for tests: one member, or a cluster of
// several, on 127.0.0.1 with ephemeral client and peer ports and a temp data dir per member.
//
//   startEtcd() -> temp dir -> etcd --data-dir dir/data --listen-client-urls http://127.0.0.1:C
//                                   --listen-peer-urls http://127.0.0.1:P ...
//               -> resolves once GET /health says {"health":"true"}
//   startEtcdCluster(3) -> three such members started together, each --initial-cluster naming
//                          all three; resolves once every member is healthy (a leader elected)
//   stop()      -> the process ends, the data dir stays (an outage; a cluster member's peers
//                  go on without it while they keep a quorum)
//   restart()   -> the same ports and data dir again (the same cluster, its keys and leases);
//                  restart({ wipe: true }) empties the data dir first (a new, empty cluster:
//                  single members only)
//   destroy()   -> stop and remove the temp dir
//   startEtcd({ tls }) -> the client URL is https:// with the given certificate (peers stay
//                  plain on loopback); `clientCertAuth` adds etcd's --client-cert-auth
//
// A test calls `afterAll(stopAllEtcd)`: the process registry in servers.ts is private to it, so
// these processes have their own. A process-exit hook SIGKILLs whatever is left if the runner dies.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { endProcess, killOnExit } from "./processes.ts";
import { freePort, HOST } from "./servers.ts";
import { DeadlineError, pollUntil } from "./wait.ts";

export const ETCD = "/usr/bin/etcd";

/** A running (or stopped, restartable) etcd member. */
export interface EtcdServer {
  /** The member's name in the cluster. */
  readonly name: string;
  /** "http(s)://127.0.0.1:port": what the gravity discovery modules take as an endpoint. */
  readonly clientUrl: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  /** The pid of the current process; undefined while stopped. */
  pid(): number | undefined;
  running(): boolean;
  /** What etcd wrote to stderr (its log) over every run, the last 256 KiB. */
  log(): string;
  /** Ends the process (default SIGTERM; SIGKILL past `deadlineMs`, default 10 s); keeps the data dir. */
  stop(signal?: NodeJS.Signals, deadlineMs?: number): Promise<void>;
  /**
   * Starts etcd again on the same ports and data dir (stopping it first if it runs); resolves once
   * healthy (within `deadlineMs`, default 15 s): a cluster member is healthy only while its
   * cluster has a leader. `wipe` empties the data dir first: a new cluster.
   */
  restart(options?: { deadlineMs?: number; wipe?: boolean }): Promise<void>;
  /** Stops etcd and removes its temp dir. */
  destroy(): Promise<void>;
}

/** Returns the etcd binary, or throws naming the Debian package: a missing binary fails, never skips. */
export function requireEtcd(): string {
  if (existsSync(ETCD)) return ETCD;
  throw new Error(
    `required server binary ${ETCD} is missing (Debian package etcd-server: apt-get install etcd-server)`,
  );
}

const LOG_LIMIT = 256 * 1024;
const running = new Set<EtcdServer>();

/** Stops and removes every etcd started here. Use as `afterAll(stopAllEtcd)`. */
export async function stopAllEtcd(): Promise<void> {
  await destroyInTurn(running, "etcd processes");
}

// One member after the other: two members of a cluster stopping at once can leave the leader
// handing its leadership to a member that is going away, and SIGTERM then takes seconds.
async function destroyInTurn(servers: Iterable<EtcdServer>, what: string): Promise<void> {
  const errors: unknown[] = [];
  for (const server of [...servers]) await server.destroy().catch((error: unknown) => errors.push(error));
  if (errors.length > 0) throw new AggregateError(errors, `some ${what} did not stop cleanly`);
}

/** A cluster of etcd members on loopback. */
export interface EtcdCluster {
  readonly members: readonly EtcdServer[];
  /** Every member's client URL, comma separated: what `--etcd` takes. */
  readonly endpoints: string;
  /** Stops every member and removes their temp dirs. */
  destroy(): Promise<void>;
}

/** Election timing for tests: a lost leader is replaced (or missed) within about a second. */
export interface EtcdTiming {
  heartbeatMs: number;
  electionMs: number;
}

// etcd's defaults (100 ms heartbeat, 1 s election timeout) suit a network; on loopback a tenth
// of the election timeout is still ten heartbeats.
const TEST_TIMING: EtcdTiming = { heartbeatMs: 50, electionMs: 500 };

/** TLS on the client URL: etcd's --cert-file and --key-file (PEM file paths). */
export interface EtcdTls {
  certFile: string;
  keyFile: string;
  /** The CA that signed certFile (the health checks verify etcd by it). */
  caFile: string;
  /** etcd's --trusted-ca-file caFile and --client-cert-auth: clients must present a certificate it signed. */
  clientCertAuth: boolean;
  /** The client certificate the health checks present (needed with clientCertAuth). */
  clientCertFile?: string;
  clientKeyFile?: string;
}

/**
 * Starts a one-member etcd on free loopback ports (retrying if another process takes a port
 * first) and resolves once it reports itself healthy, within `deadlineMs` (default 15 s).
 */
export async function startEtcd(options: { deadlineMs?: number; tls?: EtcdTls } = {}): Promise<EtcdServer> {
  const cluster = await startEtcdCluster(1, options);
  return cluster.members[0] as EtcdServer;
}

/**
 * Starts `size` etcd members forming one cluster, on free loopback ports (retrying if another
 * process takes a port first), with short election timeouts (TEST_TIMING); resolves once every
 * member is healthy, within `deadlineMs` (default 15 s).
 */
export async function startEtcdCluster(
  size: number,
  options: { deadlineMs?: number; tls?: EtcdTls } = {},
): Promise<EtcdCluster> {
  const binary = requireEtcd();
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    const ports = new Set<number>();
    while (ports.size < size * 2) ports.add(await freePort());
    const [...all] = ports;
    const names = Array.from({ length: size }, (_, i) => (size === 1 ? "default" : `member-${i}`));
    const peerUrl = (i: number) => `http://${HOST}:${all[size + i]}`;
    const initialCluster = names.map((name, i) => `${name}=${peerUrl(i)}`).join(",");
    const token = `gravity-test-${process.pid}-${Date.now()}-${attempt}`;
    const members = names.map((name, i) =>
      etcdServer(binary, mkdtempSync(join(tmpdir(), "gravity-etcd-")), {
        name,
        clientPort: all[i] as number,
        peerPort: all[size + i] as number,
        initialCluster,
        token,
        timing: size === 1 ? undefined : TEST_TIMING,
        tls: options.tls,
      }),
    );
    const cluster: EtcdCluster = {
      members,
      endpoints: members.map((member) => member.clientUrl).join(","),
      destroy: () => destroyInTurn(members, "etcd members"),
    };
    const started = await Promise.allSettled(
      members.map((member) => member.restart({ deadlineMs: options.deadlineMs })),
    );
    const failure = started.find((result) => result.status === "rejected");
    if (failure === undefined) return cluster;
    const raced = members.some((member) => /address already in use/i.test(member.log()));
    await cluster.destroy().catch(() => {});
    if (!raced || attempt === attempts) throw failure.reason;
  }
}

interface MemberSpec {
  name: string;
  clientPort: number;
  peerPort: number;
  /** etcd's --initial-cluster: every member's name=peerUrl. */
  initialCluster: string;
  token: string;
  /** undefined: etcd's defaults. */
  timing: EtcdTiming | undefined;
  /** undefined: plain http on the client URL. */
  tls: EtcdTls | undefined;
}

function etcdServer(binary: string, dir: string, member: MemberSpec): EtcdServer {
  const { clientPort, peerPort } = member;
  const tls = member.tls;
  const clientUrl = `${tls === undefined ? "http" : "https"}://${HOST}:${clientPort}`;
  const peerUrl = `http://${HOST}:${peerPort}`;
  const dataDir = join(dir, "data");
  const args = [
    binary,
    "--name",
    member.name,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    clientUrl,
    "--advertise-client-urls",
    clientUrl,
    "--listen-peer-urls",
    peerUrl,
    "--initial-advertise-peer-urls",
    peerUrl,
    "--initial-cluster",
    member.initialCluster,
    "--initial-cluster-token",
    member.token,
    "--initial-cluster-state",
    "new",
  ];
  if (tls !== undefined) {
    args.push("--cert-file", tls.certFile, "--key-file", tls.keyFile);
    // etcd 3.4 requires client certificates whenever it has a --trusted-ca-file.
    if (tls.clientCertAuth) args.push("--trusted-ca-file", tls.caFile, "--client-cert-auth");
  }
  // What the health check presents: the CA that signed etcd's certificate, and a client certificate.
  const healthTls =
    tls === undefined
      ? undefined
      : {
          ca: readFileSync(tls.caFile, "utf8"),
          ...(tls.clientCertFile === undefined || tls.clientKeyFile === undefined
            ? {}
            : {
                cert: readFileSync(tls.clientCertFile, "utf8"),
                key: readFileSync(tls.clientKeyFile, "utf8"),
              }),
        };
  if (member.timing !== undefined)
    args.push(
      "--heartbeat-interval",
      String(member.timing.heartbeatMs),
      "--election-timeout",
      String(member.timing.electionMs),
    );
  // ETCD_* variables would override flags; etcd reads its configuration from nothing else here.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env))
    if (value !== undefined && !key.startsWith("ETCD_")) env[key] = value;
  let proc: Subprocess<"ignore", "ignore", "pipe"> | undefined;
  let drained: Promise<void> = Promise.resolve();
  let logText = "";
  const isRunning = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;

  const spawn = () => {
    const child = Bun.spawn(args, { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    proc = child;
    killOnExit(child);
    drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        logText += decoder.decode(chunk, { stream: true });
        if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
      }
    })();
  };

  const stop = async (signal: NodeJS.Signals = "SIGTERM", deadlineMs = 10_000) => {
    const child = proc;
    if (child === undefined) return;
    try {
      await endProcess(child, signal, deadlineMs, "etcd");
    } finally {
      await drained;
      proc = undefined;
    }
  };

  const server: EtcdServer = {
    name: member.name,
    clientUrl,
    clientPort,
    peerPort,
    dataDir,
    pid: () => (isRunning() ? proc?.pid : undefined),
    running: isRunning,
    log: () => logText,
    stop,
    async restart({ deadlineMs = 15_000, wipe = false } = {}) {
      await stop();
      if (wipe) rmSync(dataDir, { recursive: true, force: true });
      spawn();
      running.add(server);
      try {
        await pollUntil(
          async () => {
            if (!isRunning()) {
              await drained;
              throw new Error(
                `etcd exited with code ${proc?.exitCode} before it was healthy: ${logText.slice(-4000)}`,
              );
            }
            try {
              const response = await fetch(`${clientUrl}/health`, {
                signal: AbortSignal.timeout(1000),
                ...(healthTls === undefined ? {} : { tls: healthTls }),
              });
              const body = (await response.json()) as { health?: unknown };
              return body.health === "true" ? true : undefined;
            } catch {
              return undefined;
            }
          },
          { deadlineMs, intervalMs: 50, what: `etcd to be healthy on ${clientUrl}` },
        );
      } catch (error) {
        if (error instanceof DeadlineError)
          throw new Error(`${error.message}; etcd log: ${logText.slice(-4000)}`);
        throw error;
      }
    },
    async destroy() {
      try {
        await stop("SIGTERM", 5000);
      } finally {
        running.delete(server);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return server;
}
