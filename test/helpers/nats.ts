// nats-server (Debian's nats-server package) for tests, on 127.0.0.1 with an ephemeral port.
//
//   startNats() -> nats-server -a 127.0.0.1 -p <free port> -> resolves once the port accepts
//   server.stop()    SIGTERM, wait for the exit (SIGKILL past a deadline)
//   server.restart() the same command on the same port: clients reconnect to it by themselves
//   startNats({ config }) -> nats-server -c <file>: `listen` on the free port, then `config`
//                    (e.g. a tls {} block with verify: true, an authorization {} block)
//
// A test file calls `afterAll(stopAllNats)`: the process registry in servers.ts is private to it,
// so these processes have their own (as twemproxy.ts does). A process-exit hook SIGKILLs whatever
// is left if the runner dies first.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { killOnExit } from "./processes.ts";
import { freePort, HOST, requireBinary } from "./servers.ts";
import { pollUntil, withDeadline } from "./wait.ts";

export const NATS_SERVER = "/usr/sbin/nats-server";

/** A running (or stopped, restartable) nats-server. */
export interface NatsServer {
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:port", what a NATS client's `servers` takes. */
  readonly url: string;
  /** Whether the process is running. */
  running(): boolean;
  /** Everything the current process wrote to stderr (nats-server logs there). */
  stderr(): string;
  /** Stops the process (SIGTERM; SIGKILL after `deadlineMs`, default 5 s). Idempotent. */
  stop(deadlineMs?: number): Promise<void>;
  /**
   * Starts it again on the same port once stopped; resolves when it accepts connections. `config`
   * replaces the configuration text it was started with (e.g. other users).
   */
  restart(deadlineMs?: number, config?: string): Promise<void>;
}

const all = new Set<NatsServer>();

/** Stops every nats-server these helpers started. Use as `afterAll(stopAllNats)`. */
export async function stopAllNats(): Promise<void> {
  await Promise.all([...all].map((server) => server.stop()));
  all.clear();
}

// A missing binary: servers.ts's requireBinary names only its own packages, so say which one here.
function requireNatsServer(): string {
  try {
    return requireBinary(NATS_SERVER);
  } catch {
    throw new Error(
      `required server binary ${NATS_SERVER} is missing (Debian package nats-server: apt-get install nats-server)`,
    );
  }
}

interface Running {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  err: { text: string };
}

// With `config` (nats-server configuration text), the server reads a file holding it after its listen line.
function spawnNats(port: number, config: string | undefined): Running {
  let args = ["-a", HOST, "-p", String(port)];
  if (config !== undefined) {
    const file = join(mkdtempSync(join(tmpdir(), "gravity-nats-")), "nats.conf");
    writeFileSync(file, `listen: "${HOST}:${port}"\n${config}\n`);
    args = ["-c", file];
  }
  const proc = Bun.spawn([requireNatsServer(), ...args], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  killOnExit(proc);
  const err = { text: "" };
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) err.text += decoder.decode(chunk, { stream: true });
  })();
  return { proc, err };
}

async function waitAccepting(port: number, running: Running, deadlineMs: number): Promise<void> {
  await pollUntil(
    async () => {
      if (running.proc.exitCode !== null || running.proc.signalCode !== null) {
        throw new Error(
          `nats-server exited with code ${running.proc.exitCode} before accepting on port ${port}: ${running.err.text.trim()}`,
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
    { deadlineMs, what: `nats-server to accept connections on ${HOST}:${port}` },
  );
}

/**
 * Starts nats-server on a free loopback port, retrying if another process takes the port first.
 * `config`: configuration text for nats-server -c (TLS, authorization), the listen line added.
 */
export async function startNats(options: { deadlineMs?: number; config?: string } = {}): Promise<NatsServer> {
  const deadlineMs = options.deadlineMs ?? 10_000;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let current: Running | null = spawnNats(port, options.config);
    try {
      await waitAccepting(port, current, deadlineMs);
    } catch (error) {
      current.proc.kill("SIGKILL");
      await current.proc.exited;
      const raced = /address already in use/i.test(current.err.text);
      if (!raced || attempt === 5) throw error;
      continue;
    }
    const isRunning = () =>
      current !== null && current.proc.exitCode === null && current.proc.signalCode === null;
    const server: NatsServer = {
      host: HOST,
      port,
      url: `${HOST}:${port}`,
      running: isRunning,
      stderr: () => current?.err.text ?? "",
      async stop(stopDeadlineMs = 5000) {
        if (current === null) return;
        const proc = current.proc;
        if (isRunning()) proc.kill("SIGTERM");
        try {
          await withDeadline(proc.exited, stopDeadlineMs, `nats-server (pid ${proc.pid}) to exit`);
        } catch {
          proc.kill("SIGKILL");
          await proc.exited;
        }
        current = null;
      },
      async restart(restartDeadlineMs = deadlineMs, config = options.config) {
        if (isRunning()) throw new Error(`nats-server on port ${port} is still running`);
        current = spawnNats(port, config);
        await waitAccepting(port, current, restartDeadlineMs);
      },
    };
    all.add(server);
    return server;
  }
}
