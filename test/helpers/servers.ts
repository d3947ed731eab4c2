// Real servers for tests: memcached from the distribution and gravity itself, on 127.0.0.1 with
// ephemeral ports. Every process started here is registered; a test file calls
// `afterAll(stopAll)` so servers are stopped even when a test fails, and a process-exit hook
// SIGKILLs whatever is left if the runner dies first.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { killOnExit, stopEach } from "./processes.ts";
import { DeadlineError, pollUntil, withDeadline } from "./wait.ts";

export const HOST = "127.0.0.1";
/** Timeout for a test (or hook) that starts servers: bun's default is 5 s, and bunfig cannot change it. */
export const SERVER_TEST_MS = 30_000;
export const REPO_ROOT = resolve(import.meta.dir, "../..");
export const COMPILED_GRAVITY = join(REPO_ROOT, "dist/gravity");
const NATIVE_ADDON = join(REPO_ROOT, "build/Release/gravity.node");
const MAIN_SOURCE = join(REPO_ROOT, "src/cli/main.ts");

/** The Debian package that ships each server binary the tests run (.ci/run installs them). */
const PACKAGE_OF: Record<string, string> = {
  "/usr/bin/memcached": "memcached",
  "/usr/bin/memccapable": "libmemcached-tools",
  "/usr/bin/memcaslap": "libmemcached-tools",
  "/usr/bin/memccat": "libmemcached-tools",
  "/usr/bin/memccp": "libmemcached-tools",
  "/usr/bin/memcexist": "libmemcached-tools",
  "/usr/bin/memcflush": "libmemcached-tools",
  "/usr/bin/memcping": "libmemcached-tools",
  "/usr/bin/memcrm": "libmemcached-tools",
  "/usr/bin/memcstat": "libmemcached-tools",
  "/usr/bin/memctouch": "libmemcached-tools",
};
export const MEMCACHED = "/usr/bin/memcached";
export const MEMCCAPABLE = "/usr/bin/memccapable";

/** Returns `path`, or throws an error naming the Debian package to install: a missing binary fails, never skips. */
export function requireBinary(path: string): string {
  if (existsSync(path)) return path;
  const pkg = PACKAGE_OF[path];
  const hint = pkg === undefined ? "" : ` (Debian package ${pkg}: apt-get install ${pkg})`;
  throw new Error(`required server binary ${path} is missing${hint}`);
}

/** A port that was free a moment ago (bind 0, read, close); a caller must still cope with a race. */
export async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** A running server process started by these helpers. */
export interface ServerProcess {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** Everything the process printed so far. */
  stdout(): string;
  stderr(): string;
  /** Exit code once the process has exited (null if a signal killed it); undefined while running. */
  exitCode(): number | null | undefined;
  /** Sends a signal without waiting. */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the first match of `pattern` in stdout; rejects if the process exits first or after the deadline. */
  waitForStdout(pattern: RegExp, deadlineMs?: number): Promise<RegExpExecArray>;
  /** Waits up to `deadlineMs` for the exit; returns the exit code, or null if a signal killed it. */
  waitExit(deadlineMs?: number): Promise<number | null>;
  /**
   * Sends `signal` (default SIGTERM) and waits up to `deadlineMs` (default 10 s) for the exit.
   * Returns the exit code, or null if the signal killed the process. Past the deadline it SIGKILLs and throws.
   */
  stop(signal?: NodeJS.Signals, deadlineMs?: number): Promise<number | null>;
}

/** A running gravity leaf with what its listening line reported. */
export interface LeafProcess extends ServerProcess {
  readonly threads: number;
  readonly memoryBytes: number;
  readonly maxItemBytes: number;
}

const running = new Set<ServerProcess>();

/** Stops every server still running (SIGTERM, then SIGKILL past a deadline). Use as `afterAll(stopAll)`. */
export async function stopAll(): Promise<void> {
  await stopEach(running, (server) => server.stop("SIGTERM", 5000), "servers");
}

// Reads a child's output stream into `sink`, calling `onText` after each chunk.
async function collect(stream: ReadableStream<Uint8Array>, sink: { text: string }, onText: () => void) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    sink.text += decoder.decode(chunk, { stream: true });
    onText();
  }
  sink.text += decoder.decode();
  onText();
}

interface Spawned {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  out: { text: string };
  err: { text: string };
  /** Resolves once stdout and stderr are fully read (after the process exits). */
  drained: Promise<void>;
  /** Registers a callback run whenever new output arrives. */
  onOutput(callback: () => void): void;
}

