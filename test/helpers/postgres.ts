// PostgreSQL from the distribution (Debian postgresql, 15) for tests: one server on 127.0.0.1 with
// an ephemeral port, a temp data dir and trust authentication.
//
//   startPostgres() -> temp dir (owned by the postgres user when the tests run as root: initdb and
//                      postgres refuse to run as root)
//                   -> initdb -D dir/data -U postgres --auth=trust
//                   -> postgres -D dir/data -p P -k dir -c listen_addresses=127.0.0.1
//                   -> resolves once it logs "ready to accept connections"
//   createDatabase(name) -> CREATE DATABASE; returns the database's postgres:// URL
//   stop()          -> fast shutdown (SIGINT), then the temp dir is removed
//
// A test calls `afterAll(stopAllPostgres)`. A process-exit hook SIGKILLs whatever is left if the
// runner dies first.
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SQL } from "bun";
import { killOnExit, stopEach } from "./processes.ts";
import { freePort, HOST } from "./servers.ts";
import { withDeadline } from "./wait.ts";

const PG_ROOT = "/usr/lib/postgresql";
const PACKAGE_HINT = "Debian package postgresql: apt-get install postgresql";

/** A running PostgreSQL server. */
export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** `postgres://postgres@127.0.0.1:port/postgres`: the superuser on the default database. */
  readonly url: string;
  /** What the server logged so far (its stderr), the last 256 KiB. */
  log(): string;
  /** Creates database `name` (an identifier: letters, digits, underscores) and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Fast shutdown (SIGINT; SIGKILL past `deadlineMs`, default 10 s), then removes the data dir. */
  stop(deadlineMs?: number): Promise<void>;
}

/** The bin directory of the newest installed PostgreSQL; throws naming the Debian package if none. */
export function requirePostgres(): string {
  const versions = existsSync(PG_ROOT)
    ? readdirSync(PG_ROOT)
        .filter((name) => /^\d+$/.test(name) && existsSync(join(PG_ROOT, name, "bin/postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(`required server binary ${PG_ROOT}/<version>/bin/postgres is missing (${PACKAGE_HINT})`);
  }
  const bin = join(PG_ROOT, newest, "bin");
  for (const tool of ["initdb", "postgres"]) {
    if (!existsSync(join(bin, tool)))
      throw new Error(`required server binary ${join(bin, tool)} is missing (${PACKAGE_HINT})`);
  }
  return bin;
}

// The uid and gid to run PostgreSQL as: the postgres user when we are root, else ourselves.
function identity(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  const [, , uid, gid] = line?.split(":") ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error(`tests run as root and there is no postgres user to run PostgreSQL as (${PACKAGE_HINT})`);
  }
  return { uid: Number(uid), gid: Number(gid) };
}

const LOG_LIMIT = 256 * 1024;
const running = new Set<PostgresServer>();

/** Stops every PostgreSQL started here and removes its data. Use as `afterAll(stopAllPostgres)`. */
export async function stopAllPostgres(): Promise<void> {
  await stopEach(running, (server) => server.stop(), "PostgreSQL servers");
}

/**
 * Initialises a cluster in a temp dir and starts PostgreSQL on a free loopback port (retrying if
 * another process takes the port first); resolves once it accepts connections, within
 * `deadlineMs` (default 30 s, initdb included).
 */
export async function startPostgres(options: { deadlineMs?: number } = {}): Promise<PostgresServer> {
  const bin = requirePostgres();
  const user = identity();
  const deadlineMs = options.deadlineMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), "gravity-postgres-"));
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  const dataDir = join(dir, "data");
  try {
    const init = Bun.spawn(
      [join(bin, "initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
      { ...user, cwd: dir, env: pgEnv(), stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    killOnExit(init);
    const code = await withDeadline(init.exited, deadlineMs, "initdb to finish");
    if (code !== 0) {
      const output = (await new Response(init.stdout).text()) + (await new Response(init.stderr).text());
      throw new Error(`initdb exited with code ${code}: ${output.trim()}`);
    }
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      try {
        return await launch(bin, dir, dataDir, port, user, deadlineMs);
      } catch (error) {
        const raced = error instanceof Error && /already in use/i.test(error.message);
        if (!raced || attempt === 5) throw error;
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

// The environment for initdb and postgres: PG* variables would change what they do.
function pgEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env))
    if (value !== undefined && !key.startsWith("PG")) env[key] = value;
  env.LC_ALL = "C";
  return env;
}

async function launch(
  bin: string,
  dir: string,
  dataDir: string,
  port: number,
  user: { uid: number; gid: number } | undefined,
  deadlineMs: number,
): Promise<PostgresServer> {
  const args = [
    join(bin, "postgres"),
    "-D",
    dataDir,
    "-p",
    String(port),
    "-k",
    dir,
    "-c",
    `listen_addresses=${HOST}`,
    "-c",
    "fsync=off",
    "-c",
    "max_connections=50",
  ];
  const child = Bun.spawn(args, {
    ...user,
    cwd: dir,
    env: pgEnv(),
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  killOnExit(child);
  let logText = "";
  let onLog = () => {};
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      logText += decoder.decode(chunk, { stream: true });
      if (logText.length > LOG_LIMIT) logText = logText.slice(-LOG_LIMIT);
      onLog();
    }
  })();
  const ready = new Promise<void>((resolve, reject) => {
    onLog = () => {
      if (/database system is ready to accept connections/.test(logText)) resolve();
    };
    void child.exited.then(async (code) => {
      await drained;
      reject(new Error(`postgres exited with code ${code} before accepting connections: ${logText.trim()}`));
    });
  });
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const url = `postgres://postgres@${HOST}:${port}/postgres`;
  const server: PostgresServer = {
    host: HOST,
    port,
    pid: child.pid,
    url,
    log: () => logText,
    async createDatabase(name) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const sql = new SQL({ url, max: 1 });
      try {
        await sql.unsafe(`CREATE DATABASE ${name}`);
      } finally {
        await sql.close();
      }
      return `postgres://postgres@${HOST}:${port}/${name}`;
    },
    async stop(stopDeadlineMs = 10_000) {
      try {
        if (isRunning()) child.kill("SIGINT"); // fast shutdown: does not wait for clients to leave
        try {
          await withDeadline(child.exited, stopDeadlineMs, `postgres (pid ${child.pid}) to exit`);
        } catch (error) {
          child.kill("SIGKILL");
          await child.exited;
          throw error;
        }
        await drained;
      } finally {
        running.delete(server);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  running.add(server);
  try {
    await withDeadline(ready, deadlineMs, `postgres to accept connections on ${HOST}:${port}`);
    return server;
  } catch (error) {
    running.delete(server);
    child.kill("SIGKILL");
    await child.exited;
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`${message}; log: ${logText.slice(-4000).trim()}`, { cause: error });
  }
}
