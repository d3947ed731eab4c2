// `npm test`: every check and test, ending with one line `N passed, N failed`.
//
//   typecheck ─ lint ─ addon build ─ executable build ─ native tests (plain, ASan+UBSan, TSan)
//     ─ native protocol fuzzer (libFuzzer + ASan/UBSan, fixed time) ─ bun test
//
// Each build or check step counts as one test; native tests and bun tests count per case (a skipped
// bun test counts as failed: nothing here may pass by not running). Exits 1 if anything failed.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCorpus } from "./helpers/corpus.ts";

const root = join(import.meta.dir, "..");
const buildDir = join(root, "build");
let passed = 0;
let failed = 0;
const failures: string[] = [];

function run(cmd: string[], cwd = root): { code: number; output: string } {
  const proc = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", env: process.env });
  const output = `${proc.stdout.toString()}${proc.stderr.toString()}`;
  return { code: proc.exitCode ?? 1, output };
}

function record(name: string, ok: boolean, output = ""): void {
  if (ok) {
    passed++;
    console.log(`ok    ${name}`);
  } else {
    failed++;
    failures.push(name);
    console.log(`FAIL  ${name}`);
    if (output.trim() !== "") console.log(output.trimEnd().replace(/^/gm, "      "));
  }
}

function step(name: string, cmd: string[]): boolean {
  const started = performance.now();
  const { code, output } = run(cmd);
  record(
    `${name} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
    code === 0,
    code === 0 ? "" : output,
  );
  return code === 0;
}

const bin = (name: string) => join(root, "node_modules", ".bin", name);

step("typecheck (tsc --noEmit)", [bin("tsc"), "--noEmit"]);
step("lint (biome check)", [bin("biome"), "check", "."]);
// The builds are package.json's own scripts, so npm install and npm test build the same way.
const addonBuilt = step("native addon build (cmake-js)", ["npm", "run", "--silent", "build:native"]);
const exeBuilt =
  addonBuilt && step("executable build (bun build --compile)", ["npm", "run", "--silent", "build:exe"]);

// Native tests: each *_test binary prints "name: ok|FAILED" per case.
const sanitizers: { mode: string; flags: string[]; env: Record<string, string> }[] = [
  { mode: "plain", flags: ["-DCMAKE_BUILD_TYPE=RelWithDebInfo"], env: {} },
  {
    mode: "asan-ubsan",
    flags: ["-DCMAKE_BUILD_TYPE=Debug", "-DGRAVITY_SANITIZE=address"],
    env: { ASAN_OPTIONS: "detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS: "print_stacktrace=1" },
  },
  {
    mode: "tsan",
    flags: ["-DCMAKE_BUILD_TYPE=Debug", "-DGRAVITY_SANITIZE=thread"],
    env: { TSAN_OPTIONS: "halt_on_error=1" },
  },
];
for (const { mode, flags, env } of sanitizers) {
  const dir = join(buildDir, `native-${mode}`);
  mkdirSync(dir, { recursive: true });
  const configured = run(["cmake", "-S", "native", "-B", dir, ...flags]);
  const built = configured.code === 0 ? run(["cmake", "--build", dir, "-j2"]) : configured;
  if (built.code !== 0) {
    record(`native tests build [${mode}]`, false, built.output);
    continue;
  }
  const listed = run(["ctest", "--test-dir", dir, "-N"]);
  const binaries = [...listed.output.matchAll(/Test\s+#\d+:\s+(\S+)/g)].map((m) => m[1] as string);
  if (binaries.length === 0) record(`native tests [${mode}]: none found`, false, listed.output);
  for (const binary of binaries) {
    const proc = Bun.spawnSync([join(dir, binary)], {
      cwd: root,
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...env },
    });
    const stdout = proc.stdout.toString();
    const stderr = proc.stderr.toString();
    const cases = [...stdout.matchAll(/^(\S+): (ok|FAILED)$/gm)];
    for (const [, name, result] of cases) {
      record(`native ${binary} [${mode}] ${name}`, result === "ok", result === "ok" ? "" : stderr);
    }
    const summary = /native \S+: \d+ passed, \d+ failed/.test(stdout);
    if (proc.exitCode !== 0 || !summary) {
      // A crash or sanitizer report after (or instead of) the per-case lines.
      record(`native ${binary} [${mode}] exit`, false, `exit ${proc.exitCode}\n${stderr.slice(-4000)}`);
    }
  }
}

// The native parser's libFuzzer target (native/test/fuzz/parser_fuzz.cc) for a fixed time under
// ASan and UBSan, seeded with every corpus case's client bytes. Needs clang (.ci/run installs it).
const FUZZ_SECONDS = Number(process.env.GRAVITY_FUZZ_SECONDS ?? 45);
{
  const dir = join(buildDir, "native-fuzz");
  const seeds = join(dir, "seeds");
  const found = join(dir, "corpus"); // what the fuzzer finds, kept between runs
  mkdirSync(seeds, { recursive: true });
  mkdirSync(found, { recursive: true });
  // Each seed: two bytes the target reads as the output buffer and read sizes, then the case's bytes.
  loadCorpus(join(root, "test/corpus")).forEach((corpusCase, index) => {
    const sent = corpusCase.steps.flatMap((step) => (step.kind === "send" ? [step.bytes] : []));
    writeFileSync(join(seeds, `case-${index}`), Buffer.concat([Uint8Array.of(index, index * 7), ...sent]));
  });
  const configured = run([
    "cmake",
    "-S",
    "native",
    "-B",
    dir,
    "-DCMAKE_CXX_COMPILER=clang++",
    "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
    "-DGRAVITY_SANITIZE=fuzzer",
  ]);
  const built =
    configured.code === 0 ? run(["cmake", "--build", dir, "--target", "parser_fuzz", "-j2"]) : configured;
  if (built.code !== 0) {
    record("native protocol fuzzer build (clang, libFuzzer)", false, built.output);
  } else {
    const fuzz = run([
      join(dir, "parser_fuzz"),
      `-max_total_time=${FUZZ_SECONDS}`,
      "-max_len=4096",
      "-timeout=10",
      "-rss_limit_mb=2048",
      "-print_final_stats=1",
      found,
      seeds,
    ]);
    const runs = /stat::number_of_executed_units:\s*(\d+)/.exec(fuzz.output)?.[1] ?? "?";
    record(
      `native protocol fuzzer [libFuzzer, ASan+UBSan] ${FUZZ_SECONDS} s, ${runs} inputs`,
      fuzz.code === 0,
      fuzz.code === 0 ? "" : fuzz.output.slice(-6000),
    );
  }
}

// Bun tests, reported through junit so every case is counted.
if (exeBuilt) {
  const junit = join(buildDir, "junit.xml");
  const proc = Bun.spawnSync(
    [
      bin("bun"),
      "test",
      "--timeout=60000",
      "--reporter=junit",
      `--reporter-outfile=${junit}`,
      "src",
      "test",
      "bench",
    ],
    { cwd: root, stdout: "inherit", stderr: "inherit", env: process.env },
  );
  let xml = "";
  try {
    xml = readFileSync(junit, "utf8");
  } catch {
    record("bun test: junit report", false, `no report at ${junit} (exit ${proc.exitCode})`);
  }
  for (const testcase of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const attrs = testcase[1] ?? "";
    const body = testcase[3] ?? "";
    const name = /name="([^"]*)"/.exec(attrs)?.[1] ?? "?";
    const file = /file="([^"]*)"/.exec(attrs)?.[1] ?? /classname="([^"]*)"/.exec(attrs)?.[1] ?? "";
    const ok = !/<(failure|error|skipped)\b/.test(body);
    record(`bun ${file} > ${name}`, ok, ok ? "" : body.slice(0, 2000));
  }
  if (proc.exitCode !== 0 && xml !== "" && !/<(failure|error)\b/.test(xml)) {
    record("bun test exit status", false, `bun test exited ${proc.exitCode} without a failing case`);
  }
} else {
  record("bun test (not run: the executable did not build)", false);
}

if (failures.length > 0) {
  console.log("\nfailed:");
  for (const name of failures) console.log(`  ${name}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