function spawnCollected(cmd: string[], options: { cwd?: string; env?: Record<string, string> }): Spawned {
  // Inherited GRAVITY_* variables would silently change flags; a test passes its own.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("GRAVITY_")) env[key] = value;
  }
  Object.assign(env, options.env);
  const proc = Bun.spawn(cmd, {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  killOnExit(proc);
  const out = { text: "" };
  const err = { text: "" };
  const listeners: (() => void)[] = [];
  const notify = () => {
    for (const listener of listeners) listener();
  };
  const drained = Promise.all([collect(proc.stdout, out, notify), collect(proc.stderr, err, notify)]).then(
    () => {},
  );
  return { proc, out, err, drained, onOutput: (callback) => listeners.push(callback) };
}

function serverProcess(name: string, port: number, spawned: Spawned): ServerProcess {
  const { proc } = spawned;
  const isRunning = () => proc.exitCode === null && proc.signalCode === null;
  const server: ServerProcess = {
    name,
    host: HOST,
    port,
    pid: proc.pid,
    stdout: () => spawned.out.text,
    stderr: () => spawned.err.text,
    exitCode: () => (isRunning() ? undefined : proc.exitCode),
    signal: (signal) => {
      if (isRunning()) proc.kill(signal);
    },
    waitForStdout(pattern, deadlineMs = 10_000) {
      const seen = new Promise<RegExpExecArray | Error>((resolve) => {
        const check = () => {
          const match = pattern.exec(spawned.out.text);
          if (match !== null) resolve(match);
        };
        spawned.onOutput(check);
        check();
        void spawned.drained.then(() => {
          check();
          resolve(new Error(`${name} exited before printing ${pattern}; stdout: ${spawned.out.text.trim()}`));
        });
      });
      return withDeadline(seen, deadlineMs, `${name} to print ${pattern}`).then((result) => {
        if (result instanceof Error) throw result;
        return result;
      });
    },
    async waitExit(deadlineMs = 10_000) {
      try {
        await withDeadline(proc.exited, deadlineMs, `${name} (pid ${proc.pid}) to exit`);
      } catch (error) {
        proc.kill("SIGKILL");
        await proc.exited;
        throw error;
      } finally {
        running.delete(server);
      }
      await spawned.drained;
      return proc.exitCode;
    },
    stop(signal: NodeJS.Signals = "SIGTERM", deadlineMs = 10_000) {
      server.signal(signal);
      return server.waitExit(deadlineMs);
    },
  };
  running.add(server);
  return server;
}

// Resolves when a TCP connection to the port succeeds; rejects if the process exits first or the
// deadline passes. Polls: a server that logs nothing raises no event when it starts accepting.
async function waitAccepting(
  port: number,
  spawned: Spawned,
  deadlineMs: number,
  name: string,
): Promise<void> {
  const { proc } = spawned;
  await pollUntil(
    async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        await spawned.drained;
        throw new Error(
          `${name} exited with code ${proc.exitCode} before accepting on port ${port}: ${spawned.err.text.trim()}`,
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
    { deadlineMs, what: `${name} to accept connections on ${HOST}:${port}` },
  );
}

export interface MemcachedOptions {
  /** -m: memory limit in megabytes (default 64). */
  memoryMb?: number;
  /** -I: item size limit such as "1m" (default 1m, memcached's default). */
  maxItemSize?: string;
  extraArgs?: string[];
  /** Extra environment (e.g. MEMCACHED_SASL_PWDB for -S). */
  env?: Record<string, string>;
  /** How long to wait for the server to accept connections (default 10 s). */
  deadlineMs?: number;
}

/** Starts memcached on a free loopback port (TCP only), retrying if another process takes the port first. */
export async function startMemcached(options: MemcachedOptions = {}): Promise<ServerProcess> {
  requireBinary(MEMCACHED);
  const deadlineMs = options.deadlineMs ?? 10_000;
  const attempts = 5;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const cmd = [MEMCACHED, "-l", HOST, "-p", String(port), "-U", "0"];
    cmd.push("-m", String(options.memoryMb ?? 64), "-I", options.maxItemSize ?? "1m");
    // memcached refuses to run as root unless told which user to be.
    if (process.getuid?.() === 0) cmd.push("-u", "root");
    cmd.push(...(options.extraArgs ?? []));
    const spawned = spawnCollected(cmd, options.env === undefined ? {} : { env: options.env });
    const server = serverProcess("memcached", port, spawned);
    try {
      await waitAccepting(port, spawned, deadlineMs, "memcached");
      return server;
    } catch (error) {
      await server.stop("SIGKILL").catch(() => {});
      const raced = /address already in use/i.test(spawned.err.text);
      if (!raced || attempt === attempts) throw error;
    }
  }
}

/** Which gravity to run: the TypeScript sources under this Bun, or the compiled dist/gravity. */
export type GravityBinary = "source" | "compiled";

export interface GravityRunOptions {
  binary?: GravityBinary;
  /** Run this executable instead (e.g. a copy of dist/gravity); implies a compiled binary. */
  executable?: string;
  cwd?: string;
  /** Extra environment (GRAVITY_* from the test runner's own environment are not passed on). */
  env?: Record<string, string>;
  deadlineMs?: number;
}

/** The argv that runs gravity with `args`; throws a clear error if the build it needs is missing. */
export function gravityCommand(args: readonly string[], options: GravityRunOptions = {}): string[] {
  if (options.executable !== undefined) return [options.executable, ...args];
  if (options.binary === "compiled") {
    if (!existsSync(COMPILED_GRAVITY)) {
      throw new Error(`${COMPILED_GRAVITY} is missing: run \`npm run build\` first`);
    }
    return [COMPILED_GRAVITY, ...args];
  }
  if (!existsSync(NATIVE_ADDON)) {
    throw new Error(`native addon ${NATIVE_ADDON} is missing: run \`npm run build:native\` first`);
  }
  return [process.execPath, MAIN_SOURCE, ...args];
}

const LEAF_LISTENING =
  /^gravity leaf listening on (\S+):(\d+) \(threads (\d+), memory (\d+) bytes, max item (\d+) bytes\)$/m;
const ROUTER_LISTENING = /^gravity router listening on (\S+):(\d+) /m;

/**
 * Starts `gravity <role> ...args` and resolves with its listening line once printed. Rejects with
 * its stderr if it exits first, or after `deadlineMs` (default 10 s).
 */
async function startListening(
  role: string,
  args: readonly string[],
  pattern: RegExp,
  options: GravityRunOptions,
): Promise<{ match: RegExpExecArray; spawned: Spawned }> {
  const deadlineMs = options.deadlineMs ?? 10_000;
  const spawned = spawnCollected(gravityCommand([role, ...args], options), options);
  const listening = new Promise<RegExpExecArray>((resolveLine) => {
    const check = () => {
      const match = pattern.exec(spawned.out.text);
      if (match !== null) resolveLine(match);
    };
    spawned.onOutput(check);
    check();
  });
  // Resolves (never rejects: it outlives this function) with the error to throw if it exits first.
  const exited = spawned.proc.exited.then(async (code) => {
    await spawned.drained;
    return new Error(
      `gravity ${role} ${args.join(" ")} exited with code ${code} before listening: ${spawned.err.text.trim()}`,
    );
  });
  try {
    const first = await withDeadline(
      Promise.race([listening, exited]),
      deadlineMs,
      `gravity ${role}'s listening line`,
    );
    if (first instanceof Error) throw first;
    return { match: first, spawned };
  } catch (error) {
    spawned.proc.kill("SIGKILL");
    await spawned.proc.exited;
    if (error instanceof DeadlineError) {
      throw new Error(
        `${error.message}; stdout: ${spawned.out.text.trim()}; stderr: ${spawned.err.text.trim()}`,
      );
    }
    throw error;
  }
}

/** Starts `gravity leaf ...args` (pass `--port 0`) and resolves once it prints its listening line. */
export async function startLeaf(
  args: readonly string[],
  options: GravityRunOptions = {},
): Promise<LeafProcess> {
  const { match, spawned } = await startListening("leaf", args, LEAF_LISTENING, options);
  const [, , port, threads, memory, maxItem] = match;
  return Object.assign(serverProcess("gravity leaf", Number(port), spawned), {
    threads: Number(threads),
    memoryBytes: Number(memory),
    maxItemBytes: Number(maxItem),
  });
}

/** Starts `gravity router ...args` (pass `--port 0` and `--config`) once it prints its listening line. */
export async function startRouter(
  args: readonly string[],
  options: GravityRunOptions = {},
): Promise<ServerProcess> {
  const { match, spawned } = await startListening("router", args, ROUTER_LISTENING, options);
  return serverProcess("gravity router", Number(match[2]), spawned);
}

/** What a gravity run that exits by itself printed. */
export interface GravityRun {
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

/** Runs gravity to completion (e.g. --help or a bad flag); kills it and throws past `deadlineMs` (default 10 s). */
export async function runGravity(
  args: readonly string[],
  options: GravityRunOptions = {},
): Promise<GravityRun> {
  const spawned = spawnCollected(gravityCommand(args, options), options);
  const deadlineMs = options.deadlineMs ?? 10_000;
  try {
    await withDeadline(spawned.proc.exited, deadlineMs, `gravity ${args.join(" ")} to exit`);
  } catch (error) {
    spawned.proc.kill("SIGKILL");
    throw error;
  }
  await spawned.drained;
  return { exitCode: spawned.proc.exitCode, stdout: spawned.out.text, stderr: spawned.err.text };
}

async function procStatusBytes(pid: number, field: string): Promise<number> {
  const status = await Bun.file(`/proc/${pid}/status`).text();
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Resident set size of a process in bytes (VmRSS in /proc/<pid>/status). */
export function rssBytes(pid: number): Promise<number> {
  return procStatusBytes(pid, "VmRSS");
}

/** The highest resident set size the process has had, in bytes (VmHWM): catches peaks between samples. */
export function peakRssBytes(pid: number): Promise<number> {
  return procStatusBytes(pid, "VmHWM");
}
