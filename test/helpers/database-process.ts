// What the database helpers (postgres.ts, mariadb.ts) share: a server process in a temp dir on an
// ephemeral loopback port, its log kept, readiness read from the log, and an outage that keeps the
// data (stop, then restart on the same port and data dir).
//
//   startDatabaseProcess(spec) -> free port -> spawn spec.args(port) -> "ready" line in the log
//                                 (a port taken meanwhile: another port, up to 5 times)
//   stop()    -> spec.stopSignal; SIGKILL past the deadline; the data dir stays
//   restart() -> the same args (port, data dir) again; resolves on a new "ready" line
//   destroy() -> stop, then the temp dir is removed
import { readFileSync, rmSync } from "node:fs";
import { SQL, type Subprocess } from "bun";
import { endProcess, killOnExit } from "./processes.ts";
import { freePort, HOST } from "./servers.ts";
import { withDeadline } from "./wait.ts";

/** The uid and gid a server runs as. */
export interface ServiceUser {
  uid: number;
  gid: number;
}

/**
 * The account `name` (from /etc/passwd) when the tests run as root, else undefined (run as
 * ourselves). Database servers refuse root, or need it named on the command line; their Debian
 * packages create a service account (postgres, mysql). Throws naming `packageHint` if it is missing.
 */
export function serviceUser(name: string, packageHint: string): ServiceUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${name}:`));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(`tests run as root and there is no ${name} user to run the server as (${packageHint})`);
  }
  return { uid: Number(uid), gid: Number(gid) };
}

/** process.env without the variables whose names start with one of `prefixes`, plus `extra`. */
export function envWithout(
  prefixes: readonly string[],
  extra: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env))
    if (value !== undefined && !prefixes.some((prefix) => key.startsWith(prefix))) env[key] = value;
  return { ...env, ...extra };
}

/** How to run one database server. */
export interface DatabaseProcessSpec {
  /** The server's name in messages ("postgres", "mariadbd"). */
  what: string;
  /** The temp dir that holds everything of this server; destroy() removes it. */
  dir: string;
  /** The command line for a server on `port`. */
  args: (port: number) => string[];
  user: ServiceUser | undefined;
  env: Record<string, string>;
  /** A log line that says the server accepts connections. */
  ready: RegExp;
  /** The signal for a fast, clean shutdown. */
  stopSignal: NodeJS.Signals;
  /** Within this long (ms) the server must be ready, at start and at each restart. */
  deadlineMs: number;
}

/** A database server process: running, or stopped with its data kept. */
export interface DatabaseProcess {
  readonly port: number;
  /** The pid of the current process; undefined while stopped. */
  pid(): number | undefined;
  running(): boolean;
  /** What the server logged over every run (its stderr), the last 256 KiB. */
  log(): string;
  /** Ends the process (SIGKILL past `deadlineMs`, default 10 s); keeps the data dir. */
  stop(deadlineMs?: number): Promise<void>;
  /** Starts the server again on the same port and data dir; resolves once it is ready. */
  restart(): Promise<void>;
  /** Stops the server and removes its temp dir. */
  destroy(): Promise<void>;
}

/** A SQL server the tests started (PostgreSQL or MariaDB), as the loader tests use either. */
export interface SqlServer extends DatabaseProcess {
  readonly host: string;
  /** A superuser's URL on the server's default database. */
  readonly url: string;
  /** Creates database `name` (letters, digits, underscores) and returns its URL for that superuser. */
  createDatabase(name: string): Promise<string>;
}

/**
 * `database` as a SqlServer: `urlOf(name)` is a superuser's URL on database `name`, `defaultName`
 * the database that exists from the start. It is in `registry` until destroyed.
 */
export function sqlServer(
  database: DatabaseProcess,
  options: { urlOf: (name: string) => string; defaultName: string; registry: Set<SqlServer> },
): SqlServer {
  const url = options.urlOf(options.defaultName);
  const server: SqlServer = {
    ...database,
    host: HOST,
    url,
    async createDatabase(name) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const sql = new SQL({ url, max: 1 });
      try {
        await sql.unsafe(`CREATE DATABASE ${name}`);
      } finally {
        await sql.close();
      }
      return options.urlOf(name);
    },
    async destroy() {
      options.registry.delete(server);
      await database.destroy();
    },
  };
  options.registry.add(server);
  return server;
}

const LOG_LIMIT = 256 * 1024;
const PORT_TAKEN = /already in use|Can't start server: Bind on TCP\/IP port/i;

/** Starts the server of `spec` on a free loopback port; see the file comment. */
export async function startDatabaseProcess(spec: DatabaseProcessSpec): Promise<DatabaseProcess> {
  for (let attempt = 1; ; attempt++) {
    const server = databaseProcess(spec, await freePort());
    try {
      await server.restart();
      return server;
    } catch (error) {
      const raced = PORT_TAKEN.test(server.log());
      if (!raced || attempt === 5) throw error;
    }
  }
}

function databaseProcess(spec: DatabaseProcessSpec, port: number): DatabaseProcess {
  let proc: Subprocess<"ignore", "ignore", "pipe"> | undefined;
  let drained: Promise<void> = Promise.resolve();
  let logText = "";
  const isRunning = () => proc !== undefined && proc.exitCode === null && proc.signalCode === null;

  const stop = async (deadlineMs = 10_000) => {
    const child = proc;
    if (child === undefined) return;
    try {
      await endProcess(child, spec.stopSignal, deadlineMs, spec.what);
    } finally {
      await drained;
      proc = undefined;
    }
  };

  const restart = async () => {
    await stop();
    const child = Bun.spawn(spec.args(port), {
      ...spec.user,
      cwd: spec.dir,
      env: spec.env,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    proc = child;
    killOnExit(child);
    let runLog = ""; // this run's log: an earlier run's "ready" line does not count
    let onLog = () => {};
    drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        const text = decoder.decode(chunk, { stream: true });
        runLog = (runLog + text).slice(-LOG_LIMIT);
        logText = (logText + text).slice(-LOG_LIMIT);
        onLog();
      }
    })();
    const ready = new Promise<void>((resolve, reject) => {
      onLog = () => {
        if (spec.ready.test(runLog)) resolve();
      };
      void child.exited.then(async (code) => {
        await drained;
        reject(new Error(`${spec.what} exited with code ${code} before accepting connections`));
      });
    });
    try {
      await withDeadline(ready, spec.deadlineMs, `${spec.what} to accept connections on port ${port}`);
    } catch (error) {
      await stop().catch(() => {});
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(`${message}; log: ${runLog.slice(-4000).trim()}`, { cause: error });
    }
  };

  return {
    port,
    pid: () => (isRunning() ? proc?.pid : undefined),
    running: isRunning,
    log: () => logText,
    stop,
    restart,
    async destroy() {
      try {
        await stop(5000);
      } finally {
        rmSync(spec.dir, { recursive: true, force: true });
      }
    },
  };
}
