// twemproxy (Debian's nutcracker) for tests and benchmarks: one memcached pool in front of servers
// the caller started, on 127.0.0.1 with ephemeral ports.
//
//   startTwemproxy({ servers, hash, distribution })
//     -> temp dir: nutcracker.yml (one pool) + nutcracker.log (-o)
//     -> nutcracker -c nutcracker.yml -s <stats port> -a 127.0.0.1 -o nutcracker.log
//     -> resolves once the pool's listen port accepts a connection
//
// A test calls `afterAll(stopAllTwemproxy)` (beside `stopAll` for the memcached servers): the
// process registry in servers.ts is private to it, so these processes have their own. A
// process-exit hook SIGKILLs whatever is left if the runner dies first.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killOnExit, stopEach } from "./processes.ts";
import { freePort, HOST, requireBinary } from "./servers.ts";
import { pollUntil, withDeadline } from "./wait.ts";

export const NUTCRACKER = "/usr/sbin/nutcracker";

/** A server in the pool: its config line is `host:port:weight [name]`. */
export interface TwemproxyBackend {
  host: string;
  port: number;
  /** Default 1. */
  weight?: number;
  /** The ketama identity; without it twemproxy hashes "host:port" ("host" when the port is 11211). */
  name?: string;
}

export interface TwemproxyOptions {
  servers: readonly TwemproxyBackend[];
  /** `hash:` (default fnv1a_64, twemproxy's default). */
  hash?: string;
  /** `distribution:` (default ketama). */
  distribution?: "ketama" | "modula" | "random";
  /**
   * More pool settings, written as `key: value` (e.g. timeout, server_connections, preconnect).
   * auto_eject_hosts defaults to false here, so a key's server never changes during a test.
   */
  pool?: Record<string, string | number | boolean>;
  /** How long to wait for the pool to accept connections (default 10 s). */
  deadlineMs?: number;
}

/** A running nutcracker with one pool. */
export interface TwemproxyProcess {
  readonly name: "nutcracker";
  readonly host: string;
  /** The pool's listen port (memcached protocol). */
  readonly port: number;
  /** The stats port (JSON stats on connect). */
  readonly statsPort: number;
  readonly pid: number;
  /** The config file nutcracker was started with. */
  readonly configPath: string;
  /** What nutcracker wrote to its log file so far. */
  log(): string;
  stderr(): string;
  /** Exit code once the process has exited (null if a signal killed it); undefined while running. */
  exitCode(): number | null | undefined;
  /**
   * Sends `signal` (default SIGTERM), waits up to `deadlineMs` (default 10 s) for the exit and
   * removes the temp dir. Returns the exit code, or null if the signal killed the process. Past
   * the deadline it SIGKILLs and throws.
   */
  stop(signal?: NodeJS.Signals, deadlineMs?: number): Promise<number | null>;
}

const running = new Set<TwemproxyProcess>();

/** Stops every nutcracker still running. Use as `afterAll(stopAllTwemproxy)`. */
export async function stopAllTwemproxy(): Promise<void> {
  await stopEach(running, (proxy) => proxy.stop("SIGTERM", 5000), "nutcracker processes");
}

/** The YAML nutcracker reads for one pool named "gravity". */
export function twemproxyConfig(options: TwemproxyOptions, listenPort: number): string {
  if (options.servers.length === 0) throw new Error("twemproxy needs at least one server");
  const settings: Record<string, string | number | boolean> = {
    listen: `${HOST}:${listenPort}`,
    hash: options.hash ?? "fnv1a_64",
    distribution: options.distribution ?? "ketama",
    auto_eject_hosts: false,
    ...options.pool,
  };
  const lines = ["gravity:"];
  for (const [key, value] of Object.entries(settings)) lines.push(`  ${key}: ${value}`);
  lines.push("  servers:");
  for (const server of options.servers) {
    if (server.name !== undefined && !/^[^\s#:]+$/.test(server.name)) {
      throw new Error(`twemproxy server name ${JSON.stringify(server.name)} must be one word`);
    }
    const name = server.name === undefined ? "" : ` ${server.name}`;
    lines.push(`   - ${server.host}:${server.port}:${server.weight ?? 1}${name}`);
  }
  return `${lines.join("\n")}\n`;
}

function requireNutcracker(): string {
  try {
    return requireBinary(NUTCRACKER);
  } catch (error) {
    throw new Error(`${(error as Error).message} (Debian package nutcracker: apt-get install nutcracker)`);
  }
}

// Reads a child's output stream into `sink`.
async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
  sink.text += decoder.decode();
}

/**
 * Starts nutcracker with one pool over `options.servers` on free loopback ports, retrying if
 * another process takes a port first. Rejects with nutcracker's log if it exits before accepting.
 */
export async function startTwemproxy(options: TwemproxyOptions): Promise<TwemproxyProcess> {
  const binary = requireNutcracker();
  const deadlineMs = options.deadlineMs ?? 10_000;
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const statsPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "gravity-twemproxy-"));
    const configPath = join(dir, "nutcracker.yml");
    const logPath = join(dir, "nutcracker.log");
    writeFileSync(configPath, twemproxyConfig(options, port));
    const proc = Bun.spawn([binary, "-c", configPath, "-s", String(statsPort), "-a", HOST, "-o", logPath], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    killOnExit(proc);
    const err = { text: "" };
    const drained = collect(proc.stderr, err);
    const log = () => {
      try {
        return readFileSync(logPath, "utf8");
      } catch {
        return "";
      }
    };
    const isRunning = () => proc.exitCode === null && proc.signalCode === null;
    const proxy: TwemproxyProcess = {
      name: "nutcracker",
      host: HOST,
      port,
      statsPort,
      pid: proc.pid,
      configPath,
      log,
      stderr: () => err.text,
      exitCode: () => (isRunning() ? undefined : proc.exitCode),
      async stop(signal: NodeJS.Signals = "SIGTERM", stopDeadlineMs = 10_000) {
        if (isRunning()) proc.kill(signal);
        try {
          await withDeadline(proc.exited, stopDeadlineMs, `nutcracker (pid ${proc.pid}) to exit`);
        } catch (error) {
          proc.kill("SIGKILL");
          await proc.exited;
          throw error;
        } finally {
          running.delete(proxy);
          await drained;
          rmSync(dir, { recursive: true, force: true });
        }
        return proc.exitCode;
      },
    };
    running.add(proxy);
    try {
      await pollUntil(
        async () => {
          if (!isRunning()) {
            await drained;
            throw new Error(
              `nutcracker exited with code ${proc.exitCode} before accepting on port ${port}: ` +
                `${err.text.trim()}\n${log().trim()}\nconfig:\n${readFileSync(configPath, "utf8")}`,
            );
          }
          try {
            const socket = await Bun.connect({ hostname: HOST, port, socket: { data() {} } });
            socket.end();
            return true;
          } catch {
            return undefined;
          }
        },
        { deadlineMs, what: `nutcracker to accept connections on ${HOST}:${port}` },
      );
      return proxy;
    } catch (error) {
      const raced = /address already in use/i.test(log());
      await proxy.stop("SIGKILL").catch(() => {});
      if (!raced || attempt === attempts) throw error;
    }
  }
}
