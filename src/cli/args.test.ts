import { describe, expect, test } from "bun:test";
import { UsageError } from "../errors.ts";
import { envName, FlagKind, type FlagSpec, parseBytes, parseFlags } from "./args.ts";

const SPECS: FlagSpec[] = [
  { name: "port", kind: FlagKind.Integer, default: 11211, min: 0, max: 65535, help: "" },
  { name: "memory", kind: FlagKind.Bytes, default: "64mb", min: 1024, help: "" },
  { name: "listen", kind: FlagKind.String, default: "127.0.0.1", help: "" },
  { name: "verbose", kind: FlagKind.Boolean, default: false, help: "" },
];

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).message;
  }
  throw new Error("expected a UsageError");
}

describe("parseBytes", () => {
  test("units are powers of 1024, case-insensitive", () => {
    expect(parseBytes("64mb")).toBe(64 * 1024 * 1024);
    expect(parseBytes("1g")).toBe(1024 ** 3);
    expect(parseBytes("1GB")).toBe(1024 ** 3);
    expect(parseBytes("512k")).toBe(512 * 1024);
    expect(parseBytes("1m")).toBe(1024 * 1024);
    expect(parseBytes("4096")).toBe(4096);
  });
  test("rejects what is not a size", () => {
    for (const bad of ["", "mb", "12xb", "-5", "1.5g", "1 g b"]) expect(parseBytes(bad)).toBeNull();
  });
});

describe("parseFlags", () => {
  test("defaults, converted like flags", () => {
    expect(parseFlags([], SPECS, {})).toEqual({
      port: 11211,
      memory: 64 * 1024 * 1024,
      listen: "127.0.0.1",
      verbose: false,
    });
  });
  test("--name value, --name=value and bare booleans", () => {
    const values = parseFlags(["--port", "0", "--memory=1g", "--verbose", "--listen", "0.0.0.0"], SPECS, {});
    expect(values).toEqual({ port: 0, memory: 1024 ** 3, listen: "0.0.0.0", verbose: true });
  });
  test("environment fills in and the flag wins over it", () => {
    expect(parseFlags([], SPECS, { [envName("port")]: "22122" }).port).toBe(22122);
    expect(parseFlags(["--port", "1"], SPECS, { GRAVITY_PORT: "22122" }).port).toBe(1);
    expect(envName("max-item-size")).toBe("GRAVITY_MAX_ITEM_SIZE");
  });
  test("errors name the flag and the value", () => {
    expect(usageMessage(() => parseFlags(["--nope"], SPECS, {}))).toBe("unknown flag --nope");
    expect(usageMessage(() => parseFlags(["--port", "abc"], SPECS, {}))).toBe(
      '--port: expected an integer, got "abc"',
    );
    expect(usageMessage(() => parseFlags(["--port", "70000"], SPECS, {}))).toBe(
      '--port: must be at most 65535, got "70000"',
    );
    expect(usageMessage(() => parseFlags(["--memory", "12xb"], SPECS, {}))).toContain(
      "--memory: expected a size",
    );
    expect(usageMessage(() => parseFlags(["--memory", "1"], SPECS, {}))).toBe(
      '--memory: must be at least 1024 bytes, got "1"',
    );
    expect(usageMessage(() => parseFlags(["--port"], SPECS, {}))).toBe("--port: missing value");
    expect(usageMessage(() => parseFlags(["stray"], SPECS, {}))).toBe('unexpected argument "stray"');
    expect(usageMessage(() => parseFlags([], SPECS, { GRAVITY_PORT: "x" }))).toBe(
      'GRAVITY_PORT: expected an integer, got "x"',
    );
  });
});

test("a flag given on the command line makes a bad environment value irrelevant", () => {
  expect(parseFlags(["--port", "1"], SPECS, { GRAVITY_PORT: "not-a-port" }).port).toBe(1);
});

test("a string flag with choices accepts only those", () => {
  const specs: FlagSpec[] = [
    { name: "policy", kind: FlagKind.String, default: "lru", choices: ["lru", "tinylfu"], help: "" },
  ];
  expect(parseFlags(["--policy", "tinylfu"], specs, {}).policy).toBe("tinylfu");
  expect(usageMessage(() => parseFlags(["--policy", "fifo"], specs, {}))).toBe(
    '--policy: expected one of lru, tinylfu, got "fifo"',
  );
});

