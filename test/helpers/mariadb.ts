// MariaDB from the distribution (Debian mariadb-server, 10.11) for tests: one server on 127.0.0.1
// with an ephemeral port and a temp data dir (the process: database-process.ts).
//
//   startMariadb() -> temp dir (owned by the mysql user when the tests run as root: mariadbd runs
//                     as root only if told --user=root; the package's own account is the safer one)
//                  -> mariadb-install-db --datadir dir/data
//                  -> mariadbd --datadir dir/data --port P --bind-address 127.0.0.1 --init-file ...
//                     (the init file creates the passwordless superuser gravity@127.0.0.1)
//                  -> resolves once it logs "ready for connections"
//   createDatabase(name) -> CREATE DATABASE; returns the database's mysql:// URL
//   stop() / restart() -> an outage: shutdown (SIGTERM), then the same port and data again
//   destroy()      -> stop, then the temp dir is removed
//
// A test calls `afterAll(stopAllMariadb)`. A process-exit hook SIGKILLs whatever is left if the
// runner dies first.
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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

export const MARIADBD = "/usr/sbin/mariadbd";
export const MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db";
const PACKAGE_HINT = "Debian package mariadb-server: apt-get install mariadb-server";
/** The superuser the init file creates: no password, from loopback only. */
const USER = "gravity";

/** A running MariaDB server; `url` is `mysql://gravity@127.0.0.1:port/mysql`. */
export type MariadbServer = SqlServer;

/** Throws naming the Debian package if a MariaDB binary is missing: a missing server fails, never skips. */
export function requireMariadb(): void {
  for (const binary of [MARIADBD, MARIADB_INSTALL_DB])
    if (!existsSync(binary)) throw new Error(`required server binary ${binary} is missing (${PACKAGE_HINT})`);
}

const running = new Set<MariadbServer>();

/** Stops every MariaDB started here and removes its data. Use as `afterAll(stopAllMariadb)`. */
export async function stopAllMariadb(): Promise<void> {
  await stopEach(running, (server) => server.destroy(), "MariaDB servers");
}

// Small and fast rather than durable: a test's data lives as long as the test.
const SERVER_OPTIONS = [
  "--innodb-log-file-size=4M",
  "--innodb-buffer-pool-size=16M",
  "--innodb-flush-log-at-trx-commit=0",
  "--skip-log-bin",
  "--skip-name-resolve",
];

/**
 * Initialises a data dir in a temp dir and starts MariaDB on a free loopback port; resolves once
 * it accepts connections, within `deadlineMs` (default 30 s, mariadb-install-db included).
 */
export async function startMariadb(options: { deadlineMs?: number } = {}): Promise<MariadbServer> {
  requireMariadb();
  const user = serviceUser("mysql", PACKAGE_HINT);
  const deadlineMs = options.deadlineMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), "gravity-mariadb-"));
  const dataDir = join(dir, "data");
  const initFile = join(dir, "init.sql");
  // Runs at every start, so it is idempotent; mariadb-install-db's root is reachable by socket only.
  writeFileSync(
    initFile,
    `CREATE USER IF NOT EXISTS '${USER}'@'${HOST}';\n` +
      `GRANT ALL PRIVILEGES ON *.* TO '${USER}'@'${HOST}' WITH GRANT OPTION;\n`,
  );
  if (user !== undefined) {
    chownSync(dir, user.uid, user.gid);
    chownSync(initFile, user.uid, user.gid);
  }
  // MYSQL_* variables (MYSQL_TCP_PORT, MYSQL_UNIX_PORT...) would change where the server listens.
  const env = envWithout(["MYSQL", "MARIADB"], { LC_ALL: "C" });
  // --no-defaults first: /etc/mysql's configuration is the system server's, not this one's.
  const asUser = user === undefined ? [] : ["--user=mysql"];
  try {
    const init = Bun.spawn(
      [
        MARIADB_INSTALL_DB,
        "--no-defaults",
        `--datadir=${dataDir}`,
        ...asUser,
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        ...SERVER_OPTIONS,
      ],
      { cwd: dir, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    killOnExit(init);
    const code = await withDeadline(init.exited, deadlineMs, "mariadb-install-db to finish");
    if (code !== 0) {
      const output = (await new Response(init.stdout).text()) + (await new Response(init.stderr).text());
      throw new Error(`mariadb-install-db exited with code ${code}: ${output.trim()}`);
    }
    const database = await startDatabaseProcess({
      what: "mariadbd",
      dir,
      args: (port) => [
        MARIADBD,
        "--no-defaults",
        `--datadir=${dataDir}`,
        ...asUser,
        `--bind-address=${HOST}`,
        `--port=${port}`,
        `--socket=${join(dir, "mariadb.sock")}`,
        `--pid-file=${join(dir, "mariadb.pid")}`,
        `--init-file=${initFile}`,
        "--max-connections=50",
        ...SERVER_OPTIONS,
      ],
      // mariadbd switches to --user itself; it must start as root to do so.
      user: undefined,
      env,
      ready: /ready for connections/,
      stopSignal: "SIGTERM",
      deadlineMs,
    });
    return sqlServer(database, {
      urlOf: (name) => `mysql://${USER}@${HOST}:${database.port}/${name}`,
      defaultName: "mysql",
      registry: running,
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
