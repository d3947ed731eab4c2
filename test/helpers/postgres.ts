// PostgreSQL from the distribution (Debian postgresql, 15) for tests: one server on 127.0.0.1 with
// an ephemeral port, a temp data dir and trust authentication (the process: database-process.ts).
//
//   startPostgres() -> temp dir (owned by the postgres user when the tests run as root: initdb and
//                      postgres refuse to run as root)
//                   -> initdb -D dir/data -U postgres --auth=trust
//                   -> postgres -D dir/data -p P -k dir -c listen_addresses=127.0.0.1
//                   -> resolves once it logs "ready to accept connections"
//   createDatabase(name) -> CREATE DATABASE; returns the database's postgres:// URL
//   stop() / restart() -> an outage: fast shutdown (SIGINT), then the same port and data again
//   destroy()       -> stop, then the temp dir is removed
//
// A test calls `afterAll(stopAllPostgres)`. A process-exit hook SIGKILLs whatever is left if the
// runner dies first.
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  envWithout,
  type SqlServer,
  serviceUser,
  sqlServer,
  startDatabaseProcess,
} from "./database-process.ts";
import { killOnExit, stopEach } from "./processes.ts";
import { HOST } from "./servers.ts";
import { withDeadline } from "./wait.ts";

const PG_ROOT = "/usr/lib/postgresql";
const PACKAGE_HINT = "Debian package postgresql: apt-get install postgresql";

/** A running PostgreSQL server; `url` is `postgres://postgres@127.0.0.1:port/postgres`. */
export type PostgresServer = SqlServer;

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

const running = new Set<PostgresServer>();

/** Stops every PostgreSQL started here and removes its data. Use as `afterAll(stopAllPostgres)`. */
export async function stopAllPostgres(): Promise<void> {
  await stopEach(running, (server) => server.destroy(), "PostgreSQL servers");
}

/**
 * Initialises a cluster in a temp dir and starts PostgreSQL on a free loopback port; resolves once
 * it accepts connections, within `deadlineMs` (default 30 s, initdb included).
 */
export async function startPostgres(options: { deadlineMs?: number } = {}): Promise<PostgresServer> {
  const bin = requirePostgres();
  const user = serviceUser("postgres", PACKAGE_HINT);
  const deadlineMs = options.deadlineMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), "gravity-postgres-"));
  if (user !== undefined) chownSync(dir, user.uid, user.gid);
  const dataDir = join(dir, "data");
  // PG* variables would change what initdb and postgres do.
  const env = envWithout(["PG"], { LC_ALL: "C" });
  try {
    const init = Bun.spawn(
      [join(bin, "initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"],
      { ...user, cwd: dir, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    killOnExit(init);
    const code = await withDeadline(init.exited, deadlineMs, "initdb to finish");
    if (code !== 0) {
      const output = (await new Response(init.stdout).text()) + (await new Response(init.stderr).text());
      throw new Error(`initdb exited with code ${code}: ${output.trim()}`);
    }
    const database = await startDatabaseProcess({
      what: "postgres",
      dir,
      args: (port) => [
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
      ],
      user,
      env,
      ready: /database system is ready to accept connections/,
      stopSignal: "SIGINT", // fast shutdown: does not wait for clients to leave
      deadlineMs,
    });
    return sqlServer(database, {
      urlOf: (name) => `postgres://postgres@${HOST}:${database.port}/${name}`,
      defaultName: "postgres",
      registry: running,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
