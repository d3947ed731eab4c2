// Builds the Go programs under bench/ristretto/ against Debian's packaged ristretto
// (golang-github-dgraph-io-ristretto-dev 0.0.3, GOPATH layout under /usr/share/gocode), offline in
// GOPATH mode: installing golang-go and that package is the benches' set-up.
//
//   replay      bench/ristretto/main.go             ristretto's hit ratio (bench:hitratio)
//   throughput  bench/ristretto/throughput/main.go  ristretto's ops/s (bench:throughput)

import { join } from "node:path";

const REPO_ROOT = join(import.meta.dir, "..", "..");
const GOPATH = "/usr/share/gocode"; // Debian's Go packages (GOPATH layout)

const PROGRAMS = {
  replay: { source: "./bench/ristretto", binary: join(REPO_ROOT, "build", "ristretto-replay") },
  throughput: {
    source: "./bench/ristretto/throughput",
    binary: join(REPO_ROOT, "build", "ristretto-throughput"),
  },
} as const;

export type RistrettoProgram = keyof typeof PROGRAMS;

/** Where buildRistretto() puts the program's binary. */
export function ristrettoBinary(program: RistrettoProgram): string {
  return PROGRAMS[program].binary;
}

/** Builds one of the ristretto programs (incrementally, as go build does); skipHint says how to run without it. */
export function buildRistretto(program: RistrettoProgram, skipHint: string): void {
  const { source, binary } = PROGRAMS[program];
  if (Bun.which("go") === null) {
    throw new Error(
      `go not found: install golang-go and golang-github-dgraph-io-ristretto-dev, or ${skipHint}`,
    );
  }
  const proc = Bun.spawnSync(["go", "build", "-o", binary, source], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, GO111MODULE: "off", GOPATH, GOFLAGS: "" },
  });
  if (proc.exitCode !== 0) {
    throw new Error(
      `go build of ${source} failed (is golang-github-dgraph-io-ristretto-dev installed?):\n${proc.stderr.toString()}`,
    );
  }
}