describe("memcached's short flags", () => {
  const SHORT: FlagSpec[] = [
    { name: "port", kind: FlagKind.Integer, default: 11211, min: 0, max: 65535, short: "p", help: "" },
    {
      name: "memory",
      kind: FlagKind.Bytes,
      default: "64mb",
      min: 1024 * 1024,
      short: "m",
      shortUnitBytes: 1024 * 1024,
      help: "",
    },
    { name: "udp-port", kind: FlagKind.Integer, default: 0, min: 0, max: 0, short: "U", help: "" },
    { name: "verbose", kind: FlagKind.Count, default: 0, min: 0, max: 3, short: "v", help: "" },
    { name: "help", kind: FlagKind.Boolean, default: false, help: "" },
  ];

  test("-p 11311, -p11311, -m in megabytes (or with a unit), -U 0, -v and -vv", () => {
    expect(parseFlags(["-p", "11311", "-m", "8", "-U", "0", "-vv"], SHORT, {})).toEqual({
      port: 11311,
      memory: 8 * 1024 * 1024,
      "udp-port": 0,
      verbose: 2,
      help: false,
    });
    const joined = parseFlags(["-p11312", "-m1g", "-v", "-v"], SHORT, {});
    expect([joined.port, joined.memory, joined.verbose]).toEqual([11312, 1024 ** 3, 2]);
    // Long and short forms mix; the long count form takes a number.
    expect(parseFlags(["--verbose=3", "--port=1"], SHORT, {}).verbose).toBe(3);
    expect(parseFlags(["--verbose", "-v"], SHORT, {}).verbose).toBe(2);
    expect(parseFlags([], SHORT, { GRAVITY_VERBOSE: "1" }).verbose).toBe(1);
  });

  test("errors name the flag as given", () => {
    expect(usageMessage(() => parseFlags(["-U", "11211"], SHORT, {}))).toBe(
      '-U: must be at most 0, got "11211"',
    );
    expect(usageMessage(() => parseFlags(["-m", "0"], SHORT, {}))).toBe(
      '-m: must be at least 1048576 bytes, got "0"',
    );
    expect(usageMessage(() => parseFlags(["-x"], SHORT, {}))).toBe("unknown flag -x");
    expect(usageMessage(() => parseFlags(["-p"], SHORT, {}))).toBe("-p: missing value");
    expect(usageMessage(() => parseFlags(["-vx"], SHORT, {}))).toBe(
      "-vx: -v takes no value (repeat it: -vv)",
    );
    expect(usageMessage(() => parseFlags(["-vvvv"], SHORT, {}))).toBe(
      '-vvvv: must be at most 3, got "-vvvv"',
    );
  });
});

describe("byte flags given as a share (--memory 70%)", () => {
  const share: FlagSpec[] = [
    { name: "memory", kind: FlagKind.Bytes, default: "64mb", min: 1024, help: "", percentOf: () => 1000_000 },
  ];
  test("a share of what percentOf reports, from a flag or the environment", () => {
    expect(parseFlags(["--memory", "70%"], share, {}).memory).toBe(700_000);
    expect(parseFlags([], share, { GRAVITY_MEMORY: "12.5%" }).memory).toBe(125_000);
    expect(parseFlags(["--memory=100%"], share, {}).memory).toBe(1000_000);
  });
  test("out of range, or on a flag without percentOf, is a usage error naming the flag", () => {
    const cases: [string, FlagSpec[], string][] = [
      ["0%", share, "expected a share between 0% and 100%"],
      ["150%", share, "expected a share between 0% and 100%"],
      ["0.01%", share, "must be at least 1024 bytes"],
      ["70%", SPECS, "expected a size such as 64mb, 1g, 512k or a number of bytes"],
    ];
    for (const [value, specs, problem] of cases) {
      expect(usageMessage(() => parseFlags(["--memory", value], specs, {}))).toBe(
        `--memory: ${problem}, got "${value}"`,
      );
    }
  });
});
