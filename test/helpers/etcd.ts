// etcd from the distribution (Debian etcd-server, v3.4) for tests: one member on 127.0.0.1 with
// ephemeral client and peer ports and a temp data dir.
//
//   startEtcd() -> temp dir -> etcd --data-dir dir/data --listen-client-urls http://127.0.0.1:C
//                                   --listen-peer-urls http://127.0.0.1:P ...
//               -> resolves once GET /health says {"health":"true"}
//   stop()      -> the process ends, the data dir stays (an outage)
//   restart()   -> the same ports and data dir again (the same cluster, its keys and leases);
//                  restart({ wipe: true }) empties the data dir first (a new, empty cluster)
//   destroy()   -> stop and remove the temp dir
//
// A test calls `afterAll(stopAllEtcd)`: the process registry in servers.ts is private to it, so
// these processes have their own. A process-exit hook SIGKILLs whatever is left if the runner dies.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { killOnExit, stopEach } from "./processes.ts";
import { freePort, HOST } from "./servers.ts";
import { DeadlineError, pollUntil, withDeadline } from "./wait.ts";

export const ETCD = "/usr/bin/etcd";

/** A running (or stopped, restartable) single-member etcd. */
export interface EtcdServer {
  /** "http://127.0.0.1:port": what the gravity discovery modules take as an endpoint. */
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
   * healthy (within `deadlineMs`, default 15 s). `wipe` empties the data dir first: a new cluster.
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
  await stopEach(running, (server) => server.destroy(), "etcd processes");
}

/**
 * Starts a one-member etcd on free loopback ports (retrying if another process takes a port
 * first) and resolves once it reports itself healthy, within `deadlineMs` (default 15 s).
 */
export async function startEtcd(options: { deadlineMs?: number } = {}): Promise<EtcdServer> {
  const binary = requireEtcd();
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    if (clientPort === peerPort) continue;
    const dir = mkdtempSync(join(tmpdir(), "gravity-etcd-"));
    const server = etcdServer(binary, dir, clientPort, peerPort);
    try {
      await server.restart({ deadlineMs: options.deadlineMs });
      return server;
    } catch (error) {
      const raced = /address already in use/i.test(server.log());
      await server.destroy().catch(() => {});
      if (!raced || attempt === attempts) throw error;
    }
  }
}

function etcdServer(binary: string, dir: string, clientPort: number, peerPort: number): EtcdServer {
  const clientUrl = `http://${HOST}:${clientPort}`;
  const peerUrl = `http://${HOST}:${peerPort}`;
  const dataDir = join(dir, "data");
  const args = [
    binary,
    "--name",
    "default",
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
    `default=${peerUrl}`,
    "--initial-cluster-state",
    "new",
  ];
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
    if (isRunning()) child.kill(signal);
    try {
      await withDeadline(child.exited, deadlineMs, `etcd (pid ${child.pid}) to exit`);
    } catch (error) {
      child.kill("SIGKILL");
      await child.exited;
      throw error;
    } finally {
      await drained;
      proc = undefined;
    }
  };

  const server: EtcdServer = {
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
              const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
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
